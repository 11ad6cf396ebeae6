"""Pairwise comparison against ratings on near-ties: calibration of the pairwise tests, and how
many judgements pairwise needs to separate neighbouring methods against how many 0-4 ratings
the crossed-model rating analysis needs.

    python benchmarks/bench_pairwise.py [--quick] [--markdown]

Simulated studies of the AIM 2019 kind: 10 images; method quality = gap + image:method term
(SD as fitted to VQEG HD3, to Netflix public, or none); raters as the careful simulated worker
(noise SD 0.45-0.75 per worker, worker bias SD 0.41 for ratings). Ratings: analysis.calibration's
sparse HIT layout, 0..4, the crossed mixed model with Holm. Pairwise: analysis.pairwise's plan
(all pairs, or the neighbours only), Bradley-Terry with the two-way bootstrap, Holm. "Spend" is
the number of answers: one rating or one judgement each.

Rows: family-wise error with no method effect (reference = alpha + 2 Monte-Carlo SE, ratio <= 1
passes); the share of neighbouring pairs separated at each spend (power), per design; and the
spend each design needs for power >= 0.8 (None where the largest spend tried fell short)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis import calibration as cal  # noqa: E402
from analysis import pairwise as pw  # noqa: E402
from study.simulate import pairwise as sim  # noqa: E402
from study.simulate.workers import CAREFUL_BIAS_SD, CAREFUL_NOISE_SD  # noqa: E402

ALPHA = 0.05
N_IMAGES = 10
N_METHODS = 5                 # the AIM 2019 top five, 0.01-0.06 MOS apart
# Image:method SD: the crossed model's fit to the shared datasets (docs/calibration.md).
IMAGE_METHOD_SD = {"VQEG HD3": float(np.sqrt(0.152)), "Netflix public": float(np.sqrt(0.015)),
                   "none": 0.0}
# Rating noise as the careful worker's: its latent bias and noise (mean variance of
# U(0.45, 0.75)); the image term does not touch a difference.
RATING_NOISE = {"worker": CAREFUL_BIAS_SD ** 2, "image": 0.05,
                "residual": float(np.mean(np.square(np.linspace(*CAREFUL_NOISE_SD, 101))))}
GAPS = (0.02, 0.05, 0.1)
SPENDS = (500, 2000, 8000)
TARGET = 0.8
# The last: a judge whose noise is half a rater's, in case seeing both outputs side by side
# makes judging that much easier than rating (an assumption, not a measurement).
DESIGNS = ("ratings", "pairwise, all pairs", "pairwise, neighbours",
           "pairwise, neighbours, judge noise halved")


def _gaps(gap: float) -> np.ndarray:
    return gap * np.arange(N_METHODS - 1, -1, -1, dtype=float)


def rating_power(gap: float, im_sd: float, spend: int, n_studies: int, seed: int,
                 n_images: int = N_IMAGES) -> float:
    """Share of neighbouring pairs the crossed model separates (Holm over all pairs)."""
    per_item = max(2, int(round(spend / (n_images * N_METHODS))))
    design = cal.Design(n_images=n_images, n_methods=N_METHODS, ratings_per_item=per_item,
                        low=0, high=4)
    comps = dict(RATING_NOISE, **{"image:method": im_sd ** 2})
    rng = np.random.default_rng(seed)
    iu, ju = np.triu_indices(N_METHODS, 1)
    adjacent = ju == iu + 1
    found = 0
    with cal._frozen_heap():
        for _ in range(n_studies):
            padj = cal.verdicts(cal.simulate(design, comps, _gaps(gap), rng))
            found += int((padj[adjacent] < ALPHA).sum())
    return found / (n_studies * adjacent.sum())


def pairwise_power(gap: float, im_sd: float, spend: int, pairs: str, n_studies: int, seed: int,
                   n_images: int = N_IMAGES, noise_factor: float = 1.0) -> float:
    n_pairs = N_METHODS * (N_METHODS - 1) // 2 if pairs == "all" else N_METHODS - 1
    per_task = max(1, int(round(spend / (n_images * n_pairs))))
    noise = tuple(noise_factor * x for x in CAREFUL_NOISE_SD)
    res = sim.separation(_gaps(gap), im_sd, per_task, n_studies, seed=seed, alpha=ALPHA,
                        n_images=n_images, pairs=pairs, noise_sd=noise, bootstrap=100)
    return res["power"]


def calibration_rows(quick: bool) -> list[dict]:
    n = 100 if quick else 1000
    rows = []
    cases = [("VQEG HD3", 9, 5, "all", "bradley-terry"),
             ("Netflix public", 9, 5, "all", "bradley-terry"),
             ("none", 9, 20, "all", "bradley-terry"),
             ("VQEG HD3", 9, 20, "neighbours", "bradley-terry"),
             ("VQEG HD3", 9, 5, "all", "thurstone")]
    for name, M, per_task, pairs, model in cases[:2] if quick else cases:
        t0 = time.perf_counter()
        res = sim.family_wise_error(M, IMAGE_METHOD_SD[name], per_task, n, seed=M + per_task,
                                   alpha=ALPHA, pairs=pairs, model=model,
                                   noise_sd=CAREFUL_NOISE_SD, bootstrap=100)
        rows.append({"benchmark": "pairwise", "figure": f"FWER, no method effect, {M} methods x "
                     f"{N_IMAGES} images, {pairs} pairs, {per_task} judgements per pair and "
                     f"image, image:method SD {name}, {pw.MODELS[model]} ({n} studies, "
                     f"{time.perf_counter() - t0:.0f} s)", "value": res["fwer"], "unit": "rate",
                     "reference": res["limit"], "ratio": res["fwer"] / res["limit"]})
    return rows


def settings(quick: bool) -> list[tuple]:
    """(image:method name, gap, images)."""
    if quick:
        return [("none", 0.1, N_IMAGES), ("VQEG HD3", 0.1, N_IMAGES)]
    out = [(name, g, N_IMAGES) for name in IMAGE_METHOD_SD for g in GAPS]
    out.append(("Netflix public", 0.1, 40))
    return out


def power_rows(quick: bool) -> list[dict]:
    n = 5 if quick else 20
    spends = SPENDS[:2] if quick else SPENDS
    rows = []
    for name, gap, images in settings(quick):
        im_sd = IMAGE_METHOD_SD[name]
        # However many answers are bought, the image:method term leaves the difference of two
        # methods this SE on the MOS scale (for either design).
        floor = np.sqrt(2 * im_sd ** 2 / images)
        label = f"gap {gap} MOS, image:method SD {name} ({im_sd:.2f}), {images} images"
        needed: dict = {}
        designs = list(DESIGNS) if im_sd == 0 else list(DESIGNS[:3])
        for design in designs:
            needed[design] = None
            for k, spend in enumerate(spends):
                seed = int(1000 * gap) + 17 * k + images
                if design == "ratings":
                    p = rating_power(gap, im_sd, spend, n, seed, images)
                else:
                    p = pairwise_power(gap, im_sd, spend, "all" if "all" in design else
                                       "neighbours", n, seed, images,
                                       0.5 if "halved" in design else 1.0)
                rows.append({"benchmark": "pairwise", "figure": f"power, {label}, {design}, "
                             f"{spend} answers ({n} studies)", "value": p, "unit": "rate",
                             "reference": None, "ratio": None, "setting": label,
                             "design": design, "spend": spend})
                if p >= TARGET:
                    needed[design] = spend
                    break
        ref = needed["ratings"]
        for design in designs[1:]:
            v = needed[design]
            rows.append({"benchmark": "pairwise", "figure": f"answers needed for power >= "
                         f"{TARGET}, {label}, {design} (reference: ratings; None: not within "
                         f"{spends[-1]}; SE floor of a difference {floor:.3f} MOS, gap / floor "
                         f"{gap / floor if floor else float('inf'):.1f})",
                         "value": v, "unit": "answers", "reference": ref,
                         "ratio": v / ref if v and ref else None, "needed": label,
                         "design": design, "floor": floor})
    return rows


def main(quick: bool = False) -> list[dict]:
    return calibration_rows(quick) + power_rows(quick)


def _markdown(rows: list[dict]) -> str:
    out = ["| figure | value | limit (α + 2 SE) |", "|---|---|---|"]
    for r in rows:
        if "setting" in r or "needed" in r:
            continue
        out.append(f"| {r['figure']} | {r['value']:.3f} | {r['reference']:.3f} |")
    power = [r for r in rows if "setting" in r]
    designs = DESIGNS
    out += ["", "| setting | answers | " + " | ".join(designs) + " |",
            "|---|---|" + "---|" * len(designs)]
    cells: dict = {}
    for r in power:
        cells.setdefault((r["setting"], r["spend"]), {})[r["design"]] = r["value"]
    for (setting, spend), by in cells.items():
        vals = [f"{by[d]:.2f}" if d in by else "" for d in designs]
        out.append(f"| {setting} | {spend} | " + " | ".join(vals) + " |")
    out += ["", f"| setting | design | answers for power ≥ {TARGET} | ratings for the same | "
            "SE floor of a difference (MOS) |", "|---|---|---|---|---|"]
    longest = f"> {max(r['spend'] for r in power)}" if power else ""
    for r in rows:
        if "needed" in r:
            v = longest if r["value"] is None else str(r["value"])
            ref = longest if r["reference"] is None else str(r["reference"])
            out.append(f"| {r['needed']} | {r['design']} | {v} | {ref} | {r['floor']:.3f} |")
    return "\n".join(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="print the tables for docs/pairwise.md")
    args = ap.parse_args()
    rows = main(args.quick)
    if args.markdown:
        print(_markdown(rows))
    else:
        for r in rows:
            print({k: v for k, v in r.items()
                   if k not in ("setting", "design", "spend", "needed", "floor")})
