"""Numerical core of the subject models: a dense (items x rating slots) matrix and the solvers.

Columns of the matrix are rating slots: slot k holds repetition k // S of worker k % S, so a
worker who rated an item twice fills two slots. Per-worker sums run over items and
repetitions, per-item sums over workers and repetitions (the convention of ITU-T P.913
and of SUREAL). Solvers work on sufficient statistics obtained with matrix-vector products,
which keeps each iteration to a few passes over the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

Z95 = 1.95996  # the two-sided 95 % normal quantile as SUREAL rounds it


@dataclass
class RatingMatrix:
    items: pd.MultiIndex      # (image, method), length E, grouped by image
    workers: pd.Index         # length S
    images: pd.Index          # length C (contents)
    content: np.ndarray       # (E,) image code of each item, non-decreasing
    X: np.ndarray             # (E, S*R) scores, NaN where there is no rating
    S: int
    R: int

    @property
    def E(self) -> int:
        return self.X.shape[0]

    @property
    def C(self) -> int:
        return len(self.images)


def _valid_rows(df: pd.DataFrame) -> pd.DataFrame:
    missing = {"image", "method", "worker", "score"} - set(df.columns)
    if missing:
        raise ValueError(f"ratings table lacks column(s) {sorted(missing)}; "
                         "expected columns image, method, worker, score")
    if "valid" in df.columns:
        df = df[df["valid"].fillna(False).astype(bool)]
    if len(df) == 0:
        raise ValueError("no (valid) ratings to analyse")
    return df


def _factorize(values: np.ndarray) -> tuple[np.ndarray, pd.Index]:
    """Codes and sorted labels. Label columns of a million ratings are mostly strings; hashing
    them with pandas' string table directly takes half the time of pd.factorize."""
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) == "string":
        try:
            from pandas._libs.hashtable import StringHashTable
            uniques, codes = StringHashTable(1024).factorize(values)
        except (ImportError, AttributeError, TypeError, ValueError):
            pass
        else:
            order = np.argsort(uniques, kind="stable")
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            return rank[codes], pd.Index(uniques[order])
    codes, labels = pd.factorize(values, sort=True)
    return codes.astype(np.int64), pd.Index(labels)


def _codes(col: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes of a label column and its sorted labels."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy().astype(np.int64)
        labels = col.cat.categories
        used = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(labels)))
        labels = labels[used]
        order = np.argsort(labels.to_numpy(), kind="stable")
        lut = np.full(len(col.cat.categories), -1, dtype=np.int64)
        lut[used[order]] = np.arange(len(used))
        codes = np.where(codes >= 0, lut[np.maximum(codes, 0)], -1)
        labels = labels[order]
    else:
        codes, labels = _factorize(col.to_numpy())
    if len(codes) and codes.min() < 0:
        raise ValueError(f"column {col.name!r} has missing values")
    return codes, labels


