"""Test methods: how a study asks its question, one definition per method.

A test method fixes what a worker sees (the reference or not; one output or two), what they
answer (the scale and its words), which way round the page shows things, which gold items can
check a worker, and which analysis the answers go to. Design, pages, answer parsing, the
simulated crowd and the analysis all read the method from here (`design.method` in study.toml),
so a method is one definition and the pipeline is shared.

Every answer is stored as a score oriented by the method's scale:
- "similarity-0-4" (AIM 2019): the output against the reference, 0 almost identical .. 4 mostly
  different, lower is better.
- "acr" (ITU-T P.910 / P.800 absolute category rating): the output alone, 1 bad .. 5 excellent.
- "dcr" (P.910 / P.800 degradation category rating): the reference, then the output; how
  annoying the difference is, 1 very annoying .. 5 imperceptible.
- "ccr" (P.800 comparison category rating): the reference and the output in random order; the
  second against the first, -3 much worse .. +3 much better. The page's answer is flipped when
  the output was shown first, so a stored score is always the output against the reference.
- "pairwise": the reference and two outputs (A/B order random and balanced); which output is
  closer to the reference. A stored score is 1 when the item's `method` was chosen, 0 when its
  `method_b` was.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.scale import Scale

SIMILARITY = "similarity-0-4"
ACR = "acr"
DCR = "dcr"
CCR = "ccr"
PAIRWISE = "pairwise"
NAMES = (SIMILARITY, ACR, DCR, CCR, PAIRWISE)


@dataclass(frozen=True)
class TestMethod:
    name: str
    title: str
    source: str  # the standard or study the method follows
    scale: Scale
    question: str  # asked of each item on the page
    shows_reference: bool = True
    outputs: int = 1  # 2 for pairwise comparison
    # Whether the page's left/right order is drawn per item (hit_items.swapped): CCR shows the
    # reference second on half the items, pairwise shows the item's method_b as "A" on half.
    swaps_sides: bool = False
    # "ratings" (MOS and the crossed model) or "preferences" (Bradley-Terry / Thurstone).
    analysis: str = "ratings"
    # The HIT's title and description on the marketplace unless [hit] sets its own.
    hit_title: str = ""
    hit_description: str = ""
    # Expected score ranges of the two gold items, None where the method has no such check:
    # the reference rated as the output, and a clearly worse output (gold_control_method).
    gold_reference: tuple[int, int] | None = None
    gold_control: tuple[int, int] | None = None

    @property
    def pairwise(self) -> bool:
        return self.outputs == 2


def _similarity(scale: Scale) -> TestMethod:
    # Real subjects put a clearly different control at "similar" often enough that asking for
    # the two worst levels dropped honest workers: the worse half of the scale is expected.
    half = (len(scale.levels) + 1) // 2
    return TestMethod(
        SIMILARITY, "Similarity to the reference", "AIM 2019 bokeh challenge", scale,
        "how different is the processed photo from the original?",
        hit_title="Rate how similar two photos look",
        hit_description="Compare each photo with the original and rate how similar they look.",
        gold_reference=scale.best_levels(2), gold_control=scale.worst_levels(half))


ACR_SCALE = Scale(1, 5, True, ("bad", "poor", "fair", "good", "excellent"))
DCR_SCALE = Scale(1, 5, True, ("very annoying", "annoying", "slightly annoying",
                               "perceptible but not annoying", "imperceptible"))
CCR_SCALE = Scale(-3, 3, True, ("much worse", "worse", "slightly worse", "about the same",
                                "slightly better", "better", "much better"))
PAIRWISE_SCALE = Scale(0, 1, True, ("the other output", "this output"))

_FIXED = {
    # ACR shows no reference, so a sharp input is not "bad": there is no control gold; the
    # reference photo itself is expected "good" or "excellent".
    ACR: TestMethod(ACR, "Absolute category rating", "ITU-T P.910 / P.800 ACR", ACR_SCALE,
                    "how good is the quality of this photo?", shows_reference=False,
                    hit_title="Rate the quality of photos",
                    hit_description="Look at each photo and rate its quality.",
                    gold_reference=(4, 5)),
    DCR: TestMethod(DCR, "Degradation category rating", "ITU-T P.910 / P.800 DCR", DCR_SCALE,
                    "how annoying are the differences from the original?",
                    hit_title="Rate how much processing changed photos",
                    hit_description="Compare each processed photo with the original and rate "
                                    "how annoying the differences are.",
                    gold_reference=(4, 5), gold_control=(1, 3)),
    CCR: TestMethod(CCR, "Comparison category rating", "ITU-T P.800 CCR", CCR_SCALE,
                    "compared with the first photo, the second photo is ...", swaps_sides=True,
                    hit_title="Compare two photos of the same scene",
                    hit_description="Compare the second photo of each pair with the first and "
                                    "rate it from much worse to much better.",
                    gold_reference=(-1, 1), gold_control=(-3, -1)),
    PAIRWISE: TestMethod(PAIRWISE, "Pairwise comparison", "forced choice, Bradley-Terry",
                         PAIRWISE_SCALE, "which photo is closer to the original?", outputs=2,
                         hit_title="Which of two photos is closer to the original?",
                         hit_description="Compare two processed photos with the original and "
                                         "choose the closer one.",
                         swaps_sides=True, analysis="preferences", gold_control=(1, 1)),
}


def get(name: str, similarity_scale: Scale | None = None) -> TestMethod:
    """The method called `name`; the similarity method takes its scale from [scale]."""
    if name == SIMILARITY:
        return _similarity(similarity_scale or Scale(0, 4, False, (
            "almost identical", "mostly similar", "similar", "somewhat similar",
            "mostly different")))
    return _FIXED[name]


def hit_text(settings) -> tuple[str, str]:
    """The HIT's title and description: [hit]'s where set, else the test method's own."""
    asked = of(settings)
    return (settings.hit.title or asked.hit_title,
            settings.hit.description or asked.hit_description)


def of(settings) -> TestMethod:
    """The study's test method, from design.method (and [scale] for the similarity method)."""
    return get(settings.design.method, settings.scale.scale())
