"""The design of a pairwise study: which pairs of methods each image is judged on, which output
each HIT position shows as "A", and the gold pairs.

An item is (image, method, method_b): the reference and the two outputs. `design.pairs` picks
the pairs: "all" (every pair of the study's methods) or "neighbours", a follow-up round after a
rating study: the methods next to each other in that study's ranking whose difference its
verdict left undecided (read from `design.pairs_from`, the rating study's report.json). The
neighbours are taken in the rating study's order among the methods this study compares, so a
method the follow-up leaves out does not hide the pair around it.

A/B order: an item is stored one way round (method, method_b in the order of study.toml) and
each HIT position draws which of the two the page shows as "A" (hit_items.swapped). The draw is
balanced twice over: every pair of methods is shown each way round equally often (so every
method is "A" about half the time and a preference for the first shown cancels in the
analysis), and within a HIT about half the positions are swapped (so a worker who always
answers "A" gets half of them wrong by the stored orientation). It follows the design seed.

Gold: the reference photo itself against the gold control method's output; the reference must
be chosen. Every HIT carries two gold pairs, one shown each way round, so answering the same
side every time misses one of them whatever the side.
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pandas as pd

from study import methods
from study.errors import StudyError

GOLD_PAIRS_PER_HIT = 2


def pairs_from(study) -> str:
    """design.pairs_from as a path (relative to the study folder), or ""."""
    path = study.settings.design.pairs_from
    return str(study.resolve(Path(path).expanduser())) if path else ""


def chosen_pairs(study, present: list[str]) -> list[tuple[str, str]]:
    """The pairs of methods to judge, each as (method, method_b); `present` are the study's
    methods with finished renders, in the order of study.toml."""
    from analysis.pairwise import all_pairs

    settings = study.settings
    if settings.design.pairs == "all":
        return all_pairs(present)
    verdict = rating_verdict(pairs_from(study))
    order = [m for m in verdict["order"] if m in present]
    undecided = undecided_in(verdict, order)
    if not undecided:
        raise StudyError(
            "the rating study decided every pair of neighbouring methods: a pairwise round has "
            "nothing left to separate", where=f"design.pairs_from = {settings.design.pairs_from!r}",
            hint='use design.pairs = "all" to compare every pair anyway')
    rank = {m: k for k, m in enumerate(present)}
    # Stored in study.toml's order, like "all"; the page order is drawn anyway.
    return [tuple(sorted(p, key=rank.get)) for p in undecided]


def rating_verdict(path: str) -> dict:
    """A rating study's ranking and adjusted p-values, from its report.json: {"order": methods
    best first, "p_adjusted": DataFrame, "alpha", "mos": {method: MOS}, "groups", "path"}."""
    where = "study.toml design.pairs_from"
    if not path:
        raise StudyError('design.pairs = "neighbours" needs the rating study\'s report',
                         where=where, hint='set pairs_from = "path/to/rating-study/reports/'
                                           'report.json", or use pairs = "all"')
    p = Path(path)
    try:
        report = json.loads(p.read_text())
        if report.get("schema") != "study-report":
            raise ValueError(f"its schema is {report.get('schema')!r}, not a rating study's "
                             "\"study-report\"")
        rows = sorted(report["methods"], key=lambda m: m["rank"])
        order = [r["method"] for r in rows]
        padj = pd.DataFrame(float("nan"), index=order, columns=order)
        for r in rows:
            for other, v in (r.get("p_values") or {}).items():
                if other in padj.columns:
                    padj.at[r["method"], other] = float("nan") if v is None else float(v)
        alpha = float((report.get("settings") or {}).get("alpha") or 0.05)
    except FileNotFoundError:
        raise StudyError(f"no rating report at {p}", where=where,
                         hint="run `study report` in the rating study first") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StudyError(f"{p} is not a study report ({type(exc).__name__}: {exc})", where=where,
                         hint="give the report.json that `study report` wrote") from None
    return {"order": order, "p_adjusted": padj, "alpha": alpha, "path": str(p),
            "mos": {r["method"]: r.get("mos") for r in rows},
            "groups": {r["method"]: r.get("group") for r in rows},
            "scale": report.get("scale")}


def undecided_in(verdict: dict, order: list[str]) -> list[tuple[str, str]]:
    """The neighbours in `order` (a subset of the rating study's ranking) that its verdict left
    undecided (analysis.pairwise.undecided_neighbours on that subset)."""
    from analysis.pairwise import undecided_neighbours

    if len(order) < 2:
        return []
    padj = verdict["p_adjusted"].loc[order, order]
    return undecided_neighbours({"p_adjusted": padj}, verdict["alpha"])


def make_design(study, conn: sqlite3.Connection):
    """The items and HITs of a pairwise study (design.make_design for two-output methods)."""
    from study.crowd import design as d

    s = study.settings
    k, control = s.design.items_per_hit, s.design.gold_control_method
    method = methods.of(s)
    images, renders = d._rows(conn)
    if not images:
        raise StudyError("the study has no images", where=str(study.db_path),
                         hint="create the study with `study init DIR --dataset PATH`")
    present = [m for m in s.methods if any((m, img["image_id"]) in renders for img in images)]
    if len(present) < 2:
        raise StudyError("a pairwise study needs finished renders of two methods or more",
                         where=str(study.db_path), hint="run `study render` first")
    tests: list = []
    for img in images:
        for a, b in chosen_pairs(study, present):
            pa, pb = renders.get((a, img["image_id"])), renders.get((b, img["image_id"]))
            if pa and pb:
                tests.append(d.Item(img["image_id"], a, "test", img["reference_path"],
                                    str(study.resolve(pa)), method_b=b,
                                    result_b_path=str(study.resolve(pb))))
    if not tests:
        raise StudyError("no pair of methods has finished renders on a common image",
                         where=str(study.db_path), hint="run `study render` first")
    golds = d.control_items(
        study, conn, images, renders, control,
        lambda img, path: d.Item(img["image_id"], "reference", d.GOLD_CONTROL,
                                 img["reference_path"], img["reference_path"],
                                 *method.gold_control, method_b=control, result_b_path=path)
    ) if control else []

    def own_golds(h: int, n_hits: int) -> list:
        return [golds[(h * GOLD_PAIRS_PER_HIT + g) % len(golds)]
                for g in range(min(GOLD_PAIRS_PER_HIT, len(golds)))] if golds else []

    dealt, rng = d.deal(tests, k, s.design_seed, s.design.repeats_per_hit, own_golds)
    hits = [[m.key for m in members] for members in dealt]
    gold_positions = [[m.gold for m in members] for members in dealt]
    swapped = draw_sides(hits, gold_positions, rng)
    used = {key for hit in hits for key in hit}
    items = [i for i in tests + golds if i.key in used]
    return d.Design(items=items, hits=hits, method=methods.PAIRWISE,
                    swapped=[{pos for pos, flag in enumerate(flags, start=1) if flag}
                             for flags in swapped])


def draw_sides(hits: list[list[tuple]], gold: list[list[bool]], rng: random.Random
               ) -> list[list[bool]]:
    """Which positions show the item's method_b as "A". Test items: each pair of methods is
    shown each way round equally often over the design; where a pair is even, the choice keeps
    each method "A" as often as "B", and then the HIT's own sides even. Gold pairs: a HIT's first gold shown one way, its second the other (the way of the
    first drawn per HIT)."""
    shown: dict[tuple[str, str], int] = {}   # per pair: shown as stored minus shown swapped
    first: dict[str, int] = {}               # per method: shown as A minus shown as B
    out = []
    for hit, golds in zip(hits, gold):
        flags = [False] * len(hit)
        balance = 0                         # this HIT: positions as stored minus swapped
        gold_first = rng.random() < 0.5
        gold_seen = 0
        for pos in rng.sample(range(len(hit)), len(hit)):
            key = hit[pos]
            if golds[pos]:
                flags[pos] = gold_first if gold_seen % 2 == 0 else not gold_first
                gold_seen += 1
            else:
                pair = (key[1], key[3])
                lean = shown.get(pair, 0)
                # Stored order puts pair[0] as A: how far that moves both methods off balance.
                ma, mb = first.get(pair[0], 0), first.get(pair[1], 0)
                methods_lean = (abs(ma + 1) + abs(mb - 1)) - (abs(ma - 1) + abs(mb + 1))
                if lean:
                    flags[pos] = lean > 0
                elif methods_lean:
                    flags[pos] = methods_lean > 0
                elif balance:
                    flags[pos] = balance > 0
                else:
                    flags[pos] = rng.random() < 0.5
                shown[pair] = lean + (-1 if flags[pos] else 1)
                step = -1 if flags[pos] else 1
                first[pair[0]], first[pair[1]] = ma + step, mb - step
            balance += -1 if flags[pos] else 1
        out.append(flags)
    return out


def page_sides(items: list[dict], rows, hosting, hit_index: int) -> None:
    """Add what the pairwise page shows as "A" and "B" to each page item: the item's method
    first unless its position is swapped (collect mirrors a swapped position's answer)."""
    for item, r in zip(items, rows):
        b_url = hosting.appearance_url(r["result_b_path"], hit_index, r["position"], "result_b")
        a, b = (b_url, item["result_url"]) if r["swapped"] else (item["result_url"], b_url)
        item["a_url"], item["b_url"] = a, b
        item["result_b_url"] = b_url


# ---------------------------------------------------------------- quality control of choices

# A worker who answers the same side on this many pairs or more, all of them, is doubted: with
# the sides balanced within the HIT, an honest worker's choices fall on both.
SAME_SIDE_MIN = 6


def choice_policy(policy):
    """The [quality] policy as it applies to forced choices. Straight-lining on the stored
    scores says nothing here (a worker who prefers the better method every time is right), so
    the same-side check below stands in for it; a gold pair (the reference itself against a
    clearly different output) is missed only by a worker who did not look, so one miss
    excludes."""
    from dataclasses import replace

    return replace(policy, straightline_var=0.0, gold_min_accuracy=1.0)


def side_doubt(conn: sqlite3.Connection, assignment_id: str, decision: str,
               reason: str) -> tuple[str, str]:
    """The decision after the same-side check: a worker who chose A (or B) on every one of
    SAME_SIDE_MIN pairs or more is excluded (paid, choices not used)."""
    sides = [(r["score"] == 1) != bool(r["swapped"]) for r in conn.execute(
        "SELECT r.score, hi.swapped FROM ratings r JOIN assignments a USING (assignment_id) "
        "JOIN hit_items hi ON hi.hit_index = a.hit_index AND hi.position = r.position "
        "WHERE r.assignment_id = ? AND r.score IS NOT NULL", (assignment_id,))]
    if decision == "reject" or len(sides) < SAME_SIDE_MIN or 0 < sum(sides) < len(sides):
        return decision, reason
    doubt = f"chose {'A' if sides[0] else 'B'} on all {len(sides)} pairs"
    return "exclude", f"{reason}; {doubt}" if reason else doubt