def build_matrix(df: pd.DataFrame) -> RatingMatrix:
    df = _valid_rows(df)
    scores = pd.to_numeric(df["score"], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(scores)):
        bad = df.index[~np.isfinite(scores)][:5].tolist()
        raise ValueError(f"scores must be finite numbers; rows {bad} are not")
    img_codes, images = _codes(df["image"])
    meth_codes, methods = _codes(df["method"])
    wk_codes, workers = _codes(df["worker"])
    pair = img_codes * len(methods) + meth_codes
    n_pairs = len(images) * len(methods)
    if n_pairs <= max(4 * len(pair), 1 << 16):
        present = np.flatnonzero(np.bincount(pair, minlength=n_pairs))
        lut = np.empty(n_pairs, dtype=np.int64)
        lut[present] = np.arange(len(present))
        uniq, item_codes = present, lut[pair]
    else:
        uniq, item_codes = np.unique(pair, return_inverse=True)
        item_codes = item_codes.reshape(-1)
    item_img = (uniq // len(methods)).astype(np.int64)
    items = pd.MultiIndex(levels=[images, methods], codes=[item_img, uniq % len(methods)],
                          names=["image", "method"], verify_integrity=False)
    E, S = len(uniq), len(workers)
    key = item_codes.astype(np.int64) * S + wk_codes
    R = int(np.bincount(key, minlength=E * S).max())
    if R == 1:
        rep = np.zeros(len(key), dtype=np.int64)
    else:
        # repetition number = rank of the row among rows of the same (item, worker), in table order
        order = np.argsort(key, kind="stable")
        sk = key[order]
        first = np.r_[True, sk[1:] != sk[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(len(sk)), 0))
        rep = np.empty(len(key), dtype=np.int64)
        rep[order] = np.arange(len(sk)) - start
    X = np.full((E, R * S), np.nan)
    X[item_codes, rep * S + wk_codes] = scores
    return RatingMatrix(items=items, workers=pd.Index(workers, name="worker"),
                        images=pd.Index(images, name="image"), content=item_img, X=X, S=S, R=R)


class _Ops:
    """Masked sums of a rating matrix through matrix products."""

    def __init__(self, X: np.ndarray, S: int):
        self.E, K = X.shape
        self.S, self.R = S, K // S
        self.X = X
        mask = ~np.isnan(X)
        self.M = mask.astype(np.float64)
        self.X0 = np.where(mask, X, 0.0)
        self.n_item = self.M.sum(axis=1)
        self.n_worker = self.fold(self.M.sum(axis=0))
        self.item_sum = self.X0.sum(axis=1)
        self.item_sum2 = np.einsum("ek,ek->e", self.X0, self.X0)
        self.worker_sum = self.fold(self.X0.sum(axis=0))
        self.worker_sum2 = self.fold(np.einsum("ek,ek->k", self.X0, self.X0))

    def fold(self, v: np.ndarray) -> np.ndarray:
        """Slot sums -> worker sums (adds the repetition blocks)."""
        if self.R == 1:
            return v
        return v.reshape((self.R, self.S) + v.shape[1:]).sum(axis=0)

    def tile(self, v: np.ndarray) -> np.ndarray:
        """Worker values -> slot values."""
        return v if self.R == 1 else np.tile(v, self.R)

    def residuals(self, workers: np.ndarray, s_item: np.ndarray, b_worker: np.ndarray) -> np.ndarray:
        """x - s_item - b_worker for the given workers as (E, R, len(workers)), NaN where unrated."""
        cols = (workers[None, :] + self.S * np.arange(self.R)[:, None]).ravel()
        sub = self.X[:, cols] - s_item[:, None] - np.tile(b_worker[workers], self.R)[None, :]
        return sub.reshape(self.E, self.R, len(workers))


# Sums of squares obtained by expanding (x - s - b)^2 lose about 1e-16 of the magnitude of x^2;
# where the residual variance is that small (a worker with a single rating, a worker who agrees
# exactly with the model) the sums are recomputed directly from the residuals.
_CANCEL = 1e-6


def _direct_std(r: np.ndarray, axes) -> tuple[np.ndarray, np.ndarray]:
    """Population std (two-pass, as numpy.nanstd) and sum of squares over ``axes``."""
    n = (~np.isnan(r)).sum(axis=axes)
    mean = np.nansum(r, axis=axes, keepdims=True) / np.expand_dims(n, axes)
    var = np.nansum((r - mean) ** 2, axis=axes) / n
    return np.sqrt(var), np.nansum(r * r, axis=axes)


def _std_from_sums(n, s1, s2):
    mean = s1 / n
    return np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))


@dataclass
class Estimates:
    quality: np.ndarray
    quality_std: np.ndarray
    bias: np.ndarray | None = None
    bias_std: np.ndarray | None = None
    inconsistency: np.ndarray | None = None
    inconsistency_std: np.ndarray | None = None
    n_worker: np.ndarray | None = None
    ambiguity: np.ndarray | None = None
    ambiguity_std: np.ndarray | None = None
    iterations: int = 0
    converged: bool = True


