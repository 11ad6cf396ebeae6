"""Method plug-ins with real files: TorchScript, state dicts, torch.export, a script run as a
command, and folders of submitted results (good and bad), all through `study render`."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from study.dataset import load_depth, load_rgb
from study.render.plugins import weights_format

MODEL_SOURCE = '''
import torch

class TinyNet(torch.nn.Module):
    """Two convolutions and a sigmoid: output in [0, 1], same size as the input."""
    def __init__(self, channels: int = 3):
        super().__init__()
        self.a = torch.nn.Conv2d(3, channels, 3, padding=1)
        self.b = torch.nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x):
        return torch.sigmoid(self.b(torch.relu(self.a(x))))

def build(channels: int = 3):
    return TinyNet(channels)
'''


class TinyNet(torch.nn.Module):
    def __init__(self, channels: int = 3):
        super().__init__()
        self.a = torch.nn.Conv2d(3, channels, 3, padding=1)
        self.b = torch.nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x):
        return torch.sigmoid(self.b(torch.relu(self.a(x))))


def set_methods(study: Path, methods_toml: str) -> None:
    """Replace every [methods.*] table of study.toml with `methods_toml`."""
    path = study / "study.toml"
    out, skipping = [], False
    for line in path.read_text().splitlines():
        header = re.match(r"^\s*\[([^\]]+)\]", line)
        if header:
            skipping = header.group(1).strip().startswith("methods.")
        if not skipping:
            out.append(line)
    path.write_text("\n".join(out) + "\n\n" + methods_toml.strip() + "\n")


def rows(study: Path) -> dict[tuple[str, str], sqlite3.Row]:
    conn = sqlite3.connect(study / "study.db")
    conn.row_factory = sqlite3.Row
    try:
        return {(r["method"], r["image_id"]): r for r in conn.execute("SELECT * FROM renders")}
    finally:
        conn.close()


def inputs(study: Path) -> dict[str, Path]:
    conn = sqlite3.connect(study / "study.db")
    try:
        return {i: Path(p) for i, p in conn.execute("SELECT image_id, input_path FROM images")}
    finally:
        conn.close()


def expected_from(model, path: Path) -> np.ndarray:
    x = torch.from_numpy(load_rgb(path)).permute(2, 0, 1).unsqueeze(0).float() / 255
    with torch.no_grad():
        y = model(x)
    return (y[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def assert_close_u8(a: np.ndarray, b: np.ndarray, tol: int = 1) -> None:
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= tol


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated upstream
def test_torchscript_weights(study_dir: Path, run_cli) -> None:
    torch.manual_seed(0)
    model = TinyNet().eval()
    (study_dir / "models").mkdir()
    torch.jit.save(torch.jit.script(model), study_dir / "models" / "net.ts")
    assert weights_format(study_dir / "models" / "net.ts") == "torchscript"
    set_methods(study_dir, """
[methods.scripted]
kind = "python"
weights = "models/net.ts"
team = "Script team"
runtime_s = 0.5
""")
    result = run_cli("render", "--no-progress", cwd=study_dir)
    assert "scripted" in result.output
    r = rows(study_dir)
    for image_id, path in inputs(study_dir).items():
        row = r[("scripted", image_id)]
        assert row["status"] == "done" and row["runtime_s"] > 0 and row["device"]
        out = load_rgb(study_dir / row["path"])
        assert_close_u8(out, expected_from(model, path))
        assert row["psnr"] is not None and 0 < row["ssim"] <= 1
    conn = sqlite3.connect(study_dir / "study.db")
    team, reported = conn.execute(
        "SELECT team, runtime_reported FROM methods WHERE name='scripted'").fetchone()
    conn.close()
    assert (team, reported) == ("Script team", 0.5)


def test_state_dict_with_entry_module(study_dir: Path, run_cli) -> None:
    models = study_dir / "models"
    models.mkdir()
    (models / "tinynet_sd.py").write_text(MODEL_SOURCE)
    torch.manual_seed(1)
    model = TinyNet(channels=4).eval()
    torch.save(model.state_dict(), models / "plain.pth")
    # A training checkpoint: wrapped, with DataParallel's "module." prefixes.
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()},
                "epoch": 7}, models / "checkpoint.pth")
    assert weights_format(models / "plain.pth") == "state_dict"
    set_methods(study_dir, """
