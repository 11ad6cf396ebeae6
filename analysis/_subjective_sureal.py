"""Bridge to Netflix's SUREAL, used to check the subject models against it (tests, benchmarks).

Builds SUREAL's dataset input (ref_videos / dis_videos with per-worker opinion scores) from a
tidy table without importing SUREAL; ``run_sureal`` imports it lazily.
"""

from __future__ import annotations

import contextlib
import io
import types

import numpy as np
import pandas as pd

from analysis._subjective_core import _valid_rows


def to_sureal_dataset(df: pd.DataFrame) -> types.SimpleNamespace:
    """One dis_video per (image, method) in sorted order, content_id = sorted image position,
    ``os`` = {worker: score or [scores...]} in table order. SUREAL sorts workers by name."""
    df = _valid_rows(df)
    images = sorted(pd.unique(df["image"]))
    cid = {img: i for i, img in enumerate(images)}
    ref_videos = [{"content_id": i, "content_name": str(img), "path": f"ref/{img}"}
                  for i, img in enumerate(images)]
    dis_videos = []
    for (img, meth), g in df.groupby(["image", "method"], sort=True):
        os_ = {}
        for w, s in zip(g["worker"], g["score"].astype(float)):
            if w in os_:
                prev = os_[w]
                os_[w] = (prev if isinstance(prev, list) else [prev]) + [float(s)]
            else:
                os_[w] = float(s)
        dis_videos.append({"content_id": cid[img], "asset_id": len(dis_videos),
                           "path": f"dis/{img}/{meth}", "os": os_,
                           "image": img, "method": meth})
    return types.SimpleNamespace(dataset_name="tidy", ref_videos=ref_videos,
                                 dis_videos=dis_videos)


def run_sureal(dataset: types.SimpleNamespace, model: str, **kwargs) -> dict:
    """Run a SUREAL model by class name on a dataset from ``to_sureal_dataset``; returns its
    result dict plus 'items' (MultiIndex) and 'workers' (Index) to label the arrays."""
    import sureal  # noqa: F401
    from sureal import subjective_model as sm
    from sureal.dataset_reader import RawDatasetReader

    cls = getattr(sm, model, None) or getattr(sureal, model)
    reader = RawDatasetReader(dataset)
    with contextlib.redirect_stdout(io.StringIO()):  # SUREAL prints per-iteration progress
        res = cls(reader).run_modeling(**kwargs)
    res = dict(res)
    res["items"] = pd.MultiIndex.from_tuples(
        [(d["image"], d["method"]) for d in dataset.dis_videos], names=["image", "method"])
    res["workers"] = pd.Index(reader._get_list_observers(), name="worker")
    res["images"] = pd.Index([r["content_name"] for r in dataset.ref_videos], name="image")
    return res


def sureal_frames(res: dict) -> dict[str, pd.DataFrame]:
    """SUREAL's arrays as labelled frames with the column names of SubjectModelResult."""
    out = {}

    def frame(est, std, ci, index):
        est = np.asarray(est, dtype=float)
        d = {"estimate": est}
        if std is not None:
            d["std"] = np.asarray(std, dtype=float)
        if ci is not None:
            d["ci95_low"] = est - np.asarray(ci[0], dtype=float)
            d["ci95_high"] = est + np.asarray(ci[1], dtype=float)
        return pd.DataFrame(d, index=index)

    out["quality"] = frame(res["quality_scores"], res.get("quality_scores_std"),
                           res.get("quality_scores_ci95"), res["items"])
    if "observer_bias" in res:
        out["bias"] = frame(res["observer_bias"], res.get("observer_bias_std"),
                            res.get("observer_bias_ci95"), res["workers"])
    if "observer_inconsistency" in res:
        out["inconsistency"] = frame(res["observer_inconsistency"],
                                     res.get("observer_inconsistency_std"),
                                     res.get("observer_inconsistency_ci95"), res["workers"])
    if "content_ambiguity" in res:
        out["ambiguity"] = frame(res["content_ambiguity"], res.get("content_ambiguity_std"),
                                 res.get("content_ambiguity_ci95"), res["images"])
    if "observer_rejected" in res:
        out["rejected"] = pd.Series(res["observer_rejected"], index=res["workers"])
    return out


def max_abs_diff(ours: pd.DataFrame, theirs: pd.DataFrame) -> dict[str, float]:
    """Largest absolute difference per shared column, after aligning on the index."""
    theirs = theirs.reindex(ours.index)
    out = {}
    for col in theirs.columns:
        if col in ours.columns:
            a = ours[col].to_numpy(float)
            b = theirs[col].to_numpy(float)
            same = (a == b) | (np.isnan(a) & np.isnan(b))   # equal infinities count as equal
            with np.errstate(invalid="ignore"):
                d = np.abs(a - b)
            d[same] = 0.0
            out[col] = float(np.nanmax(np.where(np.isnan(d), np.inf, d))) if len(d) else 0.0
    return out
