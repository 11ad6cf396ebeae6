"""Study design: items (image x method, plus gold items) and their grouping into HITs.

Every test item sits in exactly one HIT and every HIT is asked of R workers (MaxAssignments = R),
so a worker, who can do a HIT only once, never rates the same test item twice for the analysis.
Gold items (the reference against itself, and a clearly different control against the
reference) are added to every HIT and look exactly like test items. With design.repeats_per_hit
a HIT also shows some of its test items a second time (test-retest); collect judges the worker
on both ratings and analyses the first. The design is a pure function of the study's images,
done renders, settings and seed.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
from dataclasses import dataclass

from analysis.scale import Scale
from study import methods, store
from study.errors import StudyError

GOLD_REFERENCE = "gold_reference"
GOLD_CONTROL = "gold_control"
# Expected ratings: the identical pair at one of the two best levels ("almost identical" or
# "mostly similar" on the similarity scale); the control in the worse half of the scale (2 to 4
# of 0..4). Real subjects, whose biases spread by about 0.4 levels, put a clearly different
# control at "similar" often enough that asking for the two worst levels dropped honest workers.
GOLD_LEVELS = 2


def control_levels(scale: Scale) -> tuple[int, int]:
    return scale.worst_levels(math.ceil(len(scale.levels) / 2))


@dataclass(frozen=True)
class Item:
    image_id: str
    method: str
    kind: str  # "test" | "gold_reference" | "gold_control"
    reference_path: str
    result_path: str
    expected_min: int | None = None
    expected_max: int | None = None
    # Pairwise items show a second output.
    method_b: str = ""
    result_b_path: str = ""

    @property
    def key(self) -> tuple[str, ...]:
        # A one-output item keeps its three-part key, so designs stored before pairwise items
        # existed keep their fingerprint.
        return (self.image_id, self.method, self.kind) + ((self.method_b,) if self.method_b
                                                           else ())

    @property
    def gold(self) -> bool:
        return self.kind != "test"


@dataclass
class Design:
    items: list[Item]
    hits: list[list[tuple[str, str, str]]]  # per HIT, item keys in display order
    # Per HIT and position: shown the other way round (hit_items.swapped); None: never.
    swapped: list[list[bool]] | None = None

    def fingerprint(self) -> str:
        if self.swapped is None:
            return json.dumps([[list(k) for k in hit] for hit in self.hits])
        return json.dumps([[list(k) + ([1] if sw else []) for k, sw in zip(hit, flags)]
                           for hit, flags in zip(self.hits, self.swapped)])


def _rows(conn: sqlite3.Connection):
    images = conn.execute("SELECT image_id, input_path, reference_path FROM images "
                          "ORDER BY position").fetchall()
    renders = {(r["method"], r["image_id"]): r["path"] for r in conn.execute(
        "SELECT method, image_id, path FROM renders WHERE status = 'done' AND path IS NOT NULL")}
    return images, renders


def make_design(study, conn: sqlite3.Connection) -> Design:
    """The study's items and HITs, from its images, done renders and [design] settings."""
    s = study.settings
    if methods.of(s).pairwise:
        from study.crowd import pairs
        return pairs.make_design(study, conn)
    k, gold_ref, control = s.design.items_per_hit, s.design.gold_reference, \
        s.design.gold_control_method
    scale = methods.of(s).scale
    images, renders = _rows(conn)
    if not images:
        raise StudyError("the study has no images", where=str(study.db_path),
                         hint="create the study with `study init DIR --dataset PATH`")
    compared = list(s.methods)
    tests: list[Item] = []
    for img in images:
        for method in compared:
            path = renders.get((method, img["image_id"]))
            if path:
                tests.append(Item(img["image_id"], method, "test", img["reference_path"],
                                  str(study.resolve(path))))
    if not tests:
        raise StudyError("no method has a finished render to rate", where=str(study.db_path),
                         hint="run `study render` first")
    golds: dict[str, list[Item]] = {GOLD_REFERENCE: [], GOLD_CONTROL: []}
    for img in images:
        if gold_ref:
            golds[GOLD_REFERENCE].append(Item(
                img["image_id"], "reference", GOLD_REFERENCE, img["reference_path"],
                img["reference_path"], *scale.best_levels(GOLD_LEVELS)))
        if control:
            path = renders.get((control, img["image_id"]))
            if path is None and control == "input":
                path = img["input_path"]
            if path is not None:
                golds[GOLD_CONTROL].append(Item(
                    img["image_id"], control, GOLD_CONTROL, img["reference_path"],
                    str(study.resolve(path)), *control_levels(scale)))
    if len(golds[GOLD_CONTROL]) > 1:
        golds[GOLD_CONTROL] = _clearly_different(conn, control, golds[GOLD_CONTROL])
    if control and not golds[GOLD_CONTROL]:
        raise StudyError(f"the gold control method {control!r} has no finished render",
                         where="study.toml design.gold_control_method",
                         hint="render it with `study render`, or set gold_control_method = \"\"")

    rng = random.Random(f"design:{s.design_seed}")
    order = list(tests)
    rng.shuffle(order)
    n_hits = math.ceil(len(order) / k)
    # Near-equal HIT sizes rather than one short HIT at the end.
    chunks = [order[i::n_hits] for i in range(n_hits)]
    # Attention traps (study.crowd.traps): none unless quality.traps_per_hit is set.
    from study.crowd import traps
    trap_items = traps.for_hits(study, images, scale, n_hits, s.quality.traps_per_hit)
    hits = []
    for h, chunk in enumerate(chunks):
        members = list(chunk)
        # Gold images rotate over HITs; the control is shifted so that it shows a different
        # image from the reference gold whenever there are two images or more.
        for kind, shift in ((GOLD_REFERENCE, 0), (GOLD_CONTROL, len(images) // 2)):
            pool = golds[kind]
            if pool:
                members.append(pool[(h + shift) % len(pool)])
        if s.design.repeats_per_hit:
            # Test-retest: some of the HIT's test items a second time, somewhere else.
            members += rng.sample(list(chunk), min(s.design.repeats_per_hit, len(chunk)))
        members += trap_items[h]
        rng.shuffle(members)
        hits.append([m.key for m in members])
    used = {key for hit in hits for key in hit}
    traps_used = list({t.key: t for hit in trap_items for t in hit}.values())
    items = [i for i in tests + golds[GOLD_REFERENCE] + golds[GOLD_CONTROL] + traps_used
             if i.key in used]
    return Design(items=items, hits=hits)


def _clearly_different(conn: sqlite3.Connection, control: str, pool: list[Item]) -> list[Item]:
    """The control images most different from their reference (SSIM at or below the median).

    A gold control must be an easy "3 or 4": on an image where the reference itself is barely
    blurred, the control looks close to it and careful workers would "fail" the check."""
    ssim = {r["image_id"]: r["ssim"] for r in conn.execute(
        "SELECT image_id, ssim FROM renders WHERE method = ? AND status = 'done'", (control,))}
    known = [i for i in pool if ssim.get(i.image_id) is not None]
    if len(known) < 2:
        return pool
    values = sorted(ssim[i.image_id] for i in known)
    median = values[(len(values) - 1) // 2]
    return [i for i in known if ssim[i.image_id] <= median]


def _insert_items(conn: sqlite3.Connection, items: list[Item]) -> dict[tuple, int]:
    for it in items:
        conn.execute(
            "INSERT INTO items (image_id, method, method_b, kind, reference_path, result_path, "
            "result_b_path, expected_min, expected_max) VALUES (?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(image_id, method, method_b, kind) DO UPDATE SET "
            "reference_path = excluded.reference_path, result_path = excluded.result_path, "
            "result_b_path = excluded.result_b_path, "
            "expected_min = excluded.expected_min, expected_max = excluded.expected_max",
            (it.image_id, it.method, it.method_b, it.kind, it.reference_path, it.result_path,
             it.result_b_path, it.expected_min, it.expected_max))
    return {(r["image_id"], r["method"], r["kind"]) + ((r["method_b"],) if r["method_b"] else ()):
            r["item_id"] for r in conn.execute(
                "SELECT item_id, image_id, method, method_b, kind FROM items")}


def ensure_design(study, conn: sqlite3.Connection, save: bool = True) -> Design:
    """The study's design, stored once (unless `save` is false, for a dry run).

    Before anything is published the design follows the study (new renders, new settings);
    after that it is frozen, and a change is an error rather than a silent re-shuffle."""
    design = make_design(study, conn)
    with store.transaction(conn):
        stored = store.get_meta(conn, "crowd.design")
        published = conn.execute("SELECT COUNT(*) FROM hits").fetchone()[0]
        if stored == design.fingerprint():
            if save and not store.get_meta(conn, "crowd.scale"):
                _freeze_scale(study, conn)
            return design
        if stored is not None and published:
            raise StudyError(
                "the study design changed after HITs were published (different renders, "
                "methods or [design] settings)", where="study.toml [design] / renders",
                hint="restore the earlier settings and renders, or start a new study folder "
                     "for the new design")
        if not save:
            return design
        conn.execute("DELETE FROM hit_items")
        ids = _insert_items(conn, design.items)
        conn.execute("DELETE FROM items WHERE item_id NOT IN (SELECT item_id FROM ratings "
                      "WHERE item_id IS NOT NULL) AND item_id NOT IN ({})".format(
                          ",".join(str(ids[i.key]) for i in design.items)))
        for h, hit in enumerate(design.hits):
            for pos, key in enumerate(hit, start=1):
                swapped = bool(design.swapped and design.swapped[h][pos - 1])
                conn.execute("INSERT INTO hit_items (hit_index, position, item_id, realm, "
                             "swapped) VALUES (?,?,?, '', ?)", (h, pos, ids[key], int(swapped)))
        store.set_meta(conn, "crowd.design", design.fingerprint())
        _freeze_scale(study, conn)
        store.set_meta(conn, "crowd.design_hits", str(len(design.hits)))
    return design


def _freeze_scale(study, conn: sqlite3.Connection) -> None:
    # The scale is part of the design: collect, reports and the dashboard read it from here.
    store.set_meta(conn, "crowd.scale", json.dumps(methods.of(study.settings).scale.to_dict()))


def stored_scale(conn: sqlite3.Connection) -> Scale:
    """The scale frozen with the design."""
    stored = store.get_meta(conn, "crowd.scale")
    if not stored:
        raise StudyError("the study has no design yet", hint="run `study publish` first")
    return Scale.from_dict(json.loads(stored))


def study_scale(study, conn: sqlite3.Connection) -> Scale:
    """The scale the study's HITs ask for: frozen with the design, else the settings' one."""
    if store.get_meta(conn, "crowd.scale"):
        return stored_scale(conn)
    return methods.of(study.settings).scale


def design_hit_count(conn: sqlite3.Connection) -> int:
    return int(store.get_meta(conn, "crowd.design_hits", "0") or 0)


def hit_items(conn: sqlite3.Connection, hit_index: int) -> list[sqlite3.Row]:
    """The items of one HIT in display order, with everything a page needs."""
    return conn.execute(
        "SELECT hi.position, hi.swapped, i.* FROM hit_items hi JOIN items i USING (item_id) "
        "WHERE hi.hit_index = ? ORDER BY hi.position", (hit_index,)).fetchall()
