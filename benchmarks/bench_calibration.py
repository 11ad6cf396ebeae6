"""Calibration of the verdicts: family-wise type-I error and power of the crossed mixed model's
pairwise tests (Satterthwaite df, Holm) on simulated studies of the AIM 2019 shape.

Variance components are those of the crossed model fitted to the two real datasets in
tests/data/subjective. Each study: 10 images x 9 methods, the sparse HIT layout (10 items per
HIT, R distinct workers per HIT, about 3 HITs per worker), integer ratings 1..5.

    python benchmarks/bench_calibration.py [--quick] [--markdown]

Rows: FWER with no method effect (reference = alpha + 2 Monte-Carlo SE, the limit; ratio =
FWER / limit, so <= 1 passes), the same for the model without the image:method term (to show
why it is not used), and power against one method better by a gap of 0.05-0.5."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.calibration import (CALM_CROWD, Design, components_of, family_wise_error,  # noqa: E402
                                  power, screening_accuracy)

DATA = ROOT / "tests" / "data" / "subjective"
DATASETS = {"VQEG HD3": "vqeg_hd3_raw.csv", "Netflix public": "nflx_public_raw.csv"}
GAPS = (0.05, 0.1, 0.2, 0.3, 0.5)
ALPHA = 0.05


def components() -> dict:
    out = {}
    for name, file in DATASETS.items():
        df = pd.read_csv(DATA / file, dtype={"worker": str}).astype({"score": float})
        out[name] = components_of(df)
    return out


def main(quick: bool = False) -> list[dict]:
    n_null = 100 if quick else 1000
    n_power = 40 if quick else 200
    rows: list[dict] = []
    comps = components()
    for name, comp in comps.items():
        for r in ((20,) if quick else (10, 30)):
            t0 = time.perf_counter()
            res = family_wise_error(Design(ratings_per_item=r), comp, n_null, seed=r, alpha=ALPHA)
            rows.append({"benchmark": "calibration", "figure": f"FWER, no method effect, {name} "
                         f"components, R={r} ({n_null} studies, {time.perf_counter() - t0:.0f} s)",
                         "value": res["fwer"], "unit": "rate", "reference": res["limit"],
                         "ratio": res["fwer"] / res["limit"]})
    name, comp = "VQEG HD3", comps["VQEG HD3"]
    res = family_wise_error(Design(ratings_per_item=20), comp, n_power, seed=7, alpha=ALPHA,
                            model="no-interaction")
    rows.append({"benchmark": "calibration", "figure": f"FWER of the model without image:method, "
                 f"{name}, R=20 ({n_power} studies)", "value": res["fwer"], "unit": "rate",
                 "reference": res["limit"], "ratio": res["fwer"] / res["limit"]})
    for name, comp in comps.items():
        for gap in ((0.2, 0.5) if quick else GAPS):
            res = power(Design(ratings_per_item=20), comp, gap, n_power, seed=11, alpha=ALPHA)
            rows.append({"benchmark": "calibration", "figure": f"power at gap {gap}, {name}, R=20 "
                         f"({n_power} studies; FWER of the equal pairs "
                         f"{res['fwer_equal_pairs']:.3f})", "value": res["power"],
                         "unit": "rate", "reference": None, "ratio": None})
    rows.extend(screening_rows(comps["VQEG HD3"], 10 if quick else 50))
    rows.append({"benchmark": "calibration", "figure": "variance components (worker, image, "
                 "image:method, residual): " + "; ".join(
                     f"{n} " + ", ".join(f"{v:.3f}" for v in c.values()) for n, c in comps.items()),
                 "value": None, "unit": "", "reference": None, "ratio": None})
    return rows


def screening_rows(vqeg: dict, n_studies: int) -> list[dict]:
    """BT.500 flags on crowds with 20% random raters: as SUREAL does it (every item, every
    worker) and as the analysis does it (items whose raters all agree skipped, workers with
    fewer than 20 testable ratings unscreened)."""
    rows = []
    designs = {"complete panel of 15": Design(ratings_per_item=15, complete=True),
               "sparse, R=10, 3 HITs per worker": Design(ratings_per_item=10),
               "sparse, R=10, 1 HIT per worker": Design(ratings_per_item=10, hits_per_worker=1)}
    for crowd, comp in (("VQEG-like crowd", vqeg), ("calm crowd", CALM_CROWD)):
        for label, design in designs.items():
            for rule, opts in (("SUREAL rule", {"min_ratings": 0, "skip_constant": False}),
                               ("our rule", {})):
                r = screening_accuracy(design, comp, 0.2, n_studies, seed=3, **opts)
                rows.append({"benchmark": "calibration", "figure": f"BT.500 precision, {crowd}, "
                             f"{label}, {rule} (recall {r['recall']:.2f}, honest flagged "
                             f"{r['honest_flagged']:.3f}; {n_studies} studies)",
                             "value": r["precision"], "unit": "rate", "reference": None,
                             "ratio": None})
    return rows


def _markdown(rows: list[dict]) -> str:
    out = ["| figure | value | limit (α + 2 SE) |", "|---|---|---|"]
    for r in rows:
        v = "" if r["value"] is None else f"{r['value']:.3f}"
        ref = "" if r["reference"] is None else f"{r['reference']:.3f}"
        out.append(f"| {r['figure']} | {v} | {ref} |")
    return "\n".join(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="print the table for docs/calibration.md")
    args = ap.parse_args()
    rows = main(args.quick)
    if args.markdown:
        print(_markdown(rows))
    else:
        for r in rows:
            print(r)
