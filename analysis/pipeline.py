"""Everything the report says, computed in one call: `analyse(df, scale) -> Report`."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis import fidelity as _fidelity
from analysis import power as _power
from analysis import reliability as _rel
from analysis import significance as _sig
from analysis.letters import letters as _letters
from analysis.mos import analysed, cell_stats, encode, item_table, method_table
from analysis.scale import Scale
from analysis.table import RatingsError, validate
from analysis.uncertainty import bootstrap_method_mos

FACTSHEET_FIELDS = ("team", "author", "framework", "hardware", "runtime_s")


@dataclass
class Report:
    """What `analyse` found. Tables are DataFrames; summaries are plain dicts (JSON-ready)."""
    scale: Scale
    methods: pd.DataFrame            # one row per method, best first
    items: pd.DataFrame              # one row per (image, method)
    workers: pd.DataFrame            # one row per worker
    pairwise: dict                   # {'p', 'p_adjusted', 'n'}: DataFrames in method order
    friedman: dict
    mixed_model: dict
    reliability: dict
    screening: dict
    fidelity: dict
    power: dict
    subject_model: dict
    counts: dict
    settings: dict
    notes: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    @property
    def method_order(self) -> list[str]:
        return list(self.methods["method"])

    def to_dict(self) -> dict:
        """The JSON report (schema in analysis/report/SCHEMA.md)."""
        from analysis.report.jsonreport import report_dict
        return report_dict(self)


def _subjective_module():
    """The subject-model module when it is importable; the report works without it."""
    try:
        import analysis.subjective as subjective
        return subjective, None
    except ImportError:
        return None, "subject models not available (analysis.subjective missing)"
    except Exception as exc:  # a broken module must not stop the ranking
        return None, f"subject models not available: {type(exc).__name__}: {exc}"


def _as_frame(obj, key_cols: list[str], value_name: str) -> pd.DataFrame | None:
    """Normalise a subject-model output (DataFrame, Series or dict) to key columns +
    value_name (+ value_name_ci_low/high when the source carries CIs)."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        obj = pd.Series(obj)
    if isinstance(obj, pd.Series):
        df = obj.rename(value_name).reset_index()
        df.columns = key_cols + [value_name]
        return df
    if not isinstance(obj, pd.DataFrame):
        return None
    df = obj.copy()
    if not all(c in df.columns for c in key_cols):
        df = df.reset_index()
        names = [c for c in df.columns if c not in key_cols][: len(key_cols)]
        if not all(c in df.columns for c in key_cols):
            df = df.rename(columns=dict(zip(names, key_cols)))
    if not all(c in df.columns for c in key_cols):
        return None
    value_cols = [c for c in df.columns if c not in key_cols]
    if value_name not in df.columns:
        main = next((c for c in value_cols if c in ("estimate", "value", "mean", "quality",
                                                     "bias", "inconsistency")), None)
        if main is None:
            main = next((c for c in value_cols if "ci" not in c.lower() and "se" != c.lower()), None)
        if main is None:
            return None
        df = df.rename(columns={main: value_name})
    out = df[key_cols + [value_name]].copy()
    low = next((c for c in df.columns if c.lower() in ("ci95_low", "ci_low", "low", "lower")
                or c.lower().endswith("ci95_low") or c.lower().endswith("ci_low")), None)
    high = next((c for c in df.columns if c.lower() in ("ci95_high", "ci_high", "high", "upper")
                 or c.lower().endswith("ci95_high") or c.lower().endswith("ci_high")), None)
    if low is not None and high is not None:
        out[f"{value_name}_ci95_low"] = df[low].to_numpy()
        out[f"{value_name}_ci95_high"] = df[high].to_numpy()
    for c in key_cols:
        out[c] = out[c].astype(str)
    return out


def _factsheet_frame(factsheets) -> pd.DataFrame | None:
    if factsheets is None:
        return None
    if isinstance(factsheets, pd.DataFrame):
        fs = factsheets.copy()
        if "method" not in fs:
            fs = fs.reset_index().rename(columns={"index": "method"})
    else:
        fs = pd.DataFrame([{"method": str(m), **(v or {})} for m, v in dict(factsheets).items()])
    if "runtime" in fs and "runtime_s" not in fs:
        fs = fs.rename(columns={"runtime": "runtime_s"})
    if "runtime_reported" in fs and "runtime_s" not in fs:
        fs = fs.rename(columns={"runtime_reported": "runtime_s"})
    fs["method"] = fs["method"].astype(str)
    return fs[["method"] + [c for c in FACTSHEET_FIELDS if c in fs]]


