"""Subject models: speed against SUREAL (same data, same run) and agreement with it.

    python benchmarks/bench_subjective.py [--quick]

Rows: time of our model (value) vs SUREAL's (reference), ratio = reference / value (speed-up);
largest absolute difference against SUREAL over estimates, standard errors and CI ends; and
BT.500 + P.910 on 1,000,000 simulated ratings (20 methods x 200 images x 250 ratings per item,
each item rated by 250 of 500 workers).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis import subjective as sj  # noqa: E402
from analysis._subjective_sureal import (max_abs_diff, run_sureal, sureal_frames,  # noqa: E402
                                         to_sureal_dataset)

DATA = ROOT / "tests" / "data" / "subjective"

MODELS = {
    "P910": (sj.p910_annex_e, "P910AnnexEModel", ("quality", "bias", "inconsistency")),
    "MLE_CO": (sj.mle_content_oblivious, "MaximumLikelihoodEstimationModelContentOblivious",
               ("quality", "bias", "inconsistency")),
    "MLE": (sj.mle_full, "MaximumLikelihoodEstimationModel",
            ("quality", "bias", "inconsistency", "ambiguity")),
}


def simulate(n_methods=20, n_images=200, per_item=250, n_workers=500, seed=0, low=0, high=4):
    """Ratings = round(quality + worker bias + worker noise), clipped to the scale; each item is
    rated by ``per_item`` distinct workers drawn at random."""
    rng = np.random.default_rng(seed)
    E = n_methods * n_images
    q = rng.uniform(low + 0.5, high - 0.5, E)
    bias = rng.normal(0, 0.3, n_workers)
    noise = rng.uniform(0.3, 1.0, n_workers)
    who = np.argsort(rng.random((E, n_workers)), axis=1)[:, :per_item]
    item = np.repeat(np.arange(E), per_item)
    wk = who.ravel()
    score = np.clip(np.rint(q[item] + bias[wk] + noise[wk] * rng.standard_normal(len(item))), low, high)
    images = np.array([f"img{i:04d}" for i in range(n_images)])
    methods = np.array([f"method{i:02d}" for i in range(n_methods)])
    workers = np.array([f"w{i:04d}" for i in range(n_workers)])
    return pd.DataFrame({"image": images[item // n_methods], "method": methods[item % n_methods],
                         "worker": workers[wk], "score": score})


def _best(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _row(figure, value, unit, reference=None, ratio=None):
    return {"benchmark": "subjective", "figure": figure, "value": value, "unit": unit,
            "reference": reference, "ratio": ratio}


def _compare(label, df, models, repeat):
    rows = []
    ds = to_sureal_dataset(df)
    for key in models:
        ours_fn, theirs, parts = MODELS[key]
        t_ours, res = _best(lambda: ours_fn(df), repeat)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_ref, ref = _best(lambda: run_sureal(ds, theirs), 1 if key == "MLE" else repeat)
        frames = sureal_frames(ref)
        rows.append(_row(f"{key} {label}: seconds (ours vs SUREAL)", t_ours, "s", t_ref, t_ref / t_ours))
        for part in parts:
            d = max(max_abs_diff(getattr(res, part), frames[part]).values())
            rows.append(_row(f"{key} {label}: max |diff| {part}", d, "abs", 1e-6, None))
    return rows


def _bt500_compare(label, df):
    ds = to_sureal_dataset(df)
    t_ours, (kept, rejected) = _best(lambda: sj.bt500_screening(df, per="items"), 1)
    t_ref, ref = _best(lambda: run_sureal(ds, "BT500Model"), 1)
    theirs = set(ref["workers"][np.asarray(ref["observer_rejected"], dtype=bool)])
    return [_row(f"BT500 {label}: seconds (ours vs SUREAL)", t_ours, "s", t_ref, t_ref / t_ours),
            _row(f"BT500 {label}: rejected workers differing from SUREAL",
                 len(theirs ^ set(rejected)), "workers", 0, None)]


def main(quick: bool = False) -> list[dict]:
    rows = []
    real_models = ("P910", "MLE_CO") if quick else ("P910", "MLE_CO", "MLE")
    for name in ("vqeg_hd3_raw.csv", "nflx_public_raw.csv"):
        path = DATA / name
        if path.exists():
            rows += _compare(name.split("_raw")[0], pd.read_csv(path), real_models, 3)

    # 200 stimuli x 50 subjects, complete
    sim = simulate(n_methods=10, n_images=20, per_item=50, n_workers=50, seed=1, low=1, high=5)
    rows += _compare("sim 200x50", sim, ("P910",) if quick else ("P910", "MLE_CO", "MLE"),
                     1 if quick else 2)

    big = simulate()
    t0 = time.perf_counter()
    kept, rejected = sj.bt500_screening(big)
    t1 = time.perf_counter()
    res = sj.p910_annex_e(kept)
    t2 = time.perf_counter()
    rows.append(_row("1M ratings: BT.500 screening seconds", t1 - t0, "s"))
    rows.append(_row("1M ratings: P.910 on kept ratings seconds", t2 - t1, "s"))
    rows.append(_row("1M ratings: BT.500 + P.910 seconds (budget for all analysis 15 s)",
                     t2 - t0, "s", 15.0, 15.0 / (t2 - t0)))
    rows.append(_row("1M ratings: P.910 iterations", res.iterations, "iterations"))
    rows.append(_row("1M ratings: workers rejected by BT.500", len(rejected), "workers"))
    if not quick:
        rows += _compare("1M", kept, ("P910",), 3)
        rows += _bt500_compare("1M", big)
    return rows


def _print(rows):
    print(f"{'figure':<66} {'value':>11} {'unit':>10} {'reference':>11} {'ratio':>8}")
    for r in rows:
        def fmt(x):
            if x is None:
                return "-"
            return f"{x:.3g}" if isinstance(x, float) else str(x)
        print(f"{r['figure']:<66} {fmt(r['value']):>11} {r['unit']:>10} "
              f"{fmt(r['reference']):>11} {fmt(r['ratio']):>8}")
    print("ratio = reference / value (speed-up over SUREAL, or headroom under the budget)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer models and no SUREAL run at 1M")
    _print(main(ap.parse_args().quick))
