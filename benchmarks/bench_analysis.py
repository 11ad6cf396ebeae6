"""Analysis speed on a large simulated study.

Full run: 1,000,000 ratings (20 methods x 200 images x 250 ratings per item, 1,000 workers):
MOS per item and method, 2,000-replicate bootstrap CIs over images and workers, Friedman,
190 pairwise Wilcoxon tests with Holm, letters, BT.500 screening and the P.910 Annex E model,
timed together; the reference is a plain pandas groupby implementation of the same MOS and
bootstrap (its bootstrap timed on a few replicates and scaled). Also the crossed mixed model
score ~ method + (1|worker) + (1|image) + (1|image:method) with all pairwise contrasts on
100,000 ratings, and statsmodels MixedLM (the same model, no contrasts) against it on 2,000.

    python benchmarks/bench_analysis.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from analysis.letters import letters  # noqa: E402
from analysis.mos import cell_stats, encode, item_table, method_table  # noqa: E402
from analysis.scale import Scale  # noqa: E402
from analysis.mixed_model import mixed_model  # noqa: E402
from analysis.significance import friedman, pairwise_wilcoxon  # noqa: E402
from analysis.uncertainty import bootstrap_method_mos  # noqa: E402
from analysis_sim import simulate  # noqa: E402


def ours(df: pd.DataFrame, scale: Scale, n_boot: int) -> tuple[dict, pd.DataFrame]:
    t: dict[str, float] = {}
    try:
        from analysis import subjective
    except ImportError:
        subjective = None
    t0 = time.perf_counter()
    if subjective is not None:
        s = time.perf_counter()
        kept, _ = subjective.bt500_screening(df)
        t["bt500"] = time.perf_counter() - s
        s = time.perf_counter()
        subjective.p910_annex_e(df)
        t["p910"] = time.perf_counter() - s
    else:
        kept = df
    s = time.perf_counter()
    coded = encode(kept)
    cs = cell_stats(coded)
    methods = method_table(cs, scale)
    item_table(cs)
    t["mos"] = time.perf_counter() - s
    s = time.perf_counter()
    bootstrap_method_mos(coded, n_boot=n_boot, seed=0)
    t["bootstrap"] = time.perf_counter() - s
    s = time.perf_counter()
    friedman(cs.mean)
    pw = pairwise_wilcoxon(cs.mean, list(coded.methods), "holm")
    t["tests"] = time.perf_counter() - s
    s = time.perf_counter()
    order = list(methods.sort_values("rank")["method"])
    padj = pw["p_adjusted"].loc[order, order].to_numpy()
    letters(order, np.nan_to_num(padj, nan=1.0) < 0.05)
    t["letters"] = time.perf_counter() - s
    t["total"] = time.perf_counter() - t0
    return t, methods


def naive(df: pd.DataFrame, n_boot: int, timed_reps: int) -> tuple[float, pd.Series]:
    """MOS by groupby, and a bootstrap that resamples images and workers with pandas merges."""
    t0 = time.perf_counter()
    mos = df.groupby(["image", "method"])["score"].mean().groupby("method").mean()
    t_mos = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    images = df["image"].unique()
    workers = df["worker"].unique()
    t0 = time.perf_counter()
    for _ in range(timed_reps):
        wi = pd.Series(rng.choice(workers, len(workers))).value_counts().rename("ww")
        ii = pd.Series(rng.choice(images, len(images))).value_counts().rename("wi")
        d = df.join(wi, on="worker", how="inner")
        d["sw"] = d["score"] * d["ww"]
        cell = d.groupby(["image", "method"])[["sw", "ww"]].sum()
        cell = (cell["sw"] / cell["ww"]).rename("m").reset_index().join(ii, on="image", how="inner")
        cell["mw"] = cell["m"] * cell["wi"]
        g = cell.groupby("method")[["mw", "wi"]].sum()
        _ = g["mw"] / g["wi"]
    per_rep = (time.perf_counter() - t0) / timed_reps
    return t_mos + per_rep * n_boot, mos


def main(quick: bool = False) -> list[dict]:
    rows: list[dict] = []
    scale = Scale.similarity()
    if quick:
        n_methods, n_images, r, n_workers, n_boot = 10, 50, 40, 200, 500
    else:
        n_methods, n_images, r, n_workers, n_boot = 20, 200, 250, 1000, 2000
    quality = np.linspace(0.5, 3.5, n_methods)
    df = simulate(quality=quality, n_images=n_images, n_workers=n_workers, ratings_per_item=r,
                  spammers=tuple(range(n_workers // 20)), seed=0)
    n = len(df)
    t, methods = ours(df, scale, n_boot)
    ref, mos_ref = naive(df, n_boot, timed_reps=3)
    # Same MOS as the plain implementation (before screening, so compare on all ratings).
    all_mos = method_table(cell_stats(encode(df)), scale).set_index("method")["mos"]
    assert np.allclose(all_mos.sort_index().to_numpy(), mos_ref.sort_index().to_numpy())
    label = f"{n:,} ratings"
    for key in ("mos", "bootstrap", "tests", "letters", "bt500", "p910"):
        if key in t:
            rows.append({"benchmark": "analysis", "figure": f"{key} ({label})", "value": t[key],
                         "unit": "s", "reference": None, "ratio": None})
    rows.append({"benchmark": "analysis", "figure": f"MOS+CIs+tests+letters+BT.500+P.910 ({label}, "
                 f"{n_boot} bootstrap)", "value": t["total"], "unit": "s",
                 "reference": ref, "ratio": ref / t["total"]})
    # Crossed mixed model.
    n_mm = 20_000 if quick else 100_000
    sub = df.sample(n=n_mm, random_state=0)
    res = mixed_model(sub, max_ratings=None)
    rows.append({"benchmark": "analysis", "figure": f"crossed mixed model REML + all pairs ({n_mm:,} "
                 f"ratings, converged={res['converged']})", "value": res["seconds"], "unit": "s",
                 "reference": None, "ratio": None})
    if not quick:
        small = df.sample(n=2000, random_state=1)
        b = mixed_model(small, max_ratings=None)
        rows.append({"benchmark": "analysis", "figure": "crossed mixed model vs statsmodels MixedLM "
                     "(2,000 ratings)", "value": b["seconds"], "unit": "s",
                     "reference": (ref_s := _statsmodels_seconds(small)), "ratio": ref_s / b["seconds"]})
    return rows


def _statsmodels_seconds(data: pd.DataFrame) -> float:
    import warnings

    import statsmodels.formula.api as smf
    d = data.assign(group=1, cell=data["image"] + ":" + data["method"])
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        smf.mixedlm("score ~ 0 + C(method)", d, groups="group", re_formula="0",
                    vc_formula={"worker": "0 + C(worker)", "image": "0 + C(image)",
                                "cell": "0 + C(cell)"}, use_sparse=True).fit(reml=True, method=["lbfgs"])
    return time.perf_counter() - t0


def _print(rows: list[dict]) -> None:
    print(f"{'figure':<78} {'value':>10} {'unit':<4} {'reference':>10} {'ratio':>8}")
    for r in rows:
        ref = f"{r['reference']:.3f}" if r["reference"] is not None else "-"
        ratio = f"{r['ratio']:.1f}x" if r["ratio"] is not None else "-"
        print(f"{r['figure']:<78} {r['value']:>10.3f} {r['unit']:<4} {ref:>10} {ratio:>8}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    _print(main(ap.parse_args().quick))
