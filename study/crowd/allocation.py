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
    store.set_meta(conn, _key(realm), json.dumps({
        "wanted": {str(i): n for i, n in nxt.items()}, "stop": lk.stop,
        "ratings": lk.ratings, "budget_ratings": lk.budget_ratings,
        "next_ratings": int(sum(nxt.values()) - sum(counts.values())),
        "undecided": [[p.a, p.b] for p in lk.undecided()],
        "pairs": [p.to_dict() for p in lk.pairs if p.adjacent],
        "projections": lk.projections, "lines": lk.lines()}, default=str))
    return nxt


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
    return ["adaptive allocation, after the last round:"] + list(st.get("lines") or [])


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
