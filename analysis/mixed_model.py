"""Is method A rated better than method B? The crossed mixed model

    score ~ method + (1|worker) + (1|image) + (1|image:method)

fitted by REML, and every pairwise method contrast with Satterthwaite degrees of freedom.

Images and workers are both samples from larger populations, and a method's advantage differs
from image to image (the image:method term). Without that term every contrast looks far more
certain than it is; with it, the contrasts are tested against the image-to-image variation of
the gaps, which is what decides whether another set of images would order the methods the same.

The fit works in lme4's relative-covariance form: with theta the random-effect SDs relative to
the residual SD and L = diag(theta) over the random-effect columns,
-2 l_R(theta) = (n - p) log(y'Py) + log|C(theta)| + const, C = [[X'X, X'Z L], [L Z'X, L Z'Z L + I]].
Each rating has exactly one level of every factor, so the block of the factor with most levels
is diagonal and is eliminated exactly (Schur complement); what is left has p + the other
factors' levels rows. Every cross-product is a count or a sum per level, formed once; a fit's
cost then does not grow with the number of ratings.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, sparse, stats
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from analysis.significance import adjust

RANDOM = ("worker", "image", "image:method")
# A relative SD below this is a variance component estimated at zero (on the boundary).
_BOUNDARY = 1e-4
# Above this many entries the eliminated factor's cross-products are kept sparse.
_DENSE_LIMIT = 2_000_000


@dataclass
class Fit:
    """A REML fit. beta: one mean per method (cell-means coding); cov_beta its covariance;
    variance: component -> estimate (0 on the boundary); df_cov: covariance of the non-zero
    variance estimates and d_cov the derivative of cov_beta along each (for Satterthwaite)."""
    methods: list
    beta: np.ndarray
    cov_beta: np.ndarray
    variance: dict
    converged: bool
    message: str
    n: int
    boundary: list = field(default_factory=list)
    vc_cov: np.ndarray | None = None
    d_cov: np.ndarray | None = None      # (n_active, p, p)
    evaluations: int = 0


def _counts(a: np.ndarray, qa: int, b: np.ndarray, qb: int) -> np.ndarray:
    return np.bincount(a * qb + b, minlength=qa * qb).reshape(qa, qb).astype(float)


class _Equations:
    """Cross-products of one data set, and the REML criterion at any theta."""

    def __init__(self, y: np.ndarray, method: np.ndarray, p: int, codes: list[np.ndarray],
                 sizes: list[int]):
        self.n, self.p, self.K = len(y), p, len(codes)
        self.sizes = list(sizes)
        self.a = int(np.argmax(sizes))                     # the factor eliminated exactly
        rest = [k for k in range(self.K) if k != self.a]
        self.rest = rest
        # Columns kept: the methods, then the other factors' levels.
        cols = [(method, p)] + [(codes[k], sizes[k]) for k in rest]
        offsets = np.cumsum([0] + [q for _, q in cols])
        self.m = int(offsets[-1])
        self.col_factor = np.concatenate([np.full(q, -1 if j == 0 else rest[j - 1])
                                          for j, (_, q) in enumerate(cols)])
        R0 = np.zeros((self.m, self.m))
        for i, (ci, qi) in enumerate(cols):
            for j, (cj, qj) in enumerate(cols):
                if j < i:
                    continue
                block = _counts(ci, qi, cj, qj)
                R0[offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]] = block
                R0[offsets[j]:offsets[j + 1], offsets[i]:offsets[i + 1]] = block.T
        self.R0 = R0
        ca, qa = codes[self.a], sizes[self.a]
        self.na = np.bincount(ca, minlength=qa).astype(float)
        if qa * self.m <= _DENSE_LIMIT:
            self.G = np.hstack([_counts(ca, qa, c, q) for c, q in cols])
        else:
            rows = np.concatenate([ca] * len(cols))
            colidx = np.concatenate([c + off for (c, _), off in zip(cols, offsets[:-1])])
            self.G = sparse.csr_matrix((np.ones(len(rows)), (rows, colidx)), shape=(qa, self.m))
        self.Ry = np.concatenate([np.bincount(c, weights=y, minlength=q) for c, q in cols])
        self.Zay = np.bincount(ca, weights=y, minlength=qa)
        self.yy = float(y @ y)
        self.evaluations = 0

    def _scaling(self, theta: np.ndarray):
        """Relative SD of each kept column (1 for the methods) and the diagonal of the
        eliminated factor's block of C."""
        s = np.ones(self.m)
        for k in self.rest:
            s[self.col_factor == k] = theta[k]
        ta = theta[self.a]
        return s, ta * ta * self.na + 1.0

    def solve(self, theta: np.ndarray):
        """(Cholesky of the Schur complement, solution of the kept columns, y'Py, log|C|)."""
        self.evaluations += 1
        ta = theta[self.a]
        s, da = self._scaling(theta)
        w = ta * ta / da
        if sparse.issparse(self.G):
            GwG = np.asarray((self.G.T @ self.G.multiply(w[:, None])).todense())
            Gwy = np.asarray(self.G.T @ (w * self.Zay)).ravel()
        else:
            Gw = self.G * w[:, None]
            GwG = self.G.T @ Gw
            Gwy = Gw.T @ self.Zay
        S = (self.R0 - GwG) * np.outer(s, s)
        S[np.arange(self.p, self.m), np.arange(self.p, self.m)] += 1.0
        rr = s * (self.Ry - Gwy)
        cf = cho_factor(S, lower=True, check_finite=False)
        x = cho_solve(cf, rr, check_finite=False)
        # y'Py = y'y - x'r over the whole system; the eliminated block's part in closed form.
        xa_ra = ta * ta * float(self.Zay @ (self.Zay / da)) - float((Gwy * s) @ x)
        ypy = self.yy - xa_ra - float(x @ (s * self.Ry))
        logdet = float(np.log(da).sum()) + 2.0 * float(np.log(np.diag(cf[0])).sum())
        return cf, x, ypy, logdet

    def profiled(self, theta: np.ndarray) -> float:
        try:
            _, _, ypy, logdet = self.solve(theta)
        except LinAlgError:
            return np.inf
        return (self.n - self.p) * np.log(max(ypy, 1e-300)) + logdet

    def profiled_and_gradient(self, theta: np.ndarray):
        """The profiled criterion f and its gradient in theta. With x = C^-1 r over all
        columns, for each random factor k (q_k levels, theta_k > 0):
        d log|C| / d theta_k = (2 / theta_k) (q_k - sum of C^-1's diagonal over k's columns),
        d y'Py / d theta_k = -(2 / theta_k) sum of x_j^2 over k's columns. The function is even
        in theta_k, so its derivative at 0 is 0."""
        try:
            cf, x, ypy, logdet = self.solve(theta)
        except LinAlgError:
            return np.inf, np.zeros(self.K)
        ypy = max(ypy, 1e-300)
        f = (self.n - self.p) * np.log(ypy) + logdet
        s, da = self._scaling(theta)
        Sinv = cho_solve(cf, np.eye(self.m), check_finite=False)
        c = (self.n - self.p) / ypy
        g = np.zeros(self.K)
        diag = np.diag(Sinv)
        for k in self.rest:
            if theta[k] > 1e-8:
                cols = self.col_factor == k
                g[k] = 2 / theta[k] * ((cols.sum() - diag[cols].sum()) - c * float(x[cols] @ x[cols]))
        ta = theta[self.a]
        if ta > 1e-8:
            if sparse.issparse(self.G):
                Bd = sparse.csr_matrix(self.G.multiply(s[None, :]).multiply((ta / da)[:, None]))
                diag_a = 1 / da + np.asarray(Bd.multiply(Bd @ Sinv).sum(axis=1)).ravel()
                xa = (ta * self.Zay - Bd @ x * da) / da
            else:
                Bd = self.G * s[None, :] * (ta / da)[:, None]
                diag_a = 1 / da + np.einsum("im,im->i", Bd @ Sinv, Bd)
                xa = ta * self.Zay / da - Bd @ x
            g[self.a] = 2 / ta * ((len(da) - diag_a.sum()) - c * float(xa @ xa))
        return f, g

    def deviance(self, variances: np.ndarray) -> float:
        """-2 l_R (up to a constant) at variances (component variances..., residual variance)."""
        s2 = variances[-1]
        _, _, ypy, logdet = self.solve(np.sqrt(np.maximum(variances[:-1], 0.0) / s2))
        return (self.n - self.p) * np.log(s2) + logdet + ypy / s2

    def cov_beta(self, variances: np.ndarray) -> np.ndarray:
        s2 = variances[-1]
        cf, _, _, _ = self.solve(np.sqrt(np.maximum(variances[:-1], 0.0) / s2))
        return s2 * cho_solve(cf, np.eye(self.m)[:, :self.p], check_finite=False)[:self.p]