[methods.plain]
kind = "python"
entry = "tinynet_sd:build"
pythonpath = "models"
weights = "models/plain.pth"
params = { channels = 4 }

[methods.checkpoint]
kind = "python"
entry = "tinynet_sd:TinyNet"
pythonpath = "models"
weights = "models/checkpoint.pth"
params = { channels = 4 }

[methods.wrong-weights]
kind = "python"
entry = "tinynet_sd:build"
pythonpath = "models"
weights = "models/plain.pth"
""")
    result = run_cli("render", "--no-progress", cwd=study_dir, expect=1)
    r = rows(study_dir)
    for image_id, path in inputs(study_dir).items():
        want = expected_from(model, path)
        for method in ("plain", "checkpoint"):
            assert r[(method, image_id)]["status"] == "done"
            assert_close_u8(load_rgb(study_dir / r[(method, image_id)]["path"]), want)
        # channels=3 cannot hold 4-channel weights: a load failure of that method only.
        bad = r[("wrong-weights", image_id)]
        assert bad["status"] == "failed" and "do not fit the model" in bad["error"]
    assert "wrong-weights" in result.output


def test_torch_export_archive(study_dir: Path, run_cli) -> None:
    torch.manual_seed(2)
    model = TinyNet().eval()
    h, w = torch.export.Dim("h", min=8, max=4096), torch.export.Dim("w", min=8, max=4096)
    try:
        ep = torch.export.export(model, (torch.rand(1, 3, 32, 40),),
                                 dynamic_shapes=({2: h, 3: w},))
    except Exception as exc:  # pragma: no cover - depends on the torch build
        pytest.skip(f"torch.export does not work here: {exc}")
    (study_dir / "models").mkdir()
    torch.export.save(ep, study_dir / "models" / "net.pt2")
    assert weights_format(study_dir / "models" / "net.pt2") == "export"
    set_methods(study_dir, """
[methods.exported]
kind = "python"
weights = "models/net.pt2"
""")
    run_cli("render", "--no-progress", cwd=study_dir)
    r = rows(study_dir)
    for image_id, path in inputs(study_dir).items():
        assert_close_u8(load_rgb(study_dir / r[("exported", image_id)]["path"]),
                        expected_from(model, path))


INVERT_SCRIPT = '''
import os, sys
from PIL import Image
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
if os.environ.get("CALLS"):
    with open(os.environ["CALLS"], "a") as fh:
        fh.write(",".join(sorted(os.listdir(src))) + "\\n")
depth_dir = sys.argv[3] if len(sys.argv) > 3 else None
for name in os.listdir(src):
    img = np.asarray(Image.open(os.path.join(src, name)).convert("RGB"))
    if depth_dir:
        d = np.asarray(Image.open(os.path.join(depth_dir, name))).astype(np.float64) / 65535
        out = np.repeat(np.round(d * 255).astype(np.uint8)[..., None], 3, axis=2)
    else:
        out = 255 - img
    Image.fromarray(out).save(os.path.join(dst, os.path.splitext(name)[0] + ".png"))
'''


def test_command_script(study_dir: Path, run_cli) -> None:
    tools = study_dir / "tools"
    tools.mkdir()
    (tools / "invert.py").write_text(INVERT_SCRIPT)
    set_methods(study_dir, """
[methods.invert]
kind = "command"
command = "{python} tools/invert.py {input_dir} {output_dir}"
framework = "NumPy"

[methods.invert-batch]
kind = "command"
command = "{python} tools/invert.py {input_dir} {output_dir}"
batch = true
env = { CALLS = "calls.txt" }

