"""Which differences between methods are real.

Repeated-measures design (every image is rated under every method), so: Friedman over the
image x method matrix of per-image MOS with Kendall's W; pairwise Wilcoxon signed-rank tests on
per-image MOS (Pratt's treatment of zero differences, ties being common on a 5-point scale) with
Holm (or Benjamini-Hochberg) correction; and a crossed mixed model
score ~ method + (1|worker) + (1|image) as a confirmation."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from analysis.scale import Scale


def complete_matrix(mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (images) where every method has a MOS, and the mask of rows kept."""
    keep = ~np.isnan(mean).any(axis=1)
    return mean[keep], keep


def friedman(mean: np.ndarray) -> dict:
    """Friedman test over the complete rows of an (images x methods) MOS matrix, with tie
    correction, and Kendall's coefficient of concordance W = chi2 / (n (k - 1))."""
    x, _ = complete_matrix(mean)
    n, k = x.shape
    res = {"statistic": None, "df": k - 1, "p": None, "kendall_w": None, "n_images": int(n),
           "n_methods": int(k), "note": None}
    if k < 2 or n < 2:
        res["note"] = (f"not applicable: needs at least 2 methods rated on the same images "
                       f"(complete images: {n}, methods: {k})")
        return res
    r = stats.rankdata(x, axis=1)
    rsum = r.sum(axis=0)
    # Tie correction as in Conover / scipy.stats.friedmanchisquare.
    ties = 0.0
    for row in x:
        _, counts = np.unique(row, return_counts=True)
        ties += float((counts ** 3 - counts).sum())
    c = 1 - ties / (k * (k * k - 1) * n)
    if c <= 0:
        res.update(statistic=0.0, p=1.0, kendall_w=0.0,
                   note="every image gave every method the same MOS")
        return res
    chi2 = (12.0 / (n * k * (k + 1)) * float((rsum ** 2).sum()) - 3 * n * (k + 1)) / c
    res.update(statistic=chi2, p=float(stats.chi2.sf(chi2, k - 1)),
               kendall_w=float(chi2 / (n * (k - 1))))
    return res


