"""How many ratings each item gets: all at once (uniform), or round by round where the verdict
is still undecided (adaptive, analysis.allocation).

With adaptive allocation, publish asks for `design.initial_ratings_per_item` and records it with
the full budget per item (`design.ratings_per_item`). A round ends when every item has the
ratings last wanted for it; then `study collect` looks at all valid ratings so far and the next
wanted count of each item comes from analysis.allocation.look. What the look decided is kept in
the study db under crowd.<realm>.allocation, for the next collect and for `study status`."""

from __future__ import annotations

import json
import sqlite3

from study import store
from study.crowd import money

UNIFORM, ADAPTIVE = "uniform", "adaptive"


def first_round(design) -> int:
    """Ratings per item that publish asks for."""
    if design.allocation == ADAPTIVE:
        return min(design.initial_ratings_per_item, design.ratings_per_item)
    return design.ratings_per_item


def published_fields(design) -> dict:
    """What publish stores beside the design sizes, so that later rounds follow the plan that was
    published and not a later edit of study.toml."""
    if design.allocation != ADAPTIVE:
        return {}
    return {"allocation": ADAPTIVE, "initial_ratings_per_item": first_round(design),
            "target_se": design.target_se}


def _key(realm: str) -> str:
    return f"crowd.{realm}.allocation"


def state(conn: sqlite3.Connection, realm: str) -> dict | None:
    stored = store.get_meta(conn, _key(realm))
    return json.loads(stored) if stored else None


def wanted_counts(study, conn: sqlite3.Connection, realm: str, counts: dict[int, int],
                  published: dict) -> dict[int, int]:
    """Valid ratings wanted for each test item (`counts`: item_id -> valid ratings now)."""
    full = int(published["ratings_per_item"])
    if published.get("allocation") != ADAPTIVE:
        return {i: full for i in counts}
    st = state(conn, realm) or {}
    wanted = {int(k): int(v) for k, v in (st.get("wanted") or {}).items()}
    first = int(published["initial_ratings_per_item"])
    wanted = {i: wanted.get(i, first) for i in counts}
    if st.get("stop") or any(counts[i] < wanted[i] for i in counts):
        return wanted            # the round is still being collected, or collection has stopped
    look = _look(study, conn, realm, full, float(published.get("target_se", 0.0)))
    if look is None:
        return wanted
    lk, item_of = look
    nxt = {i: max(wanted[i], int(lk.wanted.get(item_of[i], wanted[i]))) for i in counts}
    # What the next round costs, and the most the rest could: every item of an undecided pair
    # raised to the full budget after it.
    methods = {m for p in lk.undecided() for m in (p.a, p.b)}
    n_next, next_usd = round_cost(conn, realm, published,
                                  {i: nxt[i] - counts[i] for i in counts})
    _, rest_usd = round_cost(conn, realm, published,
                             {i: full - nxt[i] for i in counts
                              if item_of[i][1] in methods and not lk.stop})
    lines = lk.lines()
    at = next((j + 1 for j, line in enumerate(lines) if line.startswith("  next round")), None)
    if at is not None:
        lines.insert(at, f"  costs        {n_next} more assignment(s), about "
                         f"{money.fmt(next_usd)}; the full budget would change some verdict "
                         f"with probability {lk.p_change:.2f}")
    previous = st.get("round", 0)
    store.set_meta(conn, _key(realm), json.dumps({
        "round": previous + 1,
        "wanted": {str(i): n for i, n in nxt.items()}, "stop": lk.stop,
        "ratings": lk.ratings, "budget_ratings": lk.budget_ratings,
        "next_ratings": int(sum(nxt.values()) - sum(counts.values())),
        "next_assignments": n_next, "next_usd": str(next_usd), "rest_usd": str(rest_usd),
        "uniform_usd": str(uniform_cost(conn, realm, lk.ratings, lk.budget_ratings)),
        "p_change": lk.p_change,
        "undecided": [[p.a, p.b] for p in lk.undecided()],
        "pairs": [p.to_dict() for p in lk.pairs if p.adjacent],
        "projections": lk.projections, "lines": lines}, default=str))
    return nxt


def _home_hits(conn: sqlite3.Connection, realm: str) -> dict[int, int]:
    """item_id -> the HIT a top-up extends first (its lowest-numbered one)."""
    home: dict[int, int] = {}
    for item_id, h in conn.execute(
            "SELECT hi.item_id, hi.hit_index FROM hit_items hi JOIN hits h ON "
            "h.hit_index = hi.hit_index AND h.realm = ? WHERE hi.realm IN ('', ?)",
            (realm, realm)):
        home[item_id] = min(h, home.get(item_id, h))
    return home