def _fidelity_frame(fidelity) -> pd.DataFrame | None:
    if fidelity is None:
        return None
    if isinstance(fidelity, pd.DataFrame):
        fd = fidelity.copy()
        if "method" not in fd:
            fd = fd.reset_index().rename(columns={"index": "method"})
    else:
        fd = pd.DataFrame([{"method": str(m), **(v or {})} for m, v in dict(fidelity).items()])
    fd.columns = [str(c).lower() for c in fd.columns]
    fd["method"] = fd["method"].astype(str)
    cols = [c for c in ("psnr", "ssim") if c in fd]
    if not cols:
        return None
    fd = fd[["method"] + cols]
    for c in cols:
        fd[c] = pd.to_numeric(fd[c], errors="coerce")
    return fd


def gold_accuracy(df: pd.DataFrame, scale: Scale, tolerance: float = 0.0) -> pd.DataFrame:
    """Per worker: n_gold and gold_accuracy (share of gold ratings with the known answer).

    The known answer is `gold_correct` when given, else `expected`, else the scale's best value
    (a reference shown against itself); a rating within `tolerance` of it counts as correct."""
    if "gold" not in df or not df["gold"].any():
        return pd.DataFrame(columns=["worker", "n_gold", "gold_accuracy"])
    g = df[df["gold"].to_numpy(dtype=bool)]
    score = g["score"].to_numpy(dtype=float)
    if "gold_correct" in g:
        # NaN = correctness unknown for that rating: left out of the accuracy.
        correct = pd.to_numeric(g["gold_correct"].astype("object").map(
            lambda v: np.nan if v is None or (isinstance(v, float) and np.isnan(v)) else float(bool(v))),
            errors="coerce").to_numpy(dtype=float)
    elif "expected_min" in g or "expected_max" in g:
        lo = g["expected_min"].to_numpy(dtype=float) if "expected_min" in g else np.full(len(g), -np.inf)
        hi = g["expected_max"].to_numpy(dtype=float) if "expected_max" in g else np.full(len(g), np.inf)
        lo, hi = np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)
        correct = ((score >= lo - 1e-9) & (score <= hi + 1e-9)).astype(float)
    else:
        expected = g["expected"].to_numpy(dtype=float) if "expected" in g else np.full(len(g), np.nan)
        expected = np.where(np.isnan(expected), scale.best, expected)
        correct = (np.abs(score - expected) <= tolerance + 1e-9).astype(float)
    out = pd.DataFrame({"worker": g["worker"].to_numpy(), "c": correct})
    out = out.groupby("worker", sort=True)["c"].agg(["size", "mean"]).reset_index()
    return out.rename(columns={"size": "n_gold", "mean": "gold_accuracy"})