def adjust(p: np.ndarray, correction: str = "holm") -> np.ndarray:
    """Holm step-down or Benjamini-Hochberg adjusted p-values; NaN entries are left out."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = len(q)
    if m == 0:
        return out
    order = np.argsort(q, kind="mergesort")
    sq = q[order]
    if correction == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * sq)
    elif correction in ("bh", "fdr_bh"):
        adj = np.minimum.accumulate((m / np.arange(m, 0, -1)[::-1] * sq)[::-1])[::-1]
    elif correction in ("none", None):
        adj = sq
    else:
        raise ValueError(f"unknown correction {correction!r}; use 'holm' or 'bh'")
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


def pairwise_wilcoxon(mean: np.ndarray, methods, correction: str = "holm") -> dict:
    """Wilcoxon signed-rank tests for every pair of methods on the images both were rated on.

    Returns {'p': DataFrame, 'p_adjusted': DataFrame, 'n': DataFrame} (methods x methods,
    symmetric, NaN on the diagonal and where a pair shares fewer than 2 images)."""
    k = mean.shape[1]
    p = np.full((k, k), np.nan)
    nn = np.zeros((k, k), dtype=int)
    iu, ju = np.triu_indices(k, 1)
    for a, b in zip(iu, ju):
        both = ~np.isnan(mean[:, a]) & ~np.isnan(mean[:, b])
        n = int(both.sum())
        nn[a, b] = nn[b, a] = n
        if n < 2:
            continue
        d = mean[both, a] - mean[both, b]
        if np.allclose(d, 0, atol=1e-12):
            p[a, b] = p[b, a] = 1.0
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Exact null distribution for small samples without zeros or ties; otherwise the
            # normal approximation with tie correction (scipy's permutation fallback is slow).
            absd = np.abs(d)
            exact = n <= 50 and not np.any(absd == 0) and len(np.unique(absd)) == n
            p[a, b] = p[b, a] = float(stats.wilcoxon(
                d, zero_method="pratt", method="exact" if exact else "asymptotic").pvalue)
    padj = np.full((k, k), np.nan)
    adj = adjust(p[iu, ju], correction)
    padj[iu, ju] = adj
    padj[ju, iu] = adj
    idx = pd.Index(methods, name="method")
    return {"p": pd.DataFrame(p, index=idx, columns=idx),
            "p_adjusted": pd.DataFrame(padj, index=idx, columns=idx),
            "n": pd.DataFrame(nn, index=idx, columns=idx),
            "correction": correction}


def _design(data: pd.DataFrame, reference: str):
    """Fixed-effects design (intercept + treatment-coded methods) and the sparse random-effects
    design [worker indicators | image indicators]."""
    from scipy import sparse
    methods = [reference] + sorted(m for m in data["method"].unique() if m != reference)
    mcode = pd.Categorical(data["method"], categories=methods).codes
    n = len(data)
    X = np.zeros((n, len(methods)))
    X[:, 0] = 1.0
    rows = np.flatnonzero(mcode > 0)
    X[rows, mcode[rows]] = 1.0
    wcode, workers = pd.factorize(data["worker"])
    icode, images = pd.factorize(data["image"])
    q_w, q_i = len(workers), len(images)
    Z = sparse.csr_matrix((np.ones(2 * n), (np.r_[np.arange(n), np.arange(n)],
                                            np.r_[wcode, q_w + icode])), shape=(n, q_w + q_i))
    return methods, X, Z, q_w, q_i


def reml_crossed(y: np.ndarray, X: np.ndarray, Z, q_w: int, q_i: int) -> dict:
    """REML fit of y = X b + Z_w u_w + Z_i u_i + e with u_w ~ N(0, s2 t_w^2), u_i ~ N(0, s2 t_i^2),
    e ~ N(0, s2), through the mixed-model equations in relative-covariance form (as lme4 does):
    -2 l_R(t) = (n - p) log(y'Py) + log|C(t)| + const, C = [[X'X, X'Z L], [L Z'X, L Z'Z L + I]],
    L = diag(t). Each rating has one worker and one image, so the block of the larger factor is
    diagonal and is eliminated exactly (Schur complement); what remains is small. Only
    cross-products enter: the cost does not grow with the number of ratings once formed."""
    from scipy import optimize
    from scipy.linalg import cho_factor, cho_solve
    n, p = X.shape
    Zw, Zi = Z[:, :q_w], Z[:, q_w:]
    # a = the factor eliminated through its diagonal block (the larger), b = the one kept.
    swap = q_i > q_w
    Za, Zb = (Zi, Zw) if swap else (Zw, Zi)
    qa, qb = Za.shape[1], Zb.shape[1]
    na = np.asarray(Za.sum(axis=0)).ravel()                 # ratings per level (diagonal of Za'Za)
    nb = np.asarray(Zb.sum(axis=0)).ravel()
    ZaX = np.asarray((Za.T @ X))                            # qa x p
    ZaZb = (Za.T @ Zb).toarray()                            # qa x qb
    XtX = X.T @ X
    XtZb = np.asarray((Zb.T @ X).T)                         # p x qb
    Xty = X.T @ y
    Zay = np.asarray(Za.T @ y).ravel()
    Zby = np.asarray(Zb.T @ y).ravel()
    yty = float(y @ y)
    m = p + qb

    def parts(ta, tb):
        da = ta * ta * na + 1.0                             # diagonal block of C for factor a
        lam_b = np.full(qb, tb)
        R = np.empty((m, m))
        R[:p, :p] = XtX
        R[:p, p:] = XtZb * tb
        R[p:, :p] = R[:p, p:].T
        R[p:, p:] = 0.0
        R[p + np.arange(qb), p + np.arange(qb)] = tb * tb * nb + 1.0
        B = np.hstack([ta * ZaX, ta * tb * ZaZb])           # qa x m (a-rows of C)
        Bd = B / da[:, None]
        S = R - B.T @ Bd
        ra = ta * Zay
        rr = np.r_[Xty, lam_b * Zby]
        cf = cho_factor(S, lower=True, check_finite=False)
        x_rest = cho_solve(cf, rr - Bd.T @ ra, check_finite=False)
        x_a = (ra - B @ x_rest) / da
        ypy = yty - float(x_a @ ra) - float(x_rest @ rr)
        logdet = float(np.log(da).sum()) + 2.0 * float(np.log(np.diag(cf[0])).sum())
        return cf, x_rest, ypy, logdet

    def theta_ab(log_theta):
        tw, ti = np.exp(log_theta)
        return (ti, tw) if swap else (tw, ti)

    calls = [0]

    def objective(log_theta):
        calls[0] += 1
        try:
            _, _, ypy, logdet = parts(*theta_ab(log_theta))
        except np.linalg.LinAlgError:
            return np.inf
        return (n - p) * np.log(max(ypy, 1e-300)) + logdet

    # Log scale keeps the ratios positive; a component at the boundary drifts to the bound.
    best = None
    for start in ((np.log(0.5), np.log(0.5)), (np.log(0.05), np.log(1.0)), (np.log(1.0), np.log(0.05))):
        r = optimize.minimize(objective, np.array(start), method="L-BFGS-B",
                              bounds=[(-12.0, 5.0), (-12.0, 5.0)],
                              options={"ftol": 1e-12, "gtol": 1e-7})
        if best is None or r.fun < best.fun - 1e-9:
            best = r
        if best.success:
            break
    cf, x_rest, ypy, _ = parts(*theta_ab(best.x))
    s2 = ypy / (n - p)
    # Fixed-effect covariance: s2 times the leading block of C^-1 = that of S^-1.
    cov_b = s2 * cho_solve(cf, np.eye(m)[:, :p], check_finite=False)[:p]
    theta = np.where(best.x <= -11.99, 0.0, np.exp(best.x))
    return {"beta": x_rest[:p], "cov_beta": cov_b, "s2": s2, "var_worker": s2 * theta[0] ** 2,
            "var_image": s2 * theta[1] ** 2, "converged": bool(best.success),
            "message": str(best.message), "objective": float(best.fun), "evaluations": calls[0]}


def mixed_model(df: pd.DataFrame, scale: Scale, max_ratings: int | None = 200_000, seed: int = 0,
                reference: str | None = None, engine: str = "auto") -> dict:
    """Crossed random-effects model score ~ method + (1|worker) + (1|image) by REML.

    engine: "statsmodels" fits it with statsmodels MixedLM (variance components on a single
    group); "reml" with the mixed-model equations above (same model and estimates, but its cost
    grows with the number of workers and images, not ratings). "auto" is "reml": MixedLM needs
    minutes for a few thousand ratings and often stops short of convergence on crowd designs;
    the two agree on the real data (tests/test_analysis_simulated.py).
    Above `max_ratings` the model is fitted on a seeded random subsample (noted)."""
    res: dict = {"converged": None, "n_ratings": int(len(df)), "n_used": None, "seconds": None,
                 "engine": None, "reference": None, "effects": [], "variance": {}, "note": None}
    data = df[["score", "method", "worker", "image"]]
    if data["method"].nunique() < 2:
        res["note"] = "not applicable: fewer than 2 methods"
        return res
    if max_ratings is not None and len(data) > max_ratings:
        data = data.sample(n=max_ratings, random_state=seed)
        res["note"] = f"fitted on a random subsample of {max_ratings} of {len(df)} ratings"
    methods = sorted(data["method"].unique())
    ref = reference if reference in methods else methods[0]
    res["reference"] = ref
    res["n_used"] = int(len(data))
    if engine == "auto":
        engine = "reml"
    res["engine"] = engine
    t0 = time.perf_counter()
    if engine == "statsmodels":
        _fit_statsmodels(data, ref, res)
    elif engine == "reml":
        names, X, Z, q_w, q_i = _design(data, ref)
        fit = reml_crossed(data["score"].to_numpy(dtype=float), X, Z, q_w, q_i)
        se = np.sqrt(np.diag(fit["cov_beta"]))
        for k in range(1, len(names)):
            z = fit["beta"][k] / se[k]
            res["effects"].append({"method": names[k], "estimate": float(fit["beta"][k]),
                                   "se": float(se[k]), "p": float(2 * stats.norm.sf(abs(z)))})
        res["variance"] = {"worker": float(fit["var_worker"]), "image": float(fit["var_image"]),
                           "residual": float(fit["s2"])}
        res["converged"] = fit["converged"]
        if not fit["converged"]:
            res["warnings"] = [fit["message"]]
    else:
        raise ValueError(f"unknown engine {engine!r}")
    res["seconds"] = time.perf_counter() - t0
    return res


def _fit_statsmodels(data: pd.DataFrame, ref: str, res: dict) -> None:
    import statsmodels.formula.api as smf

    data = data.assign(group=1)
    formula = f"score ~ C(method, Treatment(reference={ref!r}))"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = smf.mixedlm(formula, data, groups="group", re_formula="0",
                                vc_formula={"worker": "0 + C(worker)", "image": "0 + C(image)"},
                                use_sparse=True)
            fit = model.fit(reml=True, method=["lbfgs"])
    except (np.linalg.LinAlgError, ValueError) as exc:
        res["converged"] = False
        res["note"] = ((res["note"] + "; ") if res["note"] else "") + f"fit failed: {exc}"
        return
    conv_warn = sorted({str(w.message) for w in caught if "converge" in str(w.message).lower()})
    res["converged"] = bool(fit.converged) and not conv_warn
    if conv_warn:
        res["warnings"] = conv_warn
    prefix = f"C(method, Treatment(reference={ref!r}))[T."
    for name, est in fit.fe_params.items():
        if name.startswith(prefix):
            res["effects"].append({"method": name[len(prefix):-1], "estimate": float(est),
                                   "se": float(fit.bse_fe[name]), "p": float(fit.pvalues[name])})
    vc = dict(zip(model.exog_vc.names, np.atleast_1d(fit.vcomp)))
    res["variance"] = {"worker": float(vc.get("worker", np.nan)),
                       "image": float(vc.get("image", np.nan)), "residual": float(fit.scale)}
