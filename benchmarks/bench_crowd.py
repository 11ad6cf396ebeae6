"""Publish and collect throughput against the bundled marketplace over real HTTP.

    python benchmarks/bench_crowd.py [--quick]

publish: HITs per second with the design, page rendering, image hosting and the journal
(two rows and a fault point per call), against raw CreateHITWithHITType calls with the same
Question on the same server. collect: assignments per second fetched, parsed, checked, decided,
approved and bonused exactly once, against a bare GetAssignment round trip per assignment.
"""

from __future__ import annotations

import argparse
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
    return rows


def _print(rows: list[dict]) -> None:
    print(f"{'figure':<48} {'value':>9} {'unit':<14} {'reference':>9} {'ratio':>6}")
    for r in rows:
        print(f"{r['figure']:<48} {r['value']:>9} {r['unit']:<14} {r['reference']:>9} "
              f"{r['ratio']:>6}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smaller study (about 10 s)")
    _print(main(ap.parse_args().quick))
