"""Attention traps over real HTTP: a trap's instruction is in its pixels and nowhere in the page
source (its section, images and URLs look like every other pair's), and an assignment that does
not follow it is excluded, with the reason in the report's words."""

from __future__ import annotations

import re

import numpy as np
import requests
from PIL import Image

from study.crowd import traps
from study.studydir import Study
from test_crowd_support import photo_dataset_study, set_config, study_service, tags, work_one_hit

APPEARANCE = re.compile(r"^http://127\.0\.0\.1:\d+/img/[0-9a-f]{104}\.jpg$")


def item_rows(root, hit_id):
    conn = Study.open(root).connect()
    try:
        return {r["position"]: r for r in conn.execute(
            "SELECT hi.position, i.* FROM hits h JOIN hit_items hi ON hi.hit_index = h.hit_index "
            "JOIN items i USING (item_id) WHERE h.hit_id = ?", (hit_id,))}
    finally:
        conn.close()


def answers(root, follow: bool):
    """Right on gold, by method on tests; traps as instructed, or one level off."""
    order = ["reference", "depth-blend", "scatter", "gaussian", "input"]

    def answer(positions, query):
        rows = item_rows(root, query["hitId"])
        out = {}
        for p in positions:
            r = rows[p]
            if r["kind"] == "trap":
                level = r["expected_min"] if follow else (r["expected_min"] + 2) % 5
            else:
                level = {"gold_reference": 0, "gold_control": 4}.get(
                    r["kind"], order.index(r["method"]) if r["method"] in order else 2)
            out[f"rating_{p}"] = str(level)
            out[f"seconds_{p}"] = "6"
        return out
    return answer


def test_traps_hide_in_the_page_and_exclude_who_misses_them(tmp_path, run_cli):
    root = photo_dataset_study(tmp_path)
    set_config(root, "[quality]\ntraps_per_hit = 1\nblock_after_failures = 0\n")
    with study_service(root) as (url, _market):
        run_cli("publish", cwd=root)
        study = Study.open(root)
        conn = study.connect()
        trap_items = conn.execute("SELECT * FROM items WHERE kind = 'trap'").fetchall()
        per_hit = conn.execute("SELECT hi.hit_index, COUNT(*) FROM hit_items hi JOIN items i "
                               "USING (item_id) WHERE i.kind = 'trap' GROUP BY 1").fetchall()
        assert trap_items and all(n == 1 for _, n in per_hit) and len(per_hit) == 2
        for t in trap_items:
            # The instruction is burned into a copy of the reference; its level is stored.
            assert t["expected_min"] == t["expected_max"] == int(t["method"].split("@")[1])
            ref = np.asarray(Image.open(t["reference_path"]).convert("RGB"), int)
            shown = np.asarray(Image.open(t["result_path"]).convert("RGB"), int)
            assert ref.shape == shown.shape and (np.abs(ref - shown).sum(axis=2) > 60).mean() > 0.05

        site = f"{url}/worker/sandbox"
        done = work_one_hit(requests.Session(), site, "CAREFUL", answers(root, follow=True))
        missed = work_one_hit(requests.Session(), site, "HASTY", answers(root, follow=False))

        # In the page source a trap's section, images and URLs are of the same kind as any
        # other pair's.
        rows = item_rows(root, done["hit_id"])
        page = tags(done["page"])
        shapes = {}
        pos = None
        for tag, attrs in page:
            if tag == "section" and "data-position" in attrs:
                pos = int(attrs["data-position"])
                shapes.setdefault(pos, []).append((tag, sorted(attrs)))
            elif pos is not None and tag == "img":
                shapes[pos].append((tag, sorted(attrs), attrs["class"]))
                assert APPEARANCE.match(attrs["src"]), attrs["src"]
            elif tag == "input" and attrs.get("name", "").endswith(f"_{pos}"):
                shapes[pos].append((tag, sorted(attrs), attrs["name"].split("_")[0],
                                    attrs.get("data-anchor")))
        trap_pos = [p for p, r in rows.items() if r["kind"] == "trap"]
        assert len(trap_pos) == 1
        others = [shapes[p] for p in shapes if p not in trap_pos]
        assert all(shapes[trap_pos[0]] == o for o in others)
        srcs = [a["src"] for t, a in page if t == "img"]
        assert len(srcs) == len(set(srcs))

        run_cli("collect", "--no-approve", cwd=root)
        decided = {r["worker_id"]: r for r in conn.execute(
            "SELECT worker_id, decision, decision_reason FROM assignments")}
        from study.marketplace import worker_id_for
        assert decided[worker_id_for("CAREFUL")]["decision"] == "approve"
        hasty = decided[worker_id_for("HASTY")]
        assert hasty["decision"] == "exclude"
        assert "missed an attention check" in hasty["decision_reason"]
        reasons = {r[0] for r in conn.execute(
            "SELECT r.reason FROM ratings r JOIN assignments a USING (assignment_id) "
            "WHERE a.worker_id = ?", (worker_id_for("HASTY"),))}
        assert any("attention check" in r for r in reasons)
        conn.close()


def test_instruction_uses_the_method_scale():
    from study import methods
    ccr = methods.get("ccr").scale
    assert traps.instruction(ccr, -2) == "Quality check: select \u201c-2 worse\u201d for this pair."
    sim = methods.get("similarity-0-4").scale
    assert "2 similar" in traps.instruction(sim, 2)


def test_a_trap_shown_the_other_way_round_expects_the_mirrored_answer():
    from study import methods
    ccr = methods.get("ccr").scale
    assert traps.expected({"expected_min": 2, "swapped": 1}, ccr) == (-2, -2)
    assert traps.expected({"expected_min": 2, "swapped": 0}, ccr) == (2, 2)