def fit(y: np.ndarray, method: np.ndarray, methods: list, codes: list[np.ndarray],
        sizes: list[int], names=RANDOM, satterthwaite: bool = True) -> Fit:
    """REML fit of y = X beta + sum_k Z_k u_k + e (X: method indicators, Z_k: indicators of the
    random factor k given by integer codes) and, when `satterthwaite`, what the degrees of
    freedom of any contrast need."""
    p = len(methods)
    eq = _Equations(np.asarray(y, dtype=float), method, p, codes, sizes)
    K = eq.K
    best = _minimise(eq, np.full(K, 0.5))
    # The criterion is even in each theta_k, so its slope at theta_k = 0 is zero and a line
    # search clipped at the bound can stop there even when the criterion falls going inwards.
    # Step in along such components (the best point of a 1-D search) and go on from there.
    for _ in range(4):
        escape = _inward(eq, best.x)
        if escape is None:
            break
        r = _minimise(eq, escape)
        if r.fun < best.fun:
            best = r
        else:
            break
    theta = np.where(best.x < _BOUNDARY, 0.0, best.x)
    converged = bool(np.isfinite(best.fun)) and _stationary(eq, theta)
    cf, x, ypy, _ = eq.solve(theta)
    s2 = ypy / (eq.n - p)
    variances = np.r_[s2 * theta ** 2, s2]
    cov = s2 * cho_solve(cf, np.eye(eq.m)[:, :p], check_finite=False)[:p]
    out = Fit(methods=list(methods), beta=x[:p].copy(), cov_beta=cov,
              variance={**{nm: float(v) for nm, v in zip(names, variances[:-1])},
                        "residual": float(s2)},
              converged=converged, message=str(best.message), n=eq.n,
              boundary=[nm for nm, t in zip(names, theta) if t == 0.0])
    if satterthwaite and s2 > 1e-12 * max(1.0, float(np.var(y))):
        active = [k for k in range(K) if theta[k] > 0] + [K]
        out.vc_cov, out.d_cov = _variance_derivatives(eq, variances, active)
    out.evaluations = eq.evaluations
    return out


