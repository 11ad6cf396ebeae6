"""Quality control of one assignment: gold answers, time on task, straight-lining, agreement
with the consensus so far, how far its ratings stray from that consensus (model-based
inconsistency), how a repeated pair was rated twice (test-retest) and whether each pair was
ever seen at 1:1 (the page's viewing record); and the policy that turns those checks into a
decision.

Decisions: "approve" (paid, ratings used), "exclude" (paid, ratings not used: doubt is not proof)
and "reject" (not paid; only for clear failures, always with a written reason).

An assignment whose gold answers are all right and whose ratings are shown consistent (close to
the consensus on enough items, and a repeated pair rated alike), at a human pace, and whose pairs
were each seen at 1:1 or closer where the study requires it, is always approved: a narrow spread
of ratings or a weak correlation on a HIT whose items happen to look alike are no reason to drop
an honest worker. (Speed still counts: a fast random rater can be
lucky on two check pairs and, over nine items, land near the consensus.)
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field



@dataclass(frozen=True)
class Policy:
    gold_min_accuracy: float = 0.5
    reject_below_gold_accuracy: float = 0.25
    min_seconds_per_item: float = 2.0
    straightline_var: float = 0.1
    consensus_min_corr: float = 0.0
    max_inconsistency: float = 1.5
    repeat_max_difference: int = 2
    block_after_failures: int = 2
    require_native_view: bool = True


def policy_from_config(quality) -> Policy:
    """The policy part of the study's [quality] settings."""
    return Policy(**{k: getattr(quality, k) for k in asdict(Policy())})


@dataclass
class Rated:
    """One answered position of an assignment, as quality control sees it."""
    item_id: int | None
    score: int | None
    seconds: float | None
    valid: bool
    expected: tuple[int, int] | None = None  # gold items: the accepted range
    # Largest zoom the page saw the item at (screen pixels per image pixel); None: not recorded.
    max_zoom: float | None = None
    # An attention trap (study.crowd.traps): `expected` is the level its picture asks for.
    trap: bool = False


@dataclass
class Checks:
    total: int
    valid: int
    gold_total: int = 0
    gold_correct: int = 0
    gold_misses: list[str] = field(default_factory=list)
    median_seconds: float | None = None
    variance: float | None = None
    consensus_corr: float | None = None
    consensus_items: int = 0
    # RMS distance of the ratings from the consensus, after the worker's own offset.
    inconsistency: float | None = None
    # Largest difference between two ratings of one repeated item.
    repeat_difference: int | None = None
    # Rated items the page recorded as never shown at 1:1 or closer.
    unseen_native: int = 0
    # Attention traps shown, and those whose written instruction was not followed.
    trap_total: int = 0
    trap_misses: list[str] = field(default_factory=list)

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_total if self.gold_total else None


# Items with a consensus needed before the inconsistency of an assignment is measured.
MIN_CONSENSUS_ITEMS = 5


