"""`study report` for a pairwise study: the collected choices as analysis.pairwise reads them,
the analysis with the study's [report] settings, and the report files.

A stored pairwise score is 1 when the item's method was chosen and 0 when its method_b was
(collect mirrors a swapped position). The judgements table puts them back as the page showed
them (method_a = the output shown as "A"), so the analysis can also say how often the side
shown first won. Gold pairs and choices quality control left out are not analysed.

The MOS report's worker screening (the P.910 subject model, BT.500) and its reliability and
power figures model ratings on a scale; they have no meaning for a choice between two outputs
and are not run. A pairwise study's workers are judged at collect (gold pairs, the same side
on every pair, time on task, viewing at 1:1)."""

from __future__ import annotations

import pandas as pd

from study.errors import StudyError

SKIPPED = ("the MOS report's worker screening (P.910 subject model, BT.500), reliability and "
           "power model ratings on a scale and are not run on choices; workers were judged at "
           "collect on their gold pairs (the reference itself must be chosen), on choosing the "
           "same side on every pair, on time per pair and on viewing at 1:1")


def judgements_frame(study, realm: str | None = None) -> pd.DataFrame:
    """One row per valid choice of a test pair: worker, image, method_a, method_b (as shown,
    A first), preferred ("A" or "B"), assignment."""
    from study.crowd.ratings import current_realm

    conn = study.connect()
    try:
        realm = realm or current_realm(conn)
        rows = conn.execute(
            "SELECT r.worker_id AS worker, i.image_id AS image, i.method AS method, "
            "i.method_b AS method_b, r.score AS score, hi.swapped AS swapped, "
            "r.assignment_id AS assignment FROM ratings r "
            "JOIN assignments a USING (assignment_id) "
            "JOIN hit_items hi ON hi.hit_index = a.hit_index AND hi.position = r.position "
            "JOIN items i ON i.item_id = r.item_id "
            "WHERE a.realm = ? AND r.valid = 1 AND i.kind = 'test' AND i.method_b != '' "
            "AND r.score IS NOT NULL ORDER BY r.assignment_id, r.position", (realm,)).fetchall()
    finally:
        conn.close()
    out = []
    for r in rows:
        swapped = bool(r["swapped"])
        a, b = (r["method_b"], r["method"]) if swapped else (r["method"], r["method_b"])
        chose_method = r["score"] == 1
        out.append({"worker": r["worker"], "image": r["image"], "method_a": a, "method_b": b,
                    "preferred": "A" if chose_method != swapped else "B",
                    "assignment": r["assignment"]})
    return pd.DataFrame(out, columns=["worker", "image", "method_a", "method_b", "preferred",
                                      "assignment"])


def quality_summary(study, realm: str | None = None) -> dict:
    """What collect decided of the study's assignments, and the gold pairs' accuracy."""
    from study.crowd.ratings import current_realm

    conn = study.connect()
    try:
        realm = realm or current_realm(conn)
        decisions = dict(conn.execute(
            "SELECT COALESCE(decision, 'pending'), COUNT(*) FROM assignments WHERE realm = ? "
            "GROUP BY 1", (realm,)).fetchall())
        gold = conn.execute(
            "SELECT COUNT(*), SUM(r.score BETWEEN i.expected_min AND i.expected_max) "
            "FROM ratings r JOIN assignments a USING (assignment_id) "
            "JOIN items i ON i.item_id = r.item_id WHERE a.realm = ? AND i.kind != 'test' "
            "AND r.score IS NOT NULL", (realm,)).fetchone()
        same_side = conn.execute(
            "SELECT COUNT(*) FROM assignments WHERE realm = ? AND decision_reason LIKE "
            "'%on all % pairs%'", (realm,)).fetchone()[0]
    finally:
        conn.close()
    notes = [SKIPPED]
    if gold[0]:
        notes.append(f"gold pairs: the reference was chosen in {int(gold[1] or 0)} of "
                     f"{gold[0]} judgements")
    if same_side:
        notes.append(f"{same_side} assignment(s) chose the same side on every pair and were "
                     "left out")
    return {"decisions": decisions, "gold_judgements": int(gold[0]),
            "gold_right": int(gold[1] or 0), "same_side_assignments": int(same_side),
            "notes": notes}


def follow_up_of(study) -> dict | None:
    """The rating study this one follows up (design.pairs_from), or None."""
    from study.crowd.pairs import pairs_from, rating_verdict

    path = pairs_from(study)
    return rating_verdict(path) if path else None


def analyse_study(study, **options):
    """The preferences of a pairwise study with its [report] settings."""
    from analysis import pairwise as pw
    from analysis.table import RatingsError
    from study.report import analysis_options

    df = judgements_frame(study)
    if df.empty:
        raise StudyError("no valid choices collected yet", where=str(study.root),
                         hint="run `study publish` and `study collect` first")
    opts = analysis_options(study, **options)
    try:
        return pw.analyse(df, "bradley-terry", bootstrap=min(opts["bootstrap"], 1000),
                          alpha=opts["alpha"], correction=opts["correction"], seed=opts["seed"])
    except RatingsError as exc:
        raise StudyError(exc.message, where=exc.where, hint=exc.hint) from None


def report(study, formats, out_dir, **options) -> tuple[dict, list]:
    """Analyse, and write the pairwise report in `formats` to `out_dir`; (report dict, paths)."""
    from analysis.report import atomic_write
    from analysis.report.preferences import render, report_dict

    prefs = analyse_study(study, **options)
    rep = report_dict(prefs, follow_up_of(study), quality_summary(study))
    files: dict[str, str] = {}
    for fmt in formats:
        files.update(render(rep, fmt))
    return rep, [atomic_write(out_dir / name, text) for name, text in files.items()]


def print_report(study, formats, out_dir, as_json: bool, **options) -> None:
    """`study report` of a pairwise study: write the files, print the ranking (or the JSON)."""
    import json

    import click

    rep, paths = report(study, formats, out_dir, **options)
    if as_json:
        click.echo(json.dumps(rep, indent=2, ensure_ascii=False, allow_nan=False))
        return
    c = rep["counts"]
    click.echo(f"Ranked {c['methods']} methods on {c['images']} images from {c['judgements']} "
               f"pairwise choices by {c['workers']} workers ({rep['model_name']}).")
    for m in rep["methods"]:
        ci = (f"  [{m['ci95_low']:.2f}, {m['ci95_high']:.2f}]"
              if m["ci95_low"] is not None and m["ci95_high"] is not None else "")
        click.echo(f"  {m['rank']:>3}. {m['method']:<24} score {m['score']:+.2f}{ci}  "
                   f"{m['group']}")
    for d in rep.get("follow_up", {}).get("decided", []):
        click.echo(f"  {d['a']} vs {d['b']}: decided by {d['decided_by']}")
    for n in rep["notes"] + rep["quality"].get("notes", []):
        click.echo(f"note: {n}", err=True)
    for p in paths:
        click.echo(f"wrote {p}")
