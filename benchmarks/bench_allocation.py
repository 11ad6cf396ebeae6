"""Adaptive allocation between collection rounds against uniform allocation, on simulated
studies of the AIM 2019 shape (10 images x 9 methods, sparse HITs of 10 items, variance
components of the crossed model fitted to VQEG HD3), full budget 20 ratings per item, adaptive
start 3 per item (analysis.allocation, analysis.sequential).

    python benchmarks/bench_allocation.py [--quick] [--markdown] [--trace] [--ceiling DRAWS]
        [--seed N] [--studies N] [--gaps G,G] [--no-null]
        [--flip F] [--flip-separated F] [--change C] [--focus F] [--step S]
    python benchmarks/bench_allocation.py --stability RATINGS [--redraws N] [--gaps G,G]
    python benchmarks/bench_allocation.py --uniform-at RATINGS
    python benchmarks/bench_allocation.py --predicted RATINGS,RATINGS [--studies N]

Rows: the null family-wise error of the final analysis after adaptive stopping (reference =
alpha + 2 Monte-Carlo SE, ratio <= 1 passes); per adjacent gap, the median share of uniform's
ratings adaptive needed to reach uniform's verdict at the full budget (same separated pairs,
hence the same ranking claims and letters; a study where it did not counts as never), how often
it did, the ceiling (how often any analysis of the ratings adaptive collected could, knowing
the study's every effect), and how often the plan said the gaps were too small for the budget,
with the median number of images it named. Adaptive and uniform see the same study and the same
worker responses: adaptive's ratings are the first of each item's ratings that uniform
analyses. --trace adds one line per study: its share of the ratings, whether it reached
uniform's verdict, its rounds and why it stopped. --stability prints, per gap, how often uniform
stopped at RATINGS per item reaches its own full-budget verdict, the ceiling for any rule that
stops there, and the share of the modal full-budget verdict over new rating noise on the same
study (analysis.sequential.stability). The rule's constants (--flip, --change, --focus,
--step) let the alternatives in docs/allocation.md be measured again; tune them on other
seeds (--seed) than the ones reported."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# The model's matrices are small: BLAS threads only contend with each other and with other
# processes (a fit took 20 times longer with them on two busy cores).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis import allocation, sequential
from analysis.calibration import Design, components_of

DATA = ROOT / "tests" / "data" / "subjective" / "vqeg_hd3_raw.csv"
GAPS = (0.5, 0.3, 0.2, 0.1, 0.05)
ALPHA = 0.05
INITIAL = 3


def main(quick: bool = False, n_gap: int | None = None, seed: int = 2, null: bool = True,
         gap_list=None, ceiling: int | None = None) -> list[dict]:
    df = pd.read_csv(DATA, dtype={"worker": str}).astype({"score": float})
    comp = components_of(df)
    design = Design(ratings_per_item=20)
    n_null = 20 if quick else 200
    n_gap = n_gap or (4 if quick else 20)
    ceiling = (0 if quick else 10) if ceiling is None else ceiling
    rows: list[dict] = []
    if null:
        t0 = time.perf_counter()
        res = sequential.family_wise_error(design, comp, n_null, initial=INITIAL, seed=seed - 1,
                                           alpha=ALPHA)
        rows.append({"benchmark": "allocation", "figure": f"FWER after adaptive stopping, no "
                     f"method effect ({n_null} studies, median share of ratings "
                     f"{res['median_share']:.2f}, {time.perf_counter() - t0:.0f} s)",
                     "value": res["fwer"], "unit": "rate", "reference": res["limit"],
                     "ratio": res["fwer"] / res["limit"]})
    for gap in gap_list or ((0.5, 0.05) if quick else GAPS):
        t0 = time.perf_counter()
        gaps = gap * (np.arange(design.n_methods) - (design.n_methods - 1) / 2)
        r = sequential.compare(design, comp, gaps, n_gap, initial=INITIAL, seed=seed, alpha=ALPHA,
                               ceiling=ceiling)
        images = r["images_needed"]
        rows.append({"benchmark": "allocation", "figure": f"adjacent gap {gap}: median share of "
                     f"uniform's ratings to reach its verdict ({n_gap} studies; same verdict in "
                     f"{r['same']:.0%}"
                     + (f" (ceiling {r['ceiling']:.0%})" if ceiling else "")
                     + f", median share spent {r['median_share']:.2f}, plan says "
                     f"gaps too small in {r['too_small']:.0%}"
                     + (f", naming a median {int(np.median(images))} images" if images else "")
                     + f"; {time.perf_counter() - t0:.0f} s)",
                     "value": r["median_needed"], "unit": "share", "reference": 0.6,
                     "ratio": r["median_needed"] / 0.6, "trace": r["rows"]})
    return rows


def _markdown(rows: list[dict]) -> str:
    out = ["| figure | value | reference |", "|---|---|---|"]
    for r in rows:
        ref = "" if r["reference"] is None else f"{r['reference']:.3f}"
        out.append(f"| {r['figure']} | {r['value']:.3f} | {ref} |")
    return "\n".join(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="print the table for docs/allocation.md")
    ap.add_argument("--flip", type=float, default=allocation.FLIP,
                    help="a pair is let go once the full budget would change its verdict in at "
                         "most this share of the draws")
    ap.add_argument("--flip-separated", type=float, default=allocation.FLIP_SEPARATED,
                    help="the same for a pair separated now")
    ap.add_argument("--change", type=float, default=allocation.CHANGE,
                    help="collection goes on while the full budget would change some verdict in "
                         "more than this share of the draws")
    ap.add_argument("--ceiling", type=int, default=None, metavar="DRAWS",
                    help="the most any analysis of the ratings adaptive collected could reach "
                         "uniform's verdict, from DRAWS new draws of the rest's noise per study "
                         "(default 10, 0 with --quick; 0 = not measured)")
    ap.add_argument("--focus", type=float, default=allocation.FOCUS,
                    help="the next round rates the items of the undecided pairs whose chance of a "
                         "change is at least this share of the largest")
    ap.add_argument("--studies", type=int, default=0, help="studies per gap (default 20)")
    ap.add_argument("--no-null", action="store_true", help="skip the family-wise error row")
    ap.add_argument("--step", type=float, default=allocation.STEP,
                    help="each round multiplies an undecided item's ratings by this")
    ap.add_argument("--uniform-at", type=int, default=0,
                    help="instead: how often uniform allocation stopped at this many ratings per "
                         "item reaches its own full-budget verdict, per gap")
    ap.add_argument("--stability", type=int, default=0, metavar="RATINGS",
                    help="instead: per gap, how often uniform stopped at RATINGS per item reaches "
                         "its own full-budget verdict, the share of the modal full-budget verdict "
                         "over new rating noise on the same study, and the ceiling for any rule "
                         "that stops at RATINGS per item (analysis.sequential.stability)")
    ap.add_argument("--predicted", type=str, default="", metavar="RATINGS,RATINGS",
                    help="instead: per gap, the look's mean chance that the full budget changes "
                         "some verdict against how often it did, for uniform allocation stopped at "
                         "each of these ratings per item")
    ap.add_argument("--redraws", type=int, default=20,
                    help="new draws of the rating noise per study for --stability")
    ap.add_argument("--gaps", type=str, default="",
                    help="comma-separated adjacent gaps (default: all)")
    ap.add_argument("--seed", type=int, default=2, help="seed of the studies with a method effect")
    ap.add_argument("--trace", action="store_true",
                    help="also print each study: share of the ratings, same verdict, rounds, stop")
    args = ap.parse_args()
    allocation.FLIP, allocation.FLIP_SEPARATED = args.flip, args.flip_separated
    allocation.STEP, allocation.CHANGE = args.step, args.change
    allocation.FOCUS = args.focus
    if args.gaps:
        GAPS = tuple(float(g) for g in args.gaps.split(","))
    if args.stability:
        df = pd.read_csv(DATA, dtype={"worker": str}).astype({"score": float})
        design, comp = Design(ratings_per_item=20), components_of(df)
        for gap in GAPS:
            t0 = time.perf_counter()
            gaps = gap * (np.arange(design.n_methods) - (design.n_methods - 1) / 2)
            r = sequential.stability(design, comp, gaps, 4 if args.quick else 20,
                                     args.stability, redraws=args.redraws, seed=args.seed)
            print(f"| {gap} | {r['studies']} | {r['early']:.2f} | {r['bound']:.2f} | "
                  f"{r['modal']:.2f} | {time.perf_counter() - t0:.0f} s |", flush=True)
        sys.exit(0)
    if args.predicted:
        df = pd.read_csv(DATA, dtype={"worker": str}).astype({"score": float})
        design, comp = Design(ratings_per_item=20), components_of(df)
        seen = tuple(int(n) for n in args.predicted.split(","))
        for gap in GAPS:
            gaps = gap * (np.arange(design.n_methods) - (design.n_methods - 1) / 2)
            r = sequential.predicted_change(design, comp, gaps, args.studies or 20, seen,
                                            seed=args.seed)
            print(f"| {gap} | " + " | ".join(f"{r[n]['predicted']:.2f} / {r[n]['changed']:.2f}"
                                             for n in seen) + " |", flush=True)
        sys.exit(0)
    if args.uniform_at:
        df = pd.read_csv(DATA, dtype={"worker": str}).astype({"score": float})
        design, comp = Design(ratings_per_item=20), components_of(df)
        for gap in GAPS:
            gaps = gap * (np.arange(design.n_methods) - (design.n_methods - 1) / 2)
            share = sequential.uniform_early(design, comp, gaps, 4 if args.quick else 20,
                                             args.uniform_at, seed=2)
            print(f"adjacent gap {gap}: uniform at {args.uniform_at} of 20 ratings per item "
                  f"reaches its full-budget verdict in {share:.0%}")
        sys.exit(0)
    rows = main(args.quick, args.studies or None, args.seed, not args.no_null,
                GAPS if args.gaps else None, args.ceiling)
    print(_markdown(rows) if args.markdown else "\n".join(
        str({k: v for k, v in r.items() if k != "trace"}) for r in rows))
    if args.trace:
        for r in rows:
            for t in r.get("trace", []):
                print(f"{r['figure'][:22]:22}  share {t['share']:.2f}  same {t['same']!s:5}  "
                      f"rounds {t['rounds']}  stop: {t['stop']}")