def pearson(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 3:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / math.sqrt(sxx * syy)


def assess(rated: list[Rated], consensus: dict[int, float]) -> Checks:
    valid = [r for r in rated if r.valid and r.score is not None]
    checks = Checks(total=len(rated), valid=len(valid))
    for r in rated:
        if r.expected is None:
            continue
        if r.trap:
            checks.trap_total += 1
            if not (r.valid and r.score is not None and r.expected[0] <= r.score <= r.expected[1]):
                got = "not rated" if r.score is None else f"rated {r.score}"
                checks.trap_misses.append(f"a pair whose picture asked for {r.expected[0]} was "
                                          f"{got}")
            continue
        checks.gold_total += 1
        lo, hi = r.expected
        if r.valid and r.score is not None and lo <= r.score <= hi:
            checks.gold_correct += 1
        else:
            got = "no valid rating" if r.score is None else f"rated {r.score}"
            checks.gold_misses.append(f"a check pair expecting {lo}-{hi} was {got}")
    # 0.99: the page rounds the zoom to two decimals.
    checks.unseen_native = sum(1 for r in valid if r.max_zoom is not None and r.max_zoom < 0.99)
    seconds = [r.seconds for r in rated if r.seconds is not None]
    if seconds:
        checks.median_seconds = statistics.median(seconds)
    # Over test items only: gold answers are known and would hide a uniform pattern.
    tests = [float(r.score) for r in valid if r.expected is None]
    if len(tests) >= 3:
        checks.variance = statistics.pvariance(tests)
    pairs = [(float(r.score), consensus[r.item_id]) for r in valid
             if r.expected is None and r.item_id in consensus]
    checks.consensus_items = len(pairs)
    if pairs:
        checks.consensus_corr = pearson([p[0] for p in pairs], [p[1] for p in pairs])
    if len(pairs) >= MIN_CONSENSUS_ITEMS:
        residuals = [a - b for a, b in pairs]
        offset = statistics.fmean(residuals)
        checks.inconsistency = math.sqrt(statistics.fmean((r - offset) ** 2 for r in residuals))
    first: dict[int, int] = {}
    for r in valid:
        if r.expected is not None or r.item_id is None:
            continue
        if r.item_id in first:
            diff = abs(int(r.score) - first[r.item_id])
            checks.repeat_difference = max(diff, checks.repeat_difference or 0)
        else:
            first[r.item_id] = int(r.score)
    return checks


def shown_consistent(checks: Checks, policy: Policy) -> bool:
    """Gold all right, and ratings close to the consensus on enough items, and any repeated
    pair rated within one level."""
    return (checks.gold_total > 0 and checks.gold_correct == checks.gold_total
            and checks.inconsistency is not None
            and checks.inconsistency <= policy.max_inconsistency
            and (checks.repeat_difference is None or checks.repeat_difference <= 1))


def decide(checks: Checks, policy: Policy, problems: list[str] | None = None) -> tuple[str, str]:
    """(decision, reason). A reject's reason is what the worker is told."""
    if checks.valid == 0:
        why = "; ".join(problems or []) or "every rating was missing or invalid"
        return "reject", f"No usable ratings were submitted ({why})."
    acc = checks.gold_accuracy
    if acc is not None and acc < policy.reject_below_gold_accuracy:
        return "reject", ("The check pairs, whose answers are known, were answered wrongly: "
                          + "; ".join(checks.gold_misses) + ".")
    doubts = []
    if acc is not None and acc < policy.gold_min_accuracy:
        doubts.append(f"gold accuracy {acc:.2f} below {policy.gold_min_accuracy}")
    if checks.valid < checks.total / 2:
        doubts.append(f"only {checks.valid} of {checks.total} ratings valid")
    if checks.inconsistency is not None and checks.inconsistency > policy.max_inconsistency:
        doubts.append(f"ratings stray from the consensus (inconsistency "
                      f"{checks.inconsistency:.2f} above {policy.max_inconsistency})")
    if checks.repeat_difference is not None and \
            checks.repeat_difference > policy.repeat_max_difference:
        doubts.append(f"a repeated pair was rated {checks.repeat_difference} levels apart")
    if checks.median_seconds is not None and checks.median_seconds < policy.min_seconds_per_item:
        doubts.append(f"median {checks.median_seconds:.1f} s per item below "
                      f"{policy.min_seconds_per_item} s")
    if checks.trap_misses:
        # The instruction is written in the picture: not following it means the pair was not
        # looked at. Excluded rather than rejected: a worker may have misread it.
        doubts.append("missed an attention check (" + "; ".join(checks.trap_misses) + ")")
    if policy.require_native_view and checks.unseen_native:
        doubts.append(f"{checks.unseen_native} pair(s) rated without ever being seen at 1:1")
    if not doubts and shown_consistent(checks, policy):
        return "approve", ""
    if checks.variance is not None and checks.variance < policy.straightline_var:
        doubts.append(f"straight-lining (rating variance {checks.variance:.3f} below "
                      f"{policy.straightline_var})")
    if checks.consensus_corr is not None and checks.consensus_corr < policy.consensus_min_corr:
        doubts.append(f"correlation with consensus {checks.consensus_corr:.2f} below "
                      f"{policy.consensus_min_corr}")
    if doubts:
        return "exclude", "; ".join(doubts)
    return "approve", ""


def should_block(failures: int, policy: Policy) -> bool:
    return policy.block_after_failures > 0 and failures >= policy.block_after_failures