def analyse(df: pd.DataFrame, scale: Scale, *, factsheets=None, fidelity=None, gold=None,
            seed: int = 0, bootstrap: int = 2000, alpha: float = 0.05, correction: str = "holm",
            mixed_model_max_ratings: int | None = 50_000, power_delta: float | None = None,
            power_target: float = 0.8, gold_tolerance: float = 0.0, screening: bool = True,
            subject_models: bool = True) -> Report:
    """Run every analysis on the tidy ratings table.

    factsheets: {method: {team, author, framework, hardware, runtime_s}} or a DataFrame.
    fidelity:   {method: {psnr, ssim}} or a DataFrame with columns method, psnr, ssim.
    gold:       optional DataFrame of gold ratings (same columns) when they are not in `df`
                with gold=True.
    Gold ratings and ratings with valid=False never enter the MOS."""
    if correction not in ("holm", "bh"):
        raise RatingsError(f"unknown correction {correction!r}", where="correction",
                           hint="use 'holm' or 'bh'")
    timings: dict[str, float] = {}
    notes: list[str] = []
    t0 = time.perf_counter()
    df = validate(df, scale)
    if gold is not None and len(gold):
        gold = validate(gold, scale).assign(gold=True)
        df = pd.concat([df, gold], ignore_index=True)
    n_total = len(df)
    n_gold = int(df["gold"].sum())
    n_invalid = int((~df["valid"] & ~df["gold"]).sum())
    base = analysed(df)
    if len(base) == 0:
        raise RatingsError("no valid non-gold ratings to analyse", where="ratings",
                           hint="every rating is gold or marked invalid")

    subjective, why = _subjective_module() if (screening or subject_models) else (None, None)
    if why:
        notes.append(why)

    # Screening (ITU-R BT.500) decides whose ratings count.
    rejected: dict[str, str] = {}
    kept = base
    screening_info: dict[str, Any] = {"method": None, "rejected": {}, "n_workers": int(base["worker"].nunique())}
    if screening and subjective is not None and hasattr(subjective, "bt500_screening"):
        t = time.perf_counter()
        try:
            import inspect
            params = inspect.signature(subjective.bt500_screening).parameters
            if "scale" in params:
                kept, rejected = subjective.bt500_screening(base, scale=scale)
            else:
                kept, rejected = subjective.bt500_screening(base)
            rejected = {str(k): str(v) for k, v in dict(rejected).items()}
            screening_info["method"] = "ITU-R BT.500"
        except Exception as exc:
            notes.append(f"BT.500 screening failed, all workers kept: {type(exc).__name__}: {exc}")
            kept, rejected = base, {}
        timings["bt500"] = time.perf_counter() - t
        if len(kept) == 0:
            notes.append("BT.500 screening rejected every worker; all workers kept")
            kept, rejected = base, {}
    screening_info["rejected"] = rejected
    screening_info["n_rejected"] = len(rejected)
    for col, label in (("method", "method"), ("image", "image")):
        dropped = sorted(set(base[col]) - set(kept[col]), key=str)
        if dropped:
            notes.append(f"{label}(s) {', '.join(map(str, dropped))} had ratings only from "
                         "screened-out workers and are not in the ranking")

    # Subject model (P.910 Annex E): quality per item, bias and inconsistency per worker.
    sm_info: dict[str, Any] = {"model": None}
    quality = bias = incons = None
    if subject_models and subjective is not None and hasattr(subjective, "p910_annex_e"):
        t = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sm = subjective.p910_annex_e(base)
            quality = _as_frame(getattr(sm, "quality", None), ["image", "method"], "quality")
            bias = _as_frame(getattr(sm, "bias", None), ["worker"], "bias")
            incons = _as_frame(getattr(sm, "inconsistency", None), ["worker"], "inconsistency")
            sm_info["model"] = "ITU-T P.910 Annex E"
            sm_info["name"] = getattr(sm, "model", None)
            for attr in ("converged", "iterations", "n_iter"):
                if hasattr(sm, attr):
                    v = getattr(sm, attr)
                    sm_info[attr] = v.item() if hasattr(v, "item") else v
        except Exception as exc:
            notes.append(f"P.910 subject model failed: {type(exc).__name__}: {exc}")
        timings["p910"] = time.perf_counter() - t

    # MOS, ranks, CIs.
    t = time.perf_counter()
    coded = encode(kept)
    cs = cell_stats(coded)
    methods = method_table(cs, scale)
    items = item_table(cs, alpha)
    timings["mos"] = time.perf_counter() - t
    t = time.perf_counter()
    if bootstrap and bootstrap > 0:
        ci = bootstrap_method_mos(coded, n_boot=bootstrap, seed=seed, alpha=alpha)
        methods = methods.merge(ci, on="method", how="left")
    else:
        methods["ci95_low"] = methods["ci95_high"] = methods["boot_se"] = np.nan
    timings["bootstrap"] = time.perf_counter() - t

    # Significance.
    t = time.perf_counter()
    fr = _sig.friedman(cs.mean)
    pw = _sig.pairwise_wilcoxon(cs.mean, list(coded.methods), correction)
    timings["tests"] = time.perf_counter() - t
    if fr.get("note"):
        notes.append("Friedman test " + fr["note"])
    k = len(coded.methods)
    untested = int(np.isnan(pw["p"].to_numpy()[np.triu_indices(k, 1)]).sum())
    if untested:
        notes.append(f"{untested} of {k * (k - 1) // 2} method pairs share fewer than 2 images and "
                     f"were not tested; untested pairs never separate significance groups")

    order_idx = np.lexsort((methods["method"].to_numpy(), methods["rank"].fillna(np.inf).to_numpy()))
    methods = methods.iloc[order_idx].reset_index(drop=True)
    order = list(methods["method"])
    for key in ("p", "p_adjusted", "n"):
        pw[key] = pw[key].loc[order, order]
    padj = pw["p_adjusted"].to_numpy()
    sig = np.nan_to_num(padj, nan=1.0) < alpha
    t = time.perf_counter()
    groups = _letters(order, sig)
    timings["letters"] = time.perf_counter() - t
    methods["group"] = [groups[m] for m in order]

    # Mixed model as confirmation.
    t = time.perf_counter()
    try:
        if mixed_model_max_ratings == 0:
            mm = {"converged": None, "note": "not fitted (mixed_model_max_ratings = 0)"}
        else:
            mm = _sig.mixed_model(kept, scale, max_ratings=mixed_model_max_ratings, seed=seed,
                                  reference=order[0])
    except Exception as exc:
        mm = {"converged": False, "note": f"fit failed: {type(exc).__name__}: {exc}"}
    timings["mixed_model"] = time.perf_counter() - t

    # Reliability.
    t = time.perf_counter()
    rel = {"krippendorff_alpha_ordinal": _rel.krippendorff_alpha_ordinal(coded),
           "split_half": _rel.split_half(coded, n_splits=20, seed=seed),
           "sos": _rel.sos_parameter(cs, scale)}
    timings["reliability"] = time.perf_counter() - t

    # Factsheets and fidelity.
    fs = _factsheet_frame(factsheets)
    if fs is not None:
        methods = methods.merge(fs, on="method", how="left")
    fd = _fidelity_frame(fidelity)
    fid: dict = {}
    if fd is not None:
        methods = methods.merge(fd, on="method", how="left")
        if "psnr" in methods:
            methods["psnr_rank"] = _rank_desc(methods["psnr"])
        if "ssim" in methods:
            methods["ssim_rank"] = _rank_desc(methods["ssim"])
        fid = _fidelity.fidelity_correlation(methods, scale)

    # Power for the next study.
    delta = power_delta if power_delta is not None else 0.05 * (scale.high - scale.low)
    pow_ = _power.ratings_needed_from_pilot(cs, delta, alpha=alpha, power=power_target)

    # Items with the subject model's quality estimate.
    if quality is not None:
        items = items.merge(quality, on=["image", "method"], how="left")
    else:
        items["quality"] = np.nan
    for c in ("quality_ci95_low", "quality_ci95_high"):
        if c not in items:
            items[c] = np.nan

    workers = _worker_table(df, base, kept, rejected, scale, gold_tolerance, bias, incons)
    counts = {"ratings": n_total, "gold": n_gold, "invalid": n_invalid,
              "analysed": int(len(kept)), "screened_out": int(len(base) - len(kept)),
              "images": coded.n_images, "methods": coded.n_methods, "workers": coded.n_workers,
              "workers_total": int(df["worker"].nunique())}
    settings = {"seed": seed, "bootstrap": bootstrap, "alpha": alpha, "correction": correction,
                "scale": scale.to_dict(), "power_delta": delta, "power_target": power_target,
                "mixed_model_max_ratings": mixed_model_max_ratings, "gold_tolerance": gold_tolerance}
    timings["total"] = time.perf_counter() - t0
    return Report(scale=scale, methods=methods, items=items, workers=workers, pairwise=pw,
                  friedman=fr, mixed_model=mm, reliability=rel, screening=screening_info,
                  fidelity=fid, power=pow_, subject_model=sm_info, counts=counts,
                  settings=settings, notes=notes, timings=timings)