[methods.depth-as-image]
kind = "command"
command = "{python} tools/invert.py {input_dir} {output_dir} {depth_dir}"
needs_depth = true
""")
    run_cli("render", "--no-progress", cwd=study_dir)
    r = rows(study_dir)
    conn = sqlite3.connect(study_dir / "study.db")
    depth_paths = dict(conn.execute("SELECT image_id, depth_path FROM images"))
    conn.close()
    for image_id, path in inputs(study_dir).items():
        row = r[("invert", image_id)]
        assert row["status"] == "done" and row["runtime_s"] > 0
        np.testing.assert_array_equal(load_rgb(study_dir / row["path"]), 255 - load_rgb(path))
        batch = r[("invert-batch", image_id)]
        assert batch["status"] == "done" and batch["runtime_s"] > 0
        np.testing.assert_array_equal(load_rgb(study_dir / batch["path"]), 255 - load_rgb(path))
        d = load_rgb(study_dir / r[("depth-as-image", image_id)]["path"])[..., 0]
        want = np.round(load_depth(depth_paths[image_id]) * 255)
        assert np.abs(d.astype(int) - want.astype(int)).max() <= 1
    # The batch method ran once, over every image.
    assert (study_dir / "calls.txt").read_text().split() == ["1.png,10.png,2.png"]


def write_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_folder_of_results(study_dir: Path, run_cli) -> None:
    good = study_dir / "submissions" / "good"
    for image_id, path in inputs(study_dir).items():
        write_png(good / f"{image_id}.png", load_rgb(path)[::-1].copy())
    set_methods(study_dir, """
[methods.team-a]
kind = "folder"
path = "submissions/good"
runtime_s = 1.5
hardware = "GTX 1080 Ti"
""")
    result = run_cli("render", "--no-progress", cwd=study_dir)
    r = rows(study_dir)
    for image_id, path in inputs(study_dir).items():
        row = r[("team-a", image_id)]
        assert row["status"] == "done" and row["device"] == "submitted"
        assert row["runtime_s"] is None and row["psnr"] is not None
        np.testing.assert_array_equal(load_rgb(study_dir / row["path"]), load_rgb(path)[::-1])
    assert "1.5 (reported)" in result.output


def test_bad_folder_reports_every_problem(study_dir: Path, run_cli) -> None:
    ids = sorted(inputs(study_dir), key=int)          # 1, 2, 10
    bad = study_dir / "submissions" / "bad"
    src = inputs(study_dir)
    write_png(bad / f"{ids[0]}.png", load_rgb(src[ids[0]])[:20])      # wrong size
    (bad / f"{ids[2]}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")  # undecodable
    # ids[1] is missing altogether
    set_methods(study_dir, """
[methods.team-b]
kind = "folder"
path = "submissions/bad"
""")
    result = run_cli("render", "--no-progress", cwd=study_dir, expect=1)
    out = result.output
    assert "3 problem(s)" in out
    assert "is 64x20 but the input is 64x48" in out
    assert f"no result for image {ids[1]}" in out
    assert "cannot be decoded" in out
    r = rows(study_dir)
    assert all(r[("team-b", i)]["status"] == "failed" for i in ids)
    assert "64x20" in r[("team-b", ids[0])]["error"]
    assert not (study_dir / "renders" / "team-b").exists() or \
        not any((study_dir / "renders" / "team-b").iterdir())


def test_mistakes_in_method_tables_are_reported_at_once(study_dir: Path, run_cli) -> None:
    set_methods(study_dir, """
[methods.no-entry]
kind = "python"

[methods.bad-template]
kind = "command"
command = "{python} tool.py {inputdir} {output_dir}"

[methods.no-folder]
kind = "folder"
path = "does/not/exist"

[methods.typo]
kind = "python"
entry = "m:f"
wieghts = "x.pth"
""")
    result = run_cli("render", "--no-progress", cwd=study_dir, expect=2)
    out = result.output
    assert "no-entry" in out and "bad-template" in out and "no-folder" in out
    assert "wieghts" in out
    assert "Traceback" not in out
    assert rows(study_dir) == {}