def projection_solve(X: np.ndarray, S: int, *, max_iterations: int = 1000, tolerance: float = 1e-8,
                     epsilon: float = 1e-8, zero_mean_bias: bool = True) -> Estimates:
    """Alternating projection for x_ji = psi_j + Delta_i + upsilon_i * N(0,1) (ITU-T P.910 Annex E,
    SUREAL's P910AnnexEModel / SubjectMLEModelProjectionSolver2)."""
    op = _Ops(X, S)
    M, X0, n_j, n_i = op.M, op.X0, op.n_item, op.n_worker
    with np.errstate(divide="ignore", invalid="ignore"):
        s = op.item_sum / n_j
        MT = op.fold((np.stack([s, s * s]) @ M).T)
        MTs, MTs2 = MT[:, 0], MT[:, 1]
        X0Ts = op.fold(s @ X0)
        b = (op.worker_sum - MTs) / n_i
        itr, delta = 0, np.inf
        while True:
            s_prev, b_prev = s, b
            # worker inconsistency: std of residuals x - s - b over the worker's ratings
            d1 = op.worker_sum - MTs                       # sum (x - s)
            d2 = op.worker_sum2 - 2 * X0Ts + MTs2          # sum (x - s)^2
            v = _std_from_sums(n_i, d1 - n_i * b, d2 - 2 * b * d1 + n_i * b * b)
            small = np.flatnonzero(v * v <= _CANCEL * (op.worker_sum2 + MTs2) / n_i)
            if len(small):
                v[small] = _direct_std(op.residuals(small, s, b), (0, 1))[0]
            w = op.tile(1.0 / (v * v + epsilon))
            P = M @ np.column_stack([w, w * op.tile(b)])
            s = (X0 @ w - P[:, 1]) / P[:, 0]
            MT = op.fold((np.stack([s, s * s]) @ M).T)
            MTs, MTs2 = MT[:, 0], MT[:, 1]
            X0Ts = op.fold(s @ X0)
            b = (op.worker_sum - MTs) / n_i
            itr += 1
            delta = float(np.linalg.norm(s_prev - s))
            # a non-finite estimate never recovers: stop and report non-convergence
            if not np.isfinite(delta) or delta < tolerance or itr >= max_iterations:
                break
        # per-item residual std, from the parameters the last update started from
        tb = op.tile(b_prev)
        Q = M @ np.column_stack([tb, tb * tb])
        e1 = op.item_sum - Q[:, 0]                         # sum (x - b)
        e2 = op.item_sum2 - 2 * (X0 @ tb) + Q[:, 1]        # sum (x - b)^2
        v_j = _std_from_sums(n_j, e1 - n_j * s_prev, e2 - 2 * s_prev * e1 + n_j * s_prev * s_prev)
        small = np.flatnonzero(v_j * v_j <= _CANCEL * (op.item_sum2 + Q[:, 1]) / n_j)
        if len(small):
            r = X[small] - s_prev[small, None] - tb[None, :]
            v_j[small] = _direct_std(r, 1)[0]
        s_std = 1.0 / np.sqrt(np.maximum(0.0, n_j / v_j ** 2))
        b_std = 1.0 / np.sqrt(np.maximum(0.0, n_i / v ** 2))
        d1 = op.worker_sum - MTs
        r2 = op.worker_sum2 - 2 * X0Ts + MTs2 - 2 * b * d1 + n_i * b * b
        small = np.flatnonzero(r2 <= _CANCEL * (op.worker_sum2 + MTs2))
        if len(small):
            r2[small] = _direct_std(op.residuals(small, s, b), (0, 1))[1]
        v2 = v ** 2
        lpp = n_i / v2 - 3 * v ** 4 * r2 / v2 ** 4
        v_std = 1.0 / np.sqrt(np.maximum(0.0, -lpp))
    if zero_mean_bias:
        mb = np.mean(b)
        b = b - mb
        s = s + mb
    return Estimates(quality=s, quality_std=s_std, bias=b, bias_std=b_std, inconsistency=v,
                     inconsistency_std=v_std, n_worker=n_i, iterations=itr,
                     converged=bool(delta < tolerance))


