"""A wheel built from the repository works from a fresh virtual environment, templates included."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_ebb

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_in_fresh_venv_creates_a_study(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(REPO)], check=True, cwd=tmp_path)
    wheel = next(dist.glob("study-*.whl"))
    venv = tmp_path / "venv"
    # Dependencies (torch, boto3, ...) come from the interpreter running the tests (itself a
    # venv, whose base has none of them): a .pth line adds its site-packages as plain paths, so its
    # editable install of this repository is not activated. The package itself comes only from
    # the wheel.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    inner = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           check=True, capture_output=True, text=True).stdout.strip()
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(inner, "outer-deps.pth").write_text("\n".join(outer) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    where = subprocess.run(
        [str(py), "-c", "import study, hit_templates, importlib.resources as r;"
         "print(study.__file__);"
         "print(sorted(p.name for p in r.files('hit_templates').iterdir()))"],
        check=True, capture_output=True, text=True, cwd=elsewhere, env=env).stdout.splitlines()
    assert str(venv) in where[0], "the package was not imported from the wheel"
    assert any(name.endswith((".html", ".j2")) for name in eval(where[1])), where[1]

    ds = make_ebb(tmp_path / "ebb", ids=(1, 2))
    study_bin = venv / "bin" / "study"
    subprocess.run([str(study_bin), "init", str(tmp_path / "s"), "--dataset", str(ds)],
                   check=True, cwd=elsewhere, env=env, capture_output=True)
    out = subprocess.run([str(study_bin), "status", "--json"], check=True, cwd=tmp_path / "s",
                         env=env, capture_output=True, text=True).stdout
    assert [i["image_id"] for i in json.loads(out)["dataset"]["images"]] == ["1", "2"]