def _rank_desc(values: pd.Series) -> np.ndarray:
    from analysis.mos import rank_with_ties
    return rank_with_ties(values.to_numpy(dtype=float), higher_is_better=True)


def _worker_table(df, base, kept, rejected, scale, tol, bias, incons) -> pd.DataFrame:
    workers = pd.DataFrame({"worker": sorted(df["worker"].unique())})
    n_all = df.groupby("worker").size().rename("n_total")
    n_base = base.groupby("worker").size().rename("n")
    workers = workers.merge(n_base, on="worker", how="left").merge(n_all, on="worker", how="left")
    workers["n"] = workers["n"].fillna(0).astype(int)
    ga = gold_accuracy(df, scale, tol)
    workers = workers.merge(ga, on="worker", how="left")
    workers["n_gold"] = workers["n_gold"].fillna(0).astype(int)
    for frame, name in ((bias, "bias"), (incons, "inconsistency")):
        if frame is not None:
            workers = workers.merge(frame, on="worker", how="left")
        else:
            workers[name] = np.nan
        for c in (f"{name}_ci95_low", f"{name}_ci95_high"):
            if c not in workers:
                workers[c] = np.nan
    kept_workers = set(kept["worker"].unique())
    outcome, reason = [], []
    for w, n in zip(workers["worker"], workers["n"]):
        if w in rejected:
            outcome.append("rejected"); reason.append(rejected[w])
        elif n == 0:
            outcome.append("excluded"); reason.append("no valid non-gold ratings")
        elif w in kept_workers:
            outcome.append("kept"); reason.append(None)
        else:
            outcome.append("rejected"); reason.append("removed by screening")
    workers["screening"] = outcome
    workers["reason"] = reason
    return workers


def clean(value):
    """JSON-safe scalar: NaN/inf -> None, numpy -> Python."""
    if value is None:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    return value