def mle_solve(X: np.ndarray, S: int, content: np.ndarray, C: int, *, ambiguity: bool,
              max_iterations: int = 10000, tolerance: float = 1e-8, refresh: float = 0.1,
              zero_mean_bias: bool = True) -> Estimates:
    """Damped Newton (belief propagation) maximum likelihood for
    x_esr = psi_e + Delta_s + upsilon_s N(0,1) + phi_c(e) N(0,1) (SUREAL's
    MaximumLikelihoodEstimationModel; without phi it is ...ContentOblivious)."""
    if not ambiguity:
        # without ambiguity nothing depends on the content: one block is equivalent and faster
        content, C = np.zeros(X.shape[0], dtype=np.int64), 1
    op = _Ops(X, S)
    M, X0, n_e, n_s = op.M, op.X0, op.n_item, op.n_worker
    starts = np.searchsorted(content, np.arange(C))
    ends = np.r_[starts[1:], len(content)]
    blocks = [slice(int(a), int(z)) for a, z in zip(starts, ends)]

    def per_content(mat):  # (E, K) -> (C, S): sums over the items of each content
        return op.fold(np.add.reduceat(mat, starts, axis=0).T).T

    N = per_content(M)
    Sx = per_content(X0)
    Sxx = per_content(X0 * X0)

    def x_stats(x):  # per content: sums of x_e, x_e^2 (over rated slots) and of x_e * score
        if C == 1:
            m2 = op.fold((np.stack([x, x * x]) @ M).T)
            return m2[None, :, 0], m2[None, :, 1], op.fold(x @ X0)[None, :]
        xc = x[:, None]
        Mx = M * xc
        return per_content(Mx), per_content(Mx * xc), per_content(X0 * xc)

    with np.errstate(divide="ignore", invalid="ignore"):
        x = op.item_sum / n_e
        # initial inconsistency / ambiguity: std of residuals from the MOS
        Sxe, Sxe2, Sxxe = x_stats(x)
        r1, r2 = Sx - Sxe, Sxx - 2 * Sxxe + Sxe2
        v = _std_from_sums(n_s, r1.sum(0), r2.sum(0))
        small = np.flatnonzero(v * v <= _CANCEL * Sxx.sum(0) / n_s)
        if len(small):
            v[small] = _direct_std(op.residuals(small, x, np.zeros(S)), (0, 1))[0]
        a = _std_from_sums(N.sum(1), r1.sum(1), r2.sum(1)) if ambiguity else np.zeros(C)
        b = np.zeros(S)
        a_std = np.zeros(C)
        rho = refresh
        itr, delta = 0, np.inf
        while True:
            x_prev = x
            v2, a2 = v[None, :] ** 2, a[:, None] ** 2
            D = v2 + a2
            d1 = Sx - Sxe
            den_b = (N / D).sum(0)
            b_new = (d1 / D).sum(0) / den_b
            b = b * (1 - rho) + b_new * rho
            b_std = 1.0 / np.sqrt(np.maximum(0.0, den_b))
            Q = (Sxx - 2 * Sxxe + Sxe2) - 2 * b[None, :] * d1 + N * b[None, :] ** 2   # sum a^2
            small = np.flatnonzero(((Q <= _CANCEL * (Sxx + Sxe2)) & (N > 0)).any(axis=0))
            if len(small):
                r = op.residuals(small, x, b)
                Q[:, small] = np.stack([np.nansum(r[sl] ** 2, axis=(0, 1)) for sl in blocks])
            vv = v[None, :]
            num = (-vv * N / D + vv * Q / D ** 2).sum(0)
            poly = a2 * a2 - 3 * v2 * v2 - 2 * v2 * a2
            den_v = ((v2 - a2) * N / D ** 2 + Q * poly / D ** 4).sum(0)
            v = v * (1 - rho) + (v - num / den_v) * rho
            v_std = 1.0 / np.sqrt(np.maximum(0.0, -den_v))
            v = np.maximum(v, 0.0)
            v2 = v[None, :] ** 2
            if ambiguity:
                D = v2 + a2
                aa = a[:, None]
                num = (-aa * N / D + aa * Q / D ** 2).sum(1)
                poly = v2 * v2 - 3 * a2 * a2 - 2 * v2 * a2
                den_a = (-(v2 - a2) * N / D ** 2 + Q * poly / D ** 4).sum(1)
                a = a * (1 - rho) + (a - num / den_a) * rho
                a_std = 1.0 / np.sqrt(np.maximum(0.0, -den_a))
                a = np.maximum(a, 0.0)
                a2 = a[:, None] ** 2
            W = 1.0 / (v2 + a2)                        # (C, S)
            if C == 1:
                wt = op.tile(W[0])
                P = M @ np.column_stack([wt, wt * op.tile(b)])
                num_x = X0 @ wt - P[:, 1]
                den_x = P[:, 0]
            else:
                Wf = (W if op.R == 1 else np.tile(W, (1, op.R)))[content]    # (E, K)
                MW = M * Wf
                num_x = np.einsum("ek,ek->e", X0, Wf) - MW @ op.tile(b)
                den_x = MW.sum(axis=1)
            x = x * (1 - rho) + (num_x / den_x) * rho
            x_std = 1.0 / np.sqrt(np.maximum(0.0, den_x))
            Sxe, Sxe2, Sxxe = x_stats(x)
            itr += 1
            delta = float(np.linalg.norm(x_prev - x))
            if not np.isfinite(delta) or delta < tolerance or itr >= max_iterations:
                break
    if zero_mean_bias:
        mb = np.mean(b)
        b = b - mb
        x = x + mb
    return Estimates(quality=x, quality_std=x_std, bias=b, bias_std=b_std, inconsistency=v,
                     inconsistency_std=v_std, n_worker=n_s,
                     ambiguity=a if ambiguity else None, ambiguity_std=a_std if ambiguity else None,
                     iterations=itr, converged=bool(delta < tolerance))