def _minimise(eq: _Equations, start: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return optimize.minimize(eq.profiled_and_gradient, start, method="L-BFGS-B", jac=True,
                                 bounds=[(0.0, 50.0)] * len(start),
                                 options={"ftol": 1e-13, "gtol": 1e-8, "maxiter": 500})


def _inward(eq: _Equations, theta: np.ndarray, h: float = 1e-3):
    """A better point with the boundary components that should not be there moved inwards,
    or None when every component at the boundary belongs there."""
    f0 = eq.profiled(theta)
    out = theta.copy()
    moved = False
    for k in np.flatnonzero(theta < _BOUNDARY):
        up = out.copy()
        up[k] = h
        if eq.profiled(up) < f0 - 1e-9:
            def along(t, k=k):
                v = out.copy()
                v[k] = t
                return eq.profiled(v)
            out[k] = optimize.minimize_scalar(along, bounds=(h, 2.0), method="bounded",
                                              options={"xatol": 1e-4}).x
            moved = True
    return out if moved else None


def _stationary(eq: _Equations, theta: np.ndarray, tol: float = 0.01) -> bool:
    """Projected gradient of the profiled criterion (-2 l_R, in units of deviance per unit of
    relative SD) is zero to within `tol`: a deviance change of 0.01 moves nothing that the
    report shows."""
    f0, g = eq.profiled_and_gradient(theta)
    if not np.isfinite(f0):
        return False
    for k in range(len(theta)):
        if theta[k] > 0:
            if abs(g[k]) > tol:
                return False
            continue
        # At the boundary the criterion may only rise going inwards (its derivative at 0 is
        # 0 by symmetry, so look one step in).
        h = 1e-3
        up = theta.copy()
        up[k] = h
        if (eq.profiled(up) - f0) / h < -tol:
            return False
    return True


def _variance_derivatives(eq: _Equations, v: np.ndarray, active: list[int]):
    """Asymptotic covariance of the active variance estimates (2 H^-1, H the Hessian of
    -2 l_R in the variances, by central differences) and d cov_beta / d v for each of them.
    Components on the boundary stay fixed at zero, as in the model refitted without them."""
    k = len(active)
    h = 1e-4 * v[active]

    def dev(delta):
        vv = v.copy()
        vv[active] += delta
        return eq.deviance(vv)

    f0 = dev(np.zeros(k))
    H = np.empty((k, k))
    E = np.diag(h)
    fp = [dev(E[i]) for i in range(k)]
    fm = [dev(-E[i]) for i in range(k)]
    for i in range(k):
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
        for j in range(i):
            H[i, j] = H[j, i] = (dev(E[i] + E[j]) - fp[i] - fp[j] + 2 * f0
                                 - fm[i] - fm[j] + dev(-E[i] - E[j])) / (2 * h[i] * h[j])
    try:
        A = 2.0 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        A = 2.0 * np.linalg.pinv(H)
    D = np.empty((k, eq.p, eq.p))
    for i, c in enumerate(active):
        up, dn = v.copy(), v.copy()
        up[c] += h[i]
        dn[c] -= h[i]
        D[i] = (eq.cov_beta(up) - eq.cov_beta(dn)) / (2 * h[i])
    return A, D


def contrast_df(f: Fit, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variance and Satterthwaite degrees of freedom of each row contrast of L (rows x p):
    df = 2 var^2 / (g' A g), g = d var / d variances."""
    var = np.einsum("rp,pq,rq->r", L, f.cov_beta, L)
    if f.d_cov is None:
        return var, np.full(len(L), np.nan)
    g = np.einsum("rp,kpq,rq->rk", L, f.d_cov, L)
    denom = np.einsum("rk,kl,rl->r", g, f.vc_cov, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denom > 0, 2 * var ** 2 / denom, np.inf)
    return var, df


def omnibus(f: Fit) -> dict:
    """Wald F test that all method means are equal, with the denominator degrees of freedom of
    Fai and Cornelius (1996) as lmerTest computes them (Satterthwaite per orthogonal contrast)."""
    p = len(f.beta)
    q = p - 1
    if q < 1:
        return {"F": None, "df1": q, "df2": None, "p": None}
    L = np.hstack([np.ones((q, 1)), -np.eye(q)])           # first vs each other
    V = L @ f.cov_beta @ L.T
    evals, P = np.linalg.eigh(V)
    if evals.min() <= 0:
        return {"F": None, "df1": q, "df2": None, "p": None}
    Lt = P.T @ L
    est = Lt @ f.beta
    F = float((est ** 2 / evals).sum() / q)
    _, nu = contrast_df(f, Lt)
    E = np.inf
    if (nu > 2).all():
        # An infinite df (a variance component estimated at zero) contributes its limit, 1.
        with np.errstate(invalid="ignore"):
            E = float(np.where(np.isinf(nu), 1.0, nu / (nu - 2)).sum())
    df2 = 2 * E / (E - q) if np.isfinite(E) and E > q else 2.0
    return {"F": F, "df1": q, "df2": float(df2), "p": float(stats.f.sf(F, q, df2))}


def _codes(col: pd.Series):
    c, labels = pd.factorize(col, sort=True)
    return c.astype(np.int64), list(labels)


def fit_frame(data: pd.DataFrame, satterthwaite: bool = True) -> Fit:
    """Fit the crossed model to a tidy table (columns method, worker, image, score)."""
    m, methods = _codes(data["method"])
    w, workers = _codes(data["worker"])
    i, images = _codes(data["image"])
    cell = i * len(methods) + m
    c, cells = pd.factorize(cell, sort=True)
    return fit(data["score"].to_numpy(dtype=float), m, methods,
               [w, i, c.astype(np.int64)], [len(workers), len(images), len(cells)],
               satterthwaite=satterthwaite)


def pairwise(f: Fit, shared: pd.DataFrame, correction: str = "holm") -> dict:
    """Every pair of methods that share at least one image: estimate (row minus column), se,
    Satterthwaite df, t, two-sided p, and p adjusted over the tested pairs. Pairs that share no
    image are not compared (NaN): their gap would rest on the image effects alone.

    `shared`: methods x methods count of images both were rated on (any order of methods)."""
    k = len(f.methods)
    idx = pd.Index(f.methods, name="method")
    n_shared = shared.reindex(index=idx, columns=idx).fillna(0).to_numpy()
    iu, ju = np.triu_indices(k, 1)
    tested = n_shared[iu, ju] > 0
    L = np.zeros((len(iu), k))
    L[np.arange(len(iu)), iu] = 1.0
    L[np.arange(len(iu)), ju] = -1.0
    est = L @ f.beta
    var, df = contrast_df(f, L)
    se = np.sqrt(np.maximum(var, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = est / se
        p = 2 * stats.t.sf(np.abs(t), np.where(np.isfinite(df), df, 1e12))
    p = np.where(tested & np.isfinite(p), p, np.nan)
    padj = adjust(p, correction)

    def square(v, diag=np.nan, anti=1.0):
        out = np.full((k, k), diag, dtype=float)
        out[iu, ju] = v
        out[ju, iu] = anti * v
        return pd.DataFrame(out, index=idx, columns=idx)

    return {"estimate": square(est, 0.0, -1.0), "se": square(se), "df": square(df),
            "t": square(t, np.nan, -1.0), "p": square(p), "p_adjusted": square(padj),
            "n": pd.DataFrame(n_shared.astype(int), index=idx, columns=idx),
            "correction": correction}


def mixed_model(df: pd.DataFrame, max_ratings: int | None = 200_000, seed: int = 0,
                correction: str = "holm", shared: pd.DataFrame | None = None) -> dict:
    """Fit the crossed model and test all pairs. Returns the JSON-ready summary and, under
    "pairwise", the matrices of `pairwise` (popped by the caller before the report is written).

    Above `max_ratings` the model is fitted on a seeded random subsample (noted)."""
    res: dict = {"model": "score ~ method + (1|worker) + (1|image) + (1|image:method)",
                 "engine": "reml", "converged": None, "n_ratings": int(len(df)), "n_used": None,
                 "seconds": None, "df_method": "Satterthwaite", "correction": correction,
                 "variance": {}, "boundary": [], "estimates": [], "contrasts": [],
                 "omnibus": None, "note": None}
    data = df[["score", "method", "worker", "image"]]
    if data["method"].nunique() < 2:
        res["note"] = "not applicable: fewer than 2 methods"
        return res
    if max_ratings is not None and len(data) > max_ratings:
        data = data.sample(n=max_ratings, random_state=seed)
        res["note"] = f"fitted on a random subsample of {max_ratings} of {len(df)} ratings"
    res["n_used"] = int(len(data))
    t0 = time.perf_counter()
    f = fit_frame(data)
    if shared is None:
        shared = shared_images(data)
    pw = pairwise(f, shared, correction)
    res["seconds"] = time.perf_counter() - t0
    res["converged"] = f.converged
    if not f.converged:
        res["warnings"] = [f.message]
    res["variance"] = {k.replace(":", "_"): v for k, v in f.variance.items()}
    res["boundary"] = [b.replace(":", "_") for b in f.boundary]
    se = np.sqrt(np.maximum(np.diag(f.cov_beta), 0.0))
    res["estimates"] = [{"method": m, "estimate": float(b), "se": float(s)}
                        for m, b, s in zip(f.methods, f.beta, se)]
    res["omnibus"] = omnibus(f)
    res["pairwise"] = pw
    return res


def contrast_records(pw: dict, order: list) -> list[dict]:
    """The tested and untested pairs as JSON-ready records, in the report's method order."""
    out = []
    for a_i, a in enumerate(order):
        for b in order[a_i + 1:]:
            rec = {"a": a, "b": b, "n_images": int(pw["n"].at[a, b])}
            for key, name in (("estimate", "estimate"), ("se", "se"), ("df", "df"), ("t", "t"),
                              ("p", "p"), ("p_adjusted", "p_adjusted")):
                v = float(pw[key].at[a, b])
                rec[name] = v if np.isfinite(v) else None
            out.append(rec)
    return out


def shared_images(data: pd.DataFrame) -> pd.DataFrame:
    """methods x methods: how many images both methods were rated on."""
    present = pd.crosstab(data["image"], data["method"]) > 0
    a = present.to_numpy(dtype=float)
    return pd.DataFrame(a.T @ a, index=present.columns, columns=present.columns).astype(int)
