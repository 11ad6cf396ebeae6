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
from dataclasses import dataclass, field
from typing import Callable

from analysis.scale import Scale
from study import methods, store
from study.errors import StudyError

GOLD_REFERENCE = "gold_reference"
GOLD_CONTROL = "gold_control"
# The gold items' expected ratings come from the test method (study.methods): on the similarity
# scale the identical pair at one of the two best levels, the control in the worse half.


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
    # The test method, and per HIT the positions shown the other way round (methods that
    # swap sides: CCR's reference second).
    method: str = methods.SIMILARITY
    swapped: list[set[int]] = field(default_factory=list)

    def fingerprint(self) -> str:
        hits = [[list(k) for k in hit] for hit in self.hits]
        if self.method == methods.SIMILARITY and not any(self.swapped):
            # The form designs had before test methods existed: their fingerprints stay.
            return json.dumps(hits)
        return json.dumps({"method": self.method, "hits": hits,
                           "swapped": [sorted(s) for s in self.swapped]})


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
    asked = methods.of(s)
    # A method without such a check (None: ACR has no control, as without the reference a
    # sharp input is not "bad") leaves that gold out whatever [design] asks.
    k, scale = s.design.items_per_hit, asked.scale
    gold_ref = s.design.gold_reference and asked.gold_reference is not None
    control = s.design.gold_control_method if asked.gold_control is not None else ""
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
    if gold_ref:
        golds[GOLD_REFERENCE] = [Item(img["image_id"], "reference", GOLD_REFERENCE,
                                      img["reference_path"], img["reference_path"],
                                      *asked.gold_reference) for img in images]
    if control:
        golds[GOLD_CONTROL] = control_items(
            study, conn, images, renders, control,
            lambda img, path: Item(img["image_id"], control, GOLD_CONTROL,
                                   img["reference_path"], path, *asked.gold_control))

    # Attention traps (study.crowd.traps): none unless quality.traps_per_hit is set.
    from study.crowd import traps
    trap_items: list[list[Item]] = []

    def extras(h: int, n_hits: int) -> list[Item]:
        if not trap_items:
            trap_items.extend(traps.for_hits(study, images, scale, n_hits,
                                             s.quality.traps_per_hit))
        members = []
        # Gold images rotate over HITs; the control is shifted so that it shows a different
        # image from the reference gold whenever there are two images or more.
        for kind, shift in ((GOLD_REFERENCE, 0), (GOLD_CONTROL, len(images) // 2)):
            pool = golds[kind]
            if pool:
                members.append(pool[(h + shift) % len(pool)])
        return members + trap_items[h]

    dealt, _ = deal(tests, k, s.design_seed, s.design.repeats_per_hit, extras)
    hits = [[m.key for m in members] for members in dealt]
    used = {key for hit in hits for key in hit}
    traps_used = list({t.key: t for hit in trap_items for t in hit}.values())
    items = [i for i in tests + golds[GOLD_REFERENCE] + golds[GOLD_CONTROL] + traps_used
             if i.key in used]
    swapped = _swaps(hits, f"swap:{s.design_seed}") if asked.swaps_sides else []
    return Design(items=items, hits=hits, method=asked.name, swapped=swapped)


def deal(tests: list[Item], per_hit: int, seed, repeats: int,
         extras: Callable[[int, int], list[Item]]) -> tuple[list[list[Item]], random.Random]:
    """The test items shuffled into near-equal HITs of at most `per_hit` (rather than one short
    HIT at the end); HIT h also gets `extras(h, number of HITs)` (gold items, traps) and
    `repeats` of its own test items a second time (test-retest), all in a shuffled order. Every
    test method deals its HITs here, from the design seed; the generator is returned for draws
    that follow (pairwise sides)."""
    rng = random.Random(f"design:{seed}")
    order = list(tests)
    rng.shuffle(order)
    n_hits = math.ceil(len(order) / per_hit)
    chunks = [order[i::n_hits] for i in range(n_hits)]
    dealt = []
    for h, chunk in enumerate(chunks):
        members = list(chunk) + extras(h, n_hits)
        if repeats:
            members += rng.sample(list(chunk), min(repeats, len(chunk)))
        rng.shuffle(members)
        dealt.append(members)
    return dealt, rng


def _swaps(hits: list[list[tuple]], seed: str) -> list[set[int]]:
    """Which HIT positions show their item the other way round: for each method and each kind
    of item, half of its appearances (the odd one out by the seed), at positions drawn from
    the seed. A separate stream, so the HITs are those of the method without swaps."""
    rng = random.Random(seed)
    groups: dict[tuple, list[tuple[int, int]]] = {}
    for h, hit in enumerate(hits):
        for pos, key in enumerate(hit, start=1):
            # key = (image, method, kind[, method_b]): balanced per method and kind.
            groups.setdefault(key[1:], []).append((h, pos))
    swapped: list[set[int]] = [set() for _ in hits]
    for group in sorted(groups):
        places = groups[group]
        rng.shuffle(places)
        half = len(places) // 2 + (rng.random() < 0.5 if len(places) % 2 else 0)
        for h, pos in places[:half]:
            swapped[h].add(pos)
    return swapped


def control_items(study, conn: sqlite3.Connection, images, renders: dict, control: str,
                  make: Callable[[sqlite3.Row, str], Item],
                  hint: str = "render it with `study render`, or set "
                              "gold_control_method = \"\"") -> list[Item]:
    """`make(image row, output path)` for each image the gold control method `control` has an
    output of ("input" is the image's own input), kept to the clearly different ones; an error
    when there is none. Gold items, pairwise gold pairs and the qualification's anchors all
    come from here."""
    pool = []
    for img in images:
        path = renders.get((control, img["image_id"]))
        if path is None and control == "input":
            path = img["input_path"]
        if path is not None:
            pool.append(make(img, str(study.resolve(path))))
    if len(pool) > 1:
        pool = _clearly_different(conn, control, pool)
    if not pool:
        raise StudyError(f"the gold control method {control!r} has no finished render",
                         where="study.toml design.gold_control_method", hint=hint)
    return pool


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
            swapped = design.swapped[h] if design.swapped else set()
            for pos, key in enumerate(hit, start=1):
                conn.execute("INSERT INTO hit_items (hit_index, position, item_id, realm, "
                             "swapped) VALUES (?,?,?, '', ?)",
                             (h, pos, ids[key], int(pos in swapped)))
        store.set_meta(conn, "crowd.design", design.fingerprint())
        _freeze_scale(study, conn)
        store.set_meta(conn, "crowd.design_hits", str(len(design.hits)))
    return design


def _freeze_scale(study, conn: sqlite3.Connection) -> None:
    # The method and its scale are part of the design: pages, collect, reports and the
    # dashboard read them from here.
    method = methods.of(study.settings)
    store.set_meta(conn, "crowd.scale", json.dumps(method.scale.to_dict()))
    store.set_meta(conn, "crowd.method", method.name)


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


def frozen_method(conn: sqlite3.Connection) -> methods.TestMethod:
    """The test method frozen with the design (a design frozen before methods existed asked
    for similarity)."""
    name = store.get_meta(conn, "crowd.method") or methods.SIMILARITY
    return methods.get(name, stored_scale(conn))


def study_method(study, conn: sqlite3.Connection) -> methods.TestMethod:
    """The test method the study's HITs ask with: frozen with the design, else the settings'
    one."""
    if not store.get_meta(conn, "crowd.scale"):
        return methods.of(study.settings)
    return frozen_method(conn)


def design_hit_count(conn: sqlite3.Connection) -> int:
    return int(store.get_meta(conn, "crowd.design_hits", "0") or 0)


def hit_items(conn: sqlite3.Connection, hit_index: int) -> list[sqlite3.Row]:
    """The items of one HIT in display order, with everything a page needs."""
    return conn.execute(
        "SELECT hi.position, hi.swapped, i.* FROM hit_items hi JOIN items i USING (item_id) "
        "WHERE hi.hit_index = ? ORDER BY hi.position", (hit_index,)).fetchall()
