"""The weight of one HIT's page: the bytes one HIT of a 1536x1024 study sends a worker (page
and every image), in each hosting.image_format, against the renders and dataset files served as
they are (PNG outputs, JPEG references: the pages before one format was chosen), with the PSNR of
what is shown against the render.

Fidelity is measured where the worker looks. The page before opened every pair scaled to fit
(0.39x on a 1366x768 laptop), so what reached the screen had lost the fine detail a bokeh
judgement rests on; its PSNR row resamples the render to that size and back. The page now opens at
1:1, so what reaches the screen is the encoded copy itself.

    python benchmarks/bench_page.py [--quick]
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO_H, PHOTO_W = 1024, 1536
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]




def _photo_study(base: Path, n_images: int) -> Path:
    """An EBB!-layout dataset of real photos at 1536x1024 (crops of the stereo motorcycle,
    upscaled), JPEG files as EBB! ships them: a sharp original and a blurred bokeh reference."""
    import numpy as np
    from PIL import Image, ImageFilter
    from skimage import data

    from conftest import CLI
    from test_crowd_support import add_renders, set_config

    left = Image.fromarray(np.ascontiguousarray(data.stereo_motorcycle()[0][..., :3]))
    for i in range(1, n_images + 1):
        w, h = left.size
        box = (8 * i, 4 * i, w - 8 * i, h - 4 * i)
        sharp = left.crop(box).resize((PHOTO_W, PHOTO_H), Image.BICUBIC)
        sharp = sharp.transpose(Image.FLIP_LEFT_RIGHT) if i % 2 else sharp
        for sub, im in (("original", sharp), ("bokeh", sharp.filter(ImageFilter.GaussianBlur(6)))):
            path = base / "data" / "test" / sub / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            im.save(path, quality=95)
    root = base / "study"
    CLI()("init", root, "--dataset", base / "data", "--images", str(n_images))
    add_renders(root)
    set_config(root, "[design]\nitems_per_hit = 10\nratings_per_item = 3\n")
    return root


def page_weight(quick: bool = False) -> list[dict]:
    """Bytes per HIT for each image format, and PSNR of the shown images against the files the
    renderer and dataset wrote."""
    import numpy as np
    from flask import Flask
    from PIL import Image

    from study.crowd import design
    from study.crowd.hosting import Hosting
    from study.crowd.pages import page_items, render_page, tasks_blueprint
    from study.studydir import Study

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = _photo_study(Path(tmp), 3 if quick else 4)
        before = None
        for fmt, quality in (("png", 90), ("webp", 90), ("jpeg", 95), ("jpeg", 90)):
            toml = root / "study.toml"
            text = re.sub(r'(?m)^image_format = ".*"$', f'image_format = "{fmt}"',
                          toml.read_text())
            toml.write_text(re.sub(r"(?m)^image_quality = .*$", f"image_quality = {quality}",
                                   text))
            fmt = f"{fmt} q{quality} 4:4:4" if fmt == "jpeg" else fmt
            study = Study.open(root)
            conn = study.connect()
            design.ensure_design(study, conn)
            hosting = Hosting(study, conn)
            items = page_items(conn, hosting, 0)
            html = render_page(items, "t", design.study_scale(study, conn)).encode()
            app = Flask("bench")
            app.register_blueprint(tasks_blueprint(study))
            client = app.test_client()
            sizes, psnrs, first = [], [], 0
            for k, (row, item) in enumerate(zip(design.hit_items(conn, 0), items)):
                for side in ("reference", "result"):
                    url = item[f"{side}_url"]
                    body = client.get(url[url.index("/img/"):]).data
                    sizes.append(len(body))
                    first += len(body) if k < 2 else 0
                    source = np.asarray(Image.open(row[f"{side}_path"]).convert("RGB"), float)
                    shown = np.asarray(Image.open(hosting.file(row[f"{side}_path"]))
                                       .convert("RGB"), float)
                    mse = float(np.mean((source - shown) ** 2))
                    psnr = 10 * np.log10(255 ** 2 / mse) if mse else float("inf")
                    psnrs.append(psnr)
            if before is None:
                # The files as the renderer and dataset wrote them, one copy per appearance.
                before = len(html) + sum(
                    Path(row[f"{side}_path"]).stat().st_size
                    for row in design.hit_items(conn, 0) for side in ("reference", "result"))
                rows.append({"benchmark": "page", "figure": f"HIT page weight, files as "
                             f"rendered ({len(items)} pairs, 1536x1024)",
                             "value": round(before / 1e6, 2), "unit": "MB",
                             "reference": None, "ratio": None})
            total = len(html) + sum(sizes)
            low = min(psnrs)
            rows.append({"benchmark": "page",
                         "figure": f"HIT page weight, {fmt} (min PSNR "
                                   f"{'lossless' if low == float('inf') else f'{low:.1f} dB'})",
                         "value": round(total / 1e6, 2), "unit": "MB",
                         "reference": round(before / 1e6, 2),
                         "ratio": round(total / before, 2)})
            if fmt.startswith("jpeg q90"):
                rows.append({"benchmark": "page",
                             "figure": "first two pairs (loaded first), jpeg q90",
                             "value": round((len(html) + first) / 1e6, 2), "unit": "MB",
                             "reference": round(total / 1e6, 2),
                             "ratio": round((len(html) + first) / total, 2)})
            if fmt.startswith("png"):
                rows.append(_shown_at_fit(design.hit_items(conn, 0)))
            rows.append({"benchmark": "page", "figure": f"HIT page HTML, {fmt}",
                         "value": round(len(html) / 1e3, 1), "unit": "kB",
                         "reference": None, "ratio": None})
            conn.close()
    return rows


def _shown_at_fit(hit_rows, scale: float = 0.39) -> dict:
    """PSNR of what the page before showed by default: each render scaled to fit a 1366x768
    laptop (0.39x, as measured in Chromium) and, to compare it with the render, scaled back."""
    import numpy as np
    from PIL import Image

    psnrs = []
    for row in hit_rows:
        for side in ("reference", "result"):
            source = Image.open(row[f"{side}_path"]).convert("RGB")
            w, h = source.size
            shown = source.resize((round(w * scale), round(h * scale)), Image.LANCZOS)
            back = np.asarray(shown.resize((w, h), Image.BICUBIC), float)
            mse = float(np.mean((np.asarray(source, float) - back) ** 2))
            psnrs.append(10 * np.log10(255 ** 2 / mse))
    return {"benchmark": "page",
            "figure": f"PSNR on screen, the page before at its default fit ({scale}x, 1366x768)",
            "value": float(round(min(psnrs), 1)), "unit": "dB (min)", "reference": None, "ratio": None}


def main(quick: bool = False) -> list[dict]:
    return page_weight(quick)


if __name__ == "__main__":
    for row in main("--quick" in sys.argv):
        print(row)
