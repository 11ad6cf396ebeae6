"""`study render` as a user runs it: failure isolation, resumability, shards (also under
torchrun's environment and as concurrent processes), tiles, scores and the Track 1 table."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from study.dataset import load_rgb
from study.render.metrics import psnr, ssim
from study.render.output import track1_table
from study.render.schedule import shard_from_env, take_shard, work_list
from study.render.tiles import tiled, windows
from study.studydir import Study

REPO = Path(__file__).resolve().parent.parent

METHODS_PY = '''
import os, time
import torch
import torch.nn.functional as F

def soft(x):
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)

def crash(x):
    raise RuntimeError("kernel exploded")

def nans(x):
    y = x.clone()
    y[..., 0, 0] = float("nan")
    return y

def half(x):
    return x[..., ::2, ::2]

def too_bright(x):
    return x * 3 + 0.5

def hang(x):
    time.sleep(60)
    return x

class Local(torch.nn.Module):
    """A purely local network (receptive radius 4): tiles must give the whole-image result."""
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.a = torch.nn.Conv2d(3, 6, 5, padding=2)
        self.b = torch.nn.Conv2d(6, 3, 5, padding=2)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.2

    def forward(self, x):
        return torch.sigmoid(self.b(torch.tanh(self.a(x))))

def local():
    return Local()

def oom(x):
    if x.shape[-1] * x.shape[-2] > 1200:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return soft(x)

CALLS = os.environ.get("STUDY_TEST_CALLS")

def counted(x):
    if CALLS:
        with open(CALLS, "a") as fh:
            fh.write(f"{x.shape[-2]}x{x.shape[-1]}\\n")
    return x.flip(-1)
'''

HANG_SCRIPT = '''
import os, sys, time
with open(sys.argv[1], "a") as fh:
    fh.write(f"{os.getpid()}\\n")
time.sleep(120)
'''


def set_methods(study: Path, methods_toml: str) -> None:
    path = study / "study.toml"
    out, skipping = [], False
    for line in path.read_text().splitlines():
        header = re.match(r"^\s*\[([^\]]+)\]", line)
        if header:
            skipping = header.group(1).strip().startswith("methods.")
        if not skipping:
            out.append(line)
    path.write_text("\n".join(out) + "\n\n" + methods_toml.strip() + "\n")


def set_render(study: Path, key: str, value: str) -> None:
    path = study / "study.toml"
    text, n = re.subn(rf"(?m)^{key}\s*=.*$", f"{key} = {value}", path.read_text(), count=1)
    assert n == 1, key
    path.write_text(text)


def python_method(name: str, fn: str, extra: str = "") -> str:
    return f'[methods.{name}]\nkind = "python"\nentry = "rmethods:{fn}"\npythonpath = "code"\n{extra}\n'


def rows(study: Path) -> dict[tuple[str, str], sqlite3.Row]:
    conn = sqlite3.connect(study / "study.db")
    conn.row_factory = sqlite3.Row
    try:
        return {(r["method"], r["image_id"]): r for r in conn.execute("SELECT * FROM renders")}
    finally:
        conn.close()


@pytest.fixture
def study(study_dir: Path) -> Path:
    (study_dir / "code").mkdir()
    (study_dir / "code" / "rmethods.py").write_text(METHODS_PY)
    return study_dir


IDS = ("1", "2", "10")


def test_failure_isolation(study: Path, run_cli) -> None:
    (study / "code" / "hang.py").write_text(HANG_SCRIPT)
    pids = study / "pids.txt"
    set_methods(study, "\n".join([
        python_method("good", "soft"),
        python_method("crash", "crash"),
        python_method("nans", "nans"),
        python_method("half", "half"),
        python_method("bright", "too_bright"),
        python_method("hang-py", "hang"),
        '[methods.hang-cmd]\nkind = "command"\n'
        f'command = "{{python}} code/hang.py {pids} {{output_dir}}"\n',
        python_method("after", "soft"),
    ]))
    t0 = time.monotonic()
    result = run_cli("render", "--no-progress", "--timeout", "1.5", cwd=study, expect=1)
    assert time.monotonic() - t0 < 45  # each hang costs one timeout, not one per image
    r = rows(study)
    for i in IDS:
        for ok in ("good", "after"):
            assert r[(ok, i)]["status"] == "done"
            assert (study / r[(ok, i)]["path"]).is_file()
        assert "kernel exploded" in r[("crash", i)]["error"]
        assert "non-finite" in r[("nans", i)]["error"]
        assert "expected (1, 3, 48, 64)" in r[("half", i)]["error"]
        assert "outside [0, 1]" in r[("bright", i)]["error"]
        for m in ("crash", "nans", "half", "bright", "hang-py", "hang-cmd"):
            assert r[(m, i)]["status"] == "failed"
            assert not (study / "renders" / m / f"{i}.png").exists()
    assert "timed out after 1.5 s" in r[("hang-py", "1")]["error"]
    assert "hung on image 1" in r[("hang-py", "10")]["error"]
    assert "killed" in r[("hang-cmd", "1")]["error"]
    # The hung program was really killed, not left running.
    pid = int(pids.read_text().split()[0])
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "failed: crash / 1: crashed: RuntimeError: kernel exploded" in result.output
    counts = {r["method"]: (r["done"], r["failed"], r["missing"])
              for r in track1_table(Study.open(study))}
    assert counts["good"] == (3, 0, 0)
    assert counts["crash"] == (0, 3, 0)


def test_resume_skips_done_and_force_redoes(study: Path, run_cli, monkeypatch) -> None:
    calls = study / "calls.txt"
    monkeypatch.setenv("STUDY_TEST_CALLS", str(calls))
    set_methods(study, python_method("flip", "counted") + python_method("soft", "soft"))
    first = run_cli("render", "--no-progress", cwd=study)
    assert "rendered 6, skipped 0" in first.output
    # One warm-up call on a crop, then one call per image.
    assert calls.read_text().split() == ["48x64"] * 4
    out = study / "renders" / "flip" / "2.png"
    stamp = out.stat().st_mtime_ns
    conn = sqlite3.connect(study / "study.db")
    src = conn.execute("SELECT input_path FROM images WHERE image_id='2'").fetchone()[0]
    conn.close()
    np.testing.assert_array_equal(load_rgb(out), load_rgb(src)[:, ::-1])
    calls.write_text("")
    second = run_cli("render", "--no-progress", cwd=study)
    assert "rendered 0, skipped 6" in second.output
    assert calls.read_text() == "" and out.stat().st_mtime_ns == stamp
    # A lost output file is redone; the rest is still skipped.
    out.unlink()
    third = run_cli("render", "--no-progress", cwd=study)
    assert "rendered 1, skipped 5" in third.output and out.is_file()
    forced = run_cli("render", "--no-progress", "--force", "--methods", "flip", cwd=study)
    assert "rendered 3, skipped 0" in forced.output
    assert no_temp_files(study / "renders")


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_failed_outputs_are_retried(study: Path, run_cli) -> None:
    set_methods(study, python_method("flaky", "soft"))
    (study / "code" / "rmethods.py").write_text(METHODS_PY.replace(
        "def soft(x):\n", "def soft(x):\n    raise ValueError('not yet')\n"))
    run_cli("render", "--no-progress", cwd=study, expect=1)
    assert {r["status"] for r in rows(study).values()} == {"failed"}
    (study / "code" / "rmethods.py").write_text(METHODS_PY)
    again = run_cli("render", "--no-progress", cwd=study)
    assert "rendered 3, skipped 0" in again.output
    assert {r["status"] for r in rows(study).values()} == {"done"}


def test_shards_partition_the_work() -> None:
    items = work_list(["a", "b", "c"], [str(i) for i in range(7)])
    for n in (1, 2, 3, 5, 21, 30):
        shards = [take_shard(items, k, n) for k in range(1, n + 1)]
        flat = [w for s in shards for w in s]
        assert sorted(flat, key=items.index) == items and len(set(flat)) == len(items)
    assert shard_from_env({"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}) == (3, 4)
    assert shard_from_env({}) is None


def test_shards_through_the_cli_and_torchrun_env(study: Path, run_cli, monkeypatch) -> None:
    set_methods(study, python_method("p", "soft") + python_method("q", "counted"))
    all_pairs = {(m, i) for m in ("p", "q") for i in IDS}
    seen: list[set] = []
    for k in (1, 2, 3):
        before = set(rows(study))
        result = run_cli("render", "--no-progress", "--shard", f"{k}/3", cwd=study)
        added = set(rows(study)) - before
        assert f"rendered {len(added)}, skipped 0" in result.output
        seen.append(added)
    assert sum(len(s) for s in seen) == len(all_pairs) and set().union(*seen) == all_pairs
    expected = [{(w.method, w.image_id) for w in take_shard(
        work_list(["p", "q"], list(IDS)), k, 3)} for k in (1, 2, 3)]
    assert seen == expected

    # torchrun's RANK/WORLD_SIZE pick the shard when --shard is not given.
    for path in (study / "renders").rglob("*.png"):
        path.unlink()
    conn = sqlite3.connect(study / "study.db")
    conn.execute("DELETE FROM renders")
    conn.commit()
    conn.close()
    got = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        before = set(rows(study))
        run_cli("render", "--no-progress", cwd=study)
        got.append(set(rows(study)) - before)
    assert got[0] | got[1] == all_pairs and not got[0] & got[1]
    assert got[0] == {(w.method, w.image_id) for w in take_shard(
        work_list(["p", "q"], list(IDS)), 1, 2)}


def test_concurrent_shard_processes(study: Path) -> None:
    set_methods(study, python_method("p", "soft") + python_method("q", "counted"))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    procs = [subprocess.Popen([sys.executable, "-m", "study", "--study", str(study), "render",
                               "--no-progress", "--shard", f"{k}/2"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for k in (1, 2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all("rendered 3, skipped 0" in o for o in outs), outs
    r = rows(study)
    assert len(r) == 6 and {x["status"] for x in r.values()} == {"done"}


def test_tile_windows_cover_each_pixel_once() -> None:
    for size in (1, 7, 48, 64, 100, 257):
        for tile, overlap in ((16, 4), (32, 8), (33, 0), (300, 10)):
            cores = windows(size, tile, overlap)
            covered = np.zeros(size, int)
            for w0, w1, c0, c1 in cores:
                covered[c0:c1] += 1
                assert 0 <= w0 <= c0 < c1 <= w1 <= size
                assert w1 - w0 == min(tile, size)
                # A core keeps `overlap` pixels of context unless it touches the image edge.
                assert c0 - w0 >= overlap or w0 == 0
                assert w1 - c1 >= overlap or w1 == size
            assert (covered == 1).all()


def test_tiled_equals_whole_image_for_a_local_model() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, padding=2), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 3, 3, padding=1)).eval()
    x = torch.rand(1, 3, 75, 101)
    with torch.no_grad():
        whole = net(x)
        for tile, overlap in ((24, 3), (32, 8), (40, 5)):
            part = tiled(lambda t, depth=None: net(t), x, tile, overlap, depth=None)
            assert torch.allclose(part, whole, atol=1e-5), (tile, overlap)


def test_tiled_render_through_the_cli(study: Path, run_cli) -> None:
    set_methods(study, python_method("local", "local"))
    run_cli("render", "--no-progress", cwd=study)
    whole = {i: load_rgb(study / "renders" / "local" / f"{i}.png") for i in IDS}
    set_render(study, "tile", "24")
    set_render(study, "tile_overlap", "6")
    run_cli("render", "--no-progress", "--force", cwd=study)
    for i in IDS:
        tiled_out = load_rgb(study / "renders" / "local" / f"{i}.png")
        assert np.abs(tiled_out.astype(int) - whole[i].astype(int)).max() <= 1


def test_out_of_memory_falls_back_to_tiles(study: Path, run_cli) -> None:
    set_methods(study, python_method("oom", "oom") + python_method("soft", "soft"))
    set_render(study, "tile_overlap", "4")
    out = run_cli("render", "--no-progress", cwd=study).output
    assert "out of memory; ran in 32px tiles" in out
    for i in IDS:
        a = load_rgb(study / "renders" / "oom" / f"{i}.png").astype(int)
        b = load_rgb(study / "renders" / "soft" / f"{i}.png").astype(int)
        assert np.abs(a - b).max() <= 1


def test_scores_table_and_border_crop(study: Path, run_cli) -> None:
    set_methods(study, python_method("soft", "soft", 'team = "Soft"\nruntime_s = 0.25')
                + python_method("flip", "counted"))
    result = run_cli("render", "--no-progress", cwd=study)
    assert "Track 1" in result.output and "PSNR dB" in result.output
    st = Study.open(study)
    r = rows(study)
    conn = sqlite3.connect(study / "study.db")
    refs = dict(conn.execute("SELECT image_id, reference_path FROM images"))
    conn.close()

    def metric(method: str, image_id: str, border: int) -> tuple[float, float]:
        t = lambda p: torch.from_numpy(load_rgb(p)).permute(2, 0, 1)[None].float() / 255  # noqa
        x, y = t(study / r[(method, image_id)]["path"]), t(refs[image_id])
        return float(psnr(x, y, border)[0]), float(ssim(x, y, border)[0])

    for i in IDS:
        p, s = metric("soft", i, 0)
        assert r[("soft", i)]["psnr"] == pytest.approx(p, abs=1e-6)
        assert r[("soft", i)]["ssim"] == pytest.approx(s, abs=1e-6)
    table = {row["method"]: row for row in track1_table(st)}
    soft = table["soft"]
    assert soft["done"] == 3 and soft["failed"] == 0 and soft["team"] == "Soft"
    assert soft["psnr"] == pytest.approx(np.mean([metric("soft", i, 0)[0] for i in IDS]))
    assert soft["runtime_s"] > 0 and soft["runtime_reported_s"] == 0.25
    assert soft["device"] and "thread" in soft["device"]
    assert re.search(r"(?m)^soft\s+3/3\s+0\s+\d+\.\d\d\s+0\.\d{4}", result.output)

    # A new border crop rescores the existing outputs without rendering them again.
    set_render(study, "border_crop", "8")
    again = run_cli("render", "--no-progress", cwd=study)
    assert "rendered 0, skipped 6" in again.output and "border crop 8 px" in again.output
    r2 = rows(study)
    for i in IDS:
        assert r2[("soft", i)]["border_crop"] == 8
        assert r2[("soft", i)]["psnr"] == pytest.approx(metric("soft", i, 8)[0], abs=1e-6)


def test_unknown_method_and_bad_shard(study: Path, run_cli) -> None:
    set_methods(study, python_method("soft", "soft"))
    out = run_cli("render", "--methods", "soft,nope", cwd=study, expect=2).output
    assert "unknown method(s): nope" in out and "soft" in out
    out = run_cli("render", "--shard", "3/2", cwd=study, expect=2).output
    assert "K must be between 1 and N" in out
    assert rows(study) == {}


def test_method_needing_depth_without_depth(tmp_path: Path, run_cli) -> None:
    from conftest import make_ebb

    ds = make_ebb(tmp_path / "nodepth", ids=(1, 2), depth=False)
    st = tmp_path / "st"
    run_cli("init", st, "--dataset", ds)
    (st / "code").mkdir()
    (st / "code" / "rmethods.py").write_text(METHODS_PY + "\ndef with_depth(x, d):\n    return x\n")
    set_methods(st, python_method("d", "with_depth", "needs_depth = true")
                + python_method("soft", "soft"))
    out = run_cli("render", "--no-progress", cwd=st, expect=1).output
    assert "needs depth maps" in out
    r = rows(st)
    assert r[("d", "1")]["status"] == "failed" and "depth map" in r[("d", "1")]["error"]
    assert r[("soft", "1")]["status"] == "done"


def test_builtin_controls(study: Path, run_cli) -> None:
    set_methods(study, '''
[methods.input]
kind = "builtin"
builtin = "input"

[methods.reference]
kind = "builtin"
builtin = "reference"
''')
    out = run_cli("render", "--no-progress", cwd=study).output
    conn = sqlite3.connect(study / "study.db")
    pairs = conn.execute("SELECT image_id, input_path, reference_path FROM images").fetchall()
    conn.close()
    r = rows(study)
    for image_id, inp, ref in pairs:
        np.testing.assert_array_equal(load_rgb(study / r[("input", image_id)]["path"]),
                                      load_rgb(inp))
        np.testing.assert_array_equal(load_rgb(study / r[("reference", image_id)]["path"]),
                                      load_rgb(ref))
        assert r[("reference", image_id)]["psnr"] == float("inf")
        assert r[("reference", image_id)]["ssim"] == pytest.approx(1.0)
    assert re.search(r"(?m)^reference\s+3/3\s+0\s+inf\s+1\.0000", out)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_requested_without_cuda(study: Path, run_cli) -> None:
    set_methods(study, python_method("soft", "soft"))
    out = run_cli("render", "--device", "cuda", cwd=study, expect=2).output
    assert "CUDA was requested" in out and "--device cpu" in out


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_render_with_fp16(study: Path, run_cli) -> None:
    set_methods(study, python_method("local", "local"))
    run_cli("render", "--no-progress", "--device", "cpu", cwd=study)
    cpu = {i: load_rgb(study / "renders" / "local" / f"{i}.png") for i in IDS}
    set_render(study, "fp16", "true")
    run_cli("render", "--no-progress", "--device", "cuda", "--force", cwd=study)
    r = rows(study)
    for i in IDS:
        assert r[("local", i)]["device"] == torch.cuda.get_device_name(0)
        gpu = load_rgb(study / "renders" / "local" / f"{i}.png")
        assert np.abs(gpu.astype(int) - cpu[i].astype(int)).max() <= 3
