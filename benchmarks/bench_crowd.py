"""Publish and collect throughput against the bundled marketplace over real HTTP.

    python benchmarks/bench_crowd.py [--quick]

publish: HITs per second with the design, page rendering, image hosting and the journal
(two rows and a fault point per call), against raw CreateHITWithHITType calls with the same
Question on the same server. collect: assignments per second fetched, parsed, checked, decided,
approved and bonused exactly once, against a bare GetAssignment round trip per assignment.
page weight: the bytes one HIT of a 1536x1024 study sends a worker (page and every image), in each
hosting.image_format, against the renders and dataset files served as they are (PNG outputs,
JPEG references: the pages before one format was chosen), with the PSNR of what is shown
against the render.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

QUIET = lambda _m: None  # noqa: E731


def _study(base: Path, n_images: int) -> Path:
    from conftest import CLI
    from test_crowd_support import add_renders, make_bokeh_dataset, set_config

    dataset = make_bokeh_dataset(base / "data", ids=tuple(range(1, n_images + 1)))
    root = base / "study"
    CLI()("init", root, "--dataset", dataset, "--images", str(n_images))
    add_renders(root)
    set_config(root, "[design]\nitems_per_hit = 10\nratings_per_item = 3\n")
    set_config(root, "[quality]\nbonus_usd = 0.05\nbonus_reason = \"Thanks\"\n")
    set_config(root, "[budget]\nmax_usd = 10000.0\n")
    return root


PHOTO_H, PHOTO_W = 1024, 1536


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
                rows.append({"benchmark": "crowd", "figure": f"HIT page weight, files as "
                             f"rendered ({len(items)} pairs, 1536x1024)",
                             "value": round(before / 1e6, 2), "unit": "MB",
                             "reference": None, "ratio": None})
            total = len(html) + sum(sizes)
            low = min(psnrs)
            rows.append({"benchmark": "crowd",
                         "figure": f"HIT page weight, {fmt} (min PSNR "
                                   f"{'lossless' if low == float('inf') else f'{low:.1f} dB'})",
                         "value": round(total / 1e6, 2), "unit": "MB",
                         "reference": round(before / 1e6, 2),
                         "ratio": round(total / before, 2)})
            if fmt.startswith("jpeg q90"):
                rows.append({"benchmark": "crowd",
                             "figure": "first two pairs (loaded first), jpeg q90",
                             "value": round((len(html) + first) / 1e6, 2), "unit": "MB",
                             "reference": round(total / 1e6, 2),
                             "ratio": round((len(html) + first) / total, 2)})
            rows.append({"benchmark": "crowd", "figure": f"HIT page HTML, {fmt}",
                         "value": round(len(html) / 1e3, 1), "unit": "kB",
                         "reference": None, "ratio": None})
            conn.close()
    return rows


def main(quick: bool = False) -> list[dict]:
    import requests
    import tqdm  # noqa: F401 - imported before timing, as in a long-running process

    from hit_templates import environment
    from study.crowd.client import requester
    from study.crowd.collect import collect
    from study.crowd.hosting import Hosting
    from study.crowd.pages import question_xml
    from study.crowd.publish import publish
    from study.studydir import Study
    from test_crowd_support import answers_for
    from test_crowd_support import study_service, work_one_hit

    n_images = 6 if quick else 20
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = _study(Path(tmp), n_images)
        with study_service(root) as (url, _market):
            study = Study.open(root)
            environment().get_template("task.html.j2")  # imports and template compilation
            t = time.perf_counter()
            publish(study, "sandbox", echo=QUIET)
            publish_s = time.perf_counter() - t
            conn = study.connect()
            n_hits = conn.execute("SELECT COUNT(*) FROM hits").fetchone()[0]
            type_id = conn.execute("SELECT hit_type_id FROM hits").fetchone()[0]
            question = question_xml(study, conn, Hosting(study, conn), 0)
            with requester(study, "sandbox") as api:
                t = time.perf_counter()
                for i in range(n_hits):
                    api.client.create_hit_with_hit_type(
                        HITTypeId=type_id, MaxAssignments=1, LifetimeInSeconds=60,
                        Question=question, RequesterAnnotation=f"bench-{i}")
                raw_s = time.perf_counter() - t
            rate, ref = n_hits / publish_s, n_hits / raw_s
            rows.append({"benchmark": "crowd", "figure": f"publish {n_hits} HITs (exactly once)",
                         "value": round(rate, 1), "unit": "HITs/s",
                         "reference": round(ref, 1), "ratio": round(rate / ref, 2)})
            # The raw HITs would take workers away from the study's own.
            with requester(study, "sandbox") as api:
                for h in api.pages("list_hits", "HITs"):
                    if h.get("RequesterAnnotation", "").startswith("bench-"):
                        api.client.update_expiration_for_hit(HITId=h["HITId"], ExpireAt=0)
            site = f"{url}/worker/sandbox"
            for w in range(3):
                s = requests.Session()
                while work_one_hit(s, site, f"BENCH{w}", answers_for(root, "careful")):
                    pass
            n_assign = conn.execute("SELECT COUNT(*) FROM hits").fetchone()[0] * 3
            t = time.perf_counter()
            collect(study, echo=QUIET)
            collect_s = time.perf_counter() - t
            ids = [r[0] for r in conn.execute("SELECT assignment_id FROM assignments")]
            with requester(study, "sandbox") as api:
                t = time.perf_counter()
                for a in ids:
                    api.client.get_assignment(AssignmentId=a)
                ref_s = time.perf_counter() - t
            rate, ref = len(ids) / collect_s, len(ids) / ref_s
            assert len(ids) == n_assign
            rows.append({"benchmark": "crowd",
                         "figure": f"collect {len(ids)} assignments (check, approve, bonus)",
                         "value": round(rate, 1), "unit": "assignments/s",
                         "reference": round(ref, 1), "ratio": round(rate / ref, 2)})
            conn.close()
    return rows + page_weight(quick)


def _print(rows: list[dict]) -> None:
    print(f"{'figure':<56} {'value':>9} {'unit':<14} {'reference':>9} {'ratio':>6}")
    for r in rows:
        ref, ratio = ("" if r[k] is None else r[k] for k in ("reference", "ratio"))
        print(f"{r['figure']:<56} {r['value']:>9} {r['unit']:<14} {ref:>9} {ratio:>6}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smaller study (about 10 s)")
    _print(main(ap.parse_args().quick))
