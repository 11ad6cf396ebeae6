"""Which methods differ: the pairwise verdicts behind the letters, and the words that go with them.

The verdicts come from the crossed mixed model (analysis.mixed_model): every pair of methods
that share an image, Satterthwaite degrees of freedom, Holm or Benjamini-Hochberg over the
pairs tested. Friedman and the per-image signed-rank tests are reported beside them as a
secondary analysis; where they cannot reach alpha by construction, or tell a different story,
a note says so and why."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import mixed_model as _mm
from analysis import significance as _sig
from analysis.letters import letters as _letters

MODEL_TEST = ("crossed mixed model score ~ method + (1|worker) + (1|image) + (1|image:method), "
              "REML, Satterthwaite t tests")
SIGNED_RANK_TEST = "wilcoxon signed-rank (pratt) on per-image MOS"


def _square(frame: pd.DataFrame, order: list) -> pd.DataFrame:
    return frame.loc[order, order]


def decide(kept: pd.DataFrame, mean: np.ndarray, methods: list, order: list, *, alpha: float,
           correction: str, max_ratings: int | None, seed: int) -> dict:
    """kept: the ratings in the MOS; mean: images x methods per-image MOS (columns `methods`);
    order: methods best first. Returns pairwise (the primary matrices), signed_rank (the
    secondary ones), friedman, mixed_model (JSON-ready), groups and notes."""
    notes: list[str] = []
    fr = _sig.friedman(mean)
    if fr.get("note"):
        notes.append("Friedman test " + fr["note"])
    sr = _sig.pairwise_wilcoxon(mean, methods, correction)
    for key in ("p", "p_adjusted", "n"):
        sr[key] = _square(sr[key], order)
    sr["test"] = SIGNED_RANK_TEST
    k = len(methods)
    n_pairs = k * (k - 1) // 2
    shared = sr["n"]

    if max_ratings == 0:
        mm = {"converged": None, "note": "not fitted (mixed_model_max_ratings = 0)"}
        primary = {key: sr[key] for key in ("p", "p_adjusted", "n")}
        primary.update(correction=correction, test=SIGNED_RANK_TEST)
        notes.append("the mixed model was not fitted, so the letters come from the per-image "
                     "signed-rank tests")
    else:
        mm = _mm.mixed_model(kept, max_ratings=max_ratings, seed=seed, correction=correction,
                             shared=shared)
        pw = mm.pop("pairwise")
        primary = {key: _square(pw[key], order) for key in ("p", "p_adjusted", "n", "estimate",
                                                            "se", "df")}
        primary.update(correction=correction, test=MODEL_TEST)
        mm["contrasts"] = _mm.contrast_records(pw, order)
        mm["reference"] = order[0]
        mm["effects"] = [{"method": c["b"], "estimate": c["estimate"], "se": c["se"],
                          "df": c["df"], "p": c["p_adjusted"]}
                         for c in mm["contrasts"] if c["a"] == order[0] and c["p"] is not None]
        n_tested = int(np.isfinite(pw["p"].to_numpy()[np.triu_indices(k, 1)]).sum())
        notes.append(f"letters and pairwise p-values come from the {MODEL_TEST}, "
                     f"{'Holm' if correction == 'holm' else 'Benjamini-Hochberg'} over the "
                     f"{n_tested} pairs tested; the per-image signed-rank tests are a secondary "
                     "analysis")
        notes.extend(_model_notes(mm))

    padj = primary["p_adjusted"].to_numpy()
    sig = np.nan_to_num(padj, nan=1.0) < alpha
    untested = ~np.isfinite(padj) & ~np.eye(k, dtype=bool)
    n_untested = int(untested.sum() // 2)
    if n_untested:
        # Methods never rated on a common image are not comparable; keeping them apart in the
        # letters is the only way a letter display can avoid claiming they are alike.
        sig |= untested
        share = "no image" if primary["test"] == MODEL_TEST else "fewer than 2 images"
        notes.append(f"incomplete design: {n_untested} of {n_pairs} method pairs share {share} "
                     "and were not compared (conditions shown on different contents are not "
                     "comparable); such methods never share a letter, so there a different "
                     "letter means 'not compared', not 'different'")
    groups = _letters(order, sig)

    floor = _sig.signed_rank_floor(shared.to_numpy()[np.triu_indices(k, 1)], correction)
    sr["floor"] = floor
    if floor["adjusted"] is not None and floor["adjusted"] > alpha:
        name = "Holm" if correction == "holm" else "Benjamini-Hochberg"
        notes.append(
            f"the per-image signed-rank tests (secondary analysis) cannot reach α = {alpha:g} "
            f"on this design: over at most {floor['images']} shared images the smallest "
            f"possible p is {floor['raw']:.2g}, and after {name} over {floor['pairs']} pairs "
            f"{floor['adjusted']:.2g}; they can never separate a pair here, whatever the "
            "ratings say")
    notes.extend(_story(fr, mm, primary, sr, alpha, correction))
    return {"pairwise": primary, "signed_rank": sr, "friedman": fr, "mixed_model": mm,
            "groups": groups, "notes": notes}


def _model_notes(mm: dict) -> list[str]:
    out = []
    if mm.get("converged") is False:
        out.append("the mixed model's REML fit did not converge; its p-values are approximate")
    names = {"worker": "worker", "image": "image", "image_method": "image-by-method"}
    for b in mm.get("boundary", []):
        out.append(f"the mixed model estimated the {names.get(b, b)} variance at 0 (it could "
                   "not be told apart from rating noise); the tests use the model without it")
    return out


def _count_sig(frame: pd.DataFrame, alpha: float) -> int:
    a = frame.to_numpy()
    iu = np.triu_indices(len(a), 1)
    return int((np.nan_to_num(a[iu], nan=1.0) < alpha).sum())


def _story(fr: dict, mm: dict, primary: dict, sr: dict, alpha: float, correction: str) -> list[str]:
    """Friedman, the model's F test and the letters tell one story; where they do not, why."""
    out = []
    if primary.get("test") != MODEL_TEST:
        return out
    n_sig = _count_sig(primary["p_adjusted"], alpha)
    n_tested = int(np.isfinite(primary["p_adjusted"].to_numpy()[
        np.triu_indices(len(primary["p_adjusted"]), 1)]).sum())
    fp = fr.get("p")
    omni = mm.get("omnibus") or {}
    op = omni.get("p")
    name = "Holm" if correction == "holm" else "Benjamini-Hochberg"
    overall = [s for s, p in (("Friedman", fp), ("the model's F test", op)) if p is not None and p < alpha]
    if overall and n_sig == 0:
        out.append(f"{' and '.join(overall)} find(s) that the methods differ overall, but no "
                   f"single pair is separated after {name} over {n_tested} pairs: the overall "
                   "difference is spread over gaps each too small to show on its own")
    if fp is not None and op is not None and (fp < alpha) != (op < alpha):
        if op < alpha:
            out.append(f"Friedman (p = {fp:.2g}) sees no overall difference where the model's F "
                       f"test does (p = {op:.2g}): Friedman uses only each image's ranking of "
                       f"the methods over {fr['n_images']} complete images, not how far apart "
                       "the ratings are nor how many workers gave them; the letters follow the model")
        else:
            out.append(f"Friedman (p = {fp:.2g}) sees an overall difference that the model's F "
                       f"test does not (p = {op:.2g}): Friedman does not weigh the gaps against "
                       "their image-to-image variation and rating noise as the model does; the "
                       "letters follow the model")
    if op is not None and op >= alpha and n_sig > 0:
        out.append(f"the model's F test finds no overall difference (p = {op:.2g}) yet {n_sig} "
                   "pair(s) are separated: one large gap among many methods can show in a pair "
                   "and be diluted in the overall test")
    n_sr = _count_sig(sr["p_adjusted"], alpha)
    if n_sr > n_sig:
        out.append(f"the secondary signed-rank tests separate {n_sr} pairs, the model {n_sig}: "
                   "they use one number per image and do not model which workers gave the "
                   "ratings nor how many; the letters follow the model")
    return out