def round_cost(conn: sqlite3.Connection, realm: str, published: dict,
               more: dict[int, int]):
    """Assignments and money for `more` (item_id -> ratings to add) by extending each item's
    HIT, which rates every item of that HIT: a HIT gets as many as its neediest item."""
    from study.crowd.topup import _hit_capacity

    home = _home_hits(conn, realm)
    per_hit: dict[int, int] = {}
    for i, n in more.items():
        if n > 0 and i in home:
            per_hit[home[i]] = max(per_hit.get(home[i], 0), int(n))
    reward = money.usd(published["reward"])
    total = money.usd(0)
    for h, n in per_hit.items():
        total += n * money.assignment_cost(reward, _hit_capacity(conn, realm, h) + n)
    return int(sum(per_hit.values())), total


def uniform_cost(conn: sqlite3.Connection, realm: str, ratings: int, budget_ratings: int):
    """About what uniform allocation would cost: the full budget of valid ratings at this
    study's cost per valid rating so far (what was committed for the ratings in hand, so the
    ratings lost to quality control and the decided items rated along in an extended HIT are
    counted)."""
    from study.crowd.publish import committed_cost

    if ratings <= 0:
        return money.usd(0)
    return (committed_cost(conn, realm) * budget_ratings / ratings).quantize(money.usd("0.01"))


def _look(study, conn: sqlite3.Connection, realm: str, full: int, target_se: float):
    """The look at the approved valid test ratings of `realm`, and item_id -> (image, method)."""
    import pandas as pd

    from analysis.allocation import look

    rows = conn.execute(
        "SELECT r.item_id AS item, i.image_id AS image, i.method AS method, "
        "r.worker_id AS worker, r.score AS score FROM ratings r "
        "JOIN assignments a USING (assignment_id) JOIN items i ON i.item_id = r.item_id "
        "WHERE a.realm = ? AND r.valid = 1 AND a.decision = 'approve' AND i.kind = 'test'",
        (realm,)).fetchall()
    data = pd.DataFrame([dict(r) for r in rows], columns=["item", "image", "method", "worker",
                                                          "score"])
    if data.empty or data["method"].nunique() < 2 or data["image"].nunique() < 2:
        return None
    item_of = {int(i): (img, m) for i, img, m in conn.execute(
        "SELECT item_id, image_id, method FROM items WHERE kind = 'test'")}
    lk = look(data.astype({"score": float}), ratings_per_item=full,
              alpha=study.settings.report.alpha, correction=study.settings.report.correction,
              target_se=target_se)
    return lk, item_of


def status_lines(conn: sqlite3.Connection, realm: str) -> list[str]:
    """What the last look said the next round buys, for `study status`."""
    st = state(conn, realm)
    if not st:
        return []
    return [f"adaptive allocation, after round {st.get('round', 1)}:"] + list(st.get("lines") or [])


def view(conn: sqlite3.Connection, realm: str) -> dict | None:
    """The dashboard's figures on adaptive allocation: undecided pairs, spend so far, the next
    round's cost, the projected spend and what uniform allocation would have cost (None under
    uniform allocation, or before the first look)."""
    from study.crowd.publish import committed_cost

    st = state(conn, realm)
    if not st:
        return None
    committed = committed_cost(conn, realm)
    rest = money.usd(st.get("rest_usd") or 0)
    uniform = money.usd(st.get("uniform_usd") or 0)
    return {"round": st.get("round", 1), "stop": st.get("stop"),
            "undecided": st.get("undecided") or [], "pairs": st.get("pairs") or [],
            "ratings": st.get("ratings"), "budget_ratings": st.get("budget_ratings"),
            "next_ratings": 0 if st.get("stop") else st.get("next_ratings"),
            "next_usd": 0.0 if st.get("stop") else float(money.usd(st.get("next_usd") or 0)),
            "committed_usd": float(committed),
            "projected_usd": float(committed + rest), "uniform_usd": float(uniform),
            "p_change": st.get("p_change")}


def plan_lines(design, cost_per_assignment, n_hits: int) -> list[str]:
    """The publish plan's words on allocation (none for uniform)."""
    if design.allocation != ADAPTIVE:
        return []
    first, full = first_round(design), design.ratings_per_item
    most = money.fmt(cost_per_assignment * (full - first) * n_hits)
    line = (f"  allocation   adaptive: {first} ratings per item now; each `study collect` round "
            f"adds ratings only where the verdict is undecided, up to {full} per item "
            f"(at most about {most} more)")
    return [line]


def required_by_item(conn: sqlite3.Connection, realm: str) -> dict[tuple, int]:
    """(image, method) -> ratings wanted this round, under adaptive allocation (else empty)."""
    st = state(conn, realm)
    if not st:
        return {}
    where = {int(i): (img, m) for i, img, m in conn.execute(
        "SELECT item_id, image_id, method FROM items WHERE kind = 'test'")}
    return {where[int(i)]: int(n) for i, n in st["wanted"].items() if int(i) in where}


def finished(conn: sqlite3.Connection, realm: str, published: dict | None) -> bool:
    """Whether allocation lets collection be complete: always for uniform; for adaptive once
    a look said stop."""
    if not published or published.get("allocation") != ADAPTIVE:
        return True
    return bool((state(conn, realm) or {}).get("stop"))
