"""`study report`: the MOS ranking report from a study's ratings or from any ratings CSV."""

from __future__ import annotations

from pathlib import Path

import click

from study import methods
from study.errors import StudyError

FORMATS = ("md", "html", "csv", "tex", "json")


def _formats(text: str | None, default, where: str = "--format") -> list[str]:
    if not text:
        return _formats(",".join(map(str, default)), FORMATS, "study.toml [report] formats")
    out = []
    for f in (s.strip().lower() for s in text.split(",")):
        if not f:
            continue
        f = {"markdown": "md", "latex": "tex"}.get(f, f)
        if f not in FORMATS:
            raise StudyError(f"unknown report format {f!r}", where=where,
                             hint="choose from " + ",".join(FORMATS))
        if f not in out:
            out.append(f)
    if not out:
        raise StudyError("no report format given", where=where, hint="e.g. --format md,html")
    return out


def _scale(text: str | None, direction: bool | None, default_text: str):
    from analysis.scale import Scale
    try:
        return Scale.parse(text or default_text, higher_is_better=direction)
    except ValueError as exc:
        raise StudyError(str(exc), where="--scale", hint="write it as LOW..HIGH, e.g. --scale 1..5")


def _as_study_error(exc) -> StudyError:
    return StudyError(exc.message, where=exc.where, hint=exc.hint)


# Built-ins whose output is a copy (the input, or the reference itself): their measured time
# is file handling, not processing, so the report shows no runtime for them.
COPY_BUILTINS = ("input", "reference")


def study_inputs(study):
    """Ratings, factsheets and fidelity of a study. Read-only."""
    import json

    import pandas as pd

    from study.crowd.ratings import ratings_frame
    frame = ratings_frame(study)
    if frame is None or len(frame) == 0:
        raise StudyError("no ratings collected yet", where=str(study.root),
                         hint="run `study publish` and `study collect` first, or give --ratings FILE.csv")
    frame = frame.copy()
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce").astype(float)
    for c in ("image", "method", "worker"):
        frame[c] = frame[c].astype(str)
    frame["valid"] = frame["valid"].astype(bool) & frame["score"].notna()
    frame = frame[frame["score"].notna()]
    ranges = [c for c in ("expected_min", "expected_max") if c in frame]
    if "gold" in frame and frame["gold"].any() and "gold_correct" not in frame and (
            not ranges or frame.loc[frame["gold"], ranges].isna().any(axis=None)):
        # Without the accepted answers gold accuracy would be a guess: leave it unknown.
        frame["gold_correct"] = None
    factsheets, fidelity, copies = {}, {}, set()
    conn = study.connect()
    try:
        for r in conn.execute("SELECT name, kind, spec_json, team, author, framework, hardware, "
                              "runtime_reported FROM methods"):
            factsheets[r[0]] = {"team": r[3], "author": r[4], "framework": r[5],
                                "hardware": r[6], "runtime_s": r[7]}
            if r[1] == "builtin" and json.loads(r[2] or "{}").get("builtin") in COPY_BUILTINS:
                copies.add(r[0])
        for r in conn.execute("SELECT method, AVG(psnr), AVG(ssim), AVG(runtime_s) FROM renders "
                              "WHERE status = 'done' GROUP BY method"):
            fidelity[r[0]] = {"psnr": r[1], "ssim": r[2]}
            fs = factsheets.setdefault(r[0], {})
            if fs.get("runtime_s") is None and r[3] is not None and r[0] not in copies:
                fs["runtime_s"] = r[3]  # measured when nothing was self-reported
    finally:
        conn.close()
    return frame, factsheets or None, fidelity or None


def study_scale(study):
    """The scale the study's HITs asked for."""
    from study.crowd.design import study_scale as scale_of
    conn = study.connect()
    try:
        return scale_of(study, conn)
    finally:
        conn.close()


def analysis_options(study, *, seed: int | None = None, bootstrap: int | None = None,
                     alpha: float | None = None, correction: str | None = None) -> dict:
    """`analyse`'s settings: what was given, else the study's [report] settings, else the
    template's defaults. `study` may be None (a ratings file outside any study)."""
    from study.config import default_settings

    settings = study.settings if study is not None else default_settings()
    return {"seed": settings.study.seed if seed is None else seed,
            "bootstrap": settings.report.bootstrap if bootstrap is None else bootstrap,
            "alpha": settings.report.alpha if alpha is None else alpha,
            "correction": correction or settings.report.correction}


def analyse_study(study, *, inputs=None, scale=None, **options):
    """The analysis of a study's ratings with the study's settings: the one computation behind
    `study report` and the dashboard, so both show the same MOS, intervals and groups.
    `inputs`: what `study_inputs(study)` returned, when the caller has read it already."""
    from analysis.pipeline import analyse
    from analysis.table import RatingsError

    if methods.of(study.settings).pairwise:
        # Choices between two outputs have no MOS; the dashboard shows this message.
        raise StudyError("a pairwise study is analysed on the preference scale, not as MOS",
                         hint="run `study report` (reports/report.md shows the ranking)")
    df, factsheets, fidelity = inputs if inputs is not None else study_inputs(study)
    try:
        report = analyse(df, scale or study_scale(study), factsheets=factsheets,
                         fidelity=fidelity, **analysis_options(study, **options))
    except RatingsError as exc:
        raise _as_study_error(exc) from None
    asked = methods.of(study.settings)
    # The scale alone does not say what was asked (DCR and ACR share 1..5).
    report.notes.insert(0, f"test method: {asked.title} ({asked.name}, {asked.source}); "
                           f"workers were asked: {asked.question}")
    return report


@click.command("report")
@click.option("--format", "formats", default=None,
              help="Comma-separated formats: md,html,csv,tex,json (default: [report] formats, or all).")
@click.option("--ratings", "ratings_path", type=click.Path(dir_okay=False), default=None,
              help="Analyse this ratings CSV instead of the study's ratings (no study folder needed).")
@click.option("--scale", "scale_text", default=None,
              help="Rating scale LOW..HIGH (default 0..4; e.g. 1..5 for ACR data).")
@click.option("--higher-is-better/--lower-is-better", "higher_is_better", default=None,
              help="Direction of the scale (default: lower is better for 0..4, higher otherwise).")
@click.option("--columns", default=None,
              help="Map CSV columns: image=COL,method=COL,worker=COL,score=COL (also valid, gold).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: the study's reports/ folder, or ./report).")
@click.option("--seed", type=int, default=None, help="Seed of the bootstrap (default: the study's seed or 0).")
@click.option("--bootstrap", type=click.IntRange(0, 100000), default=None,
              help="Bootstrap replicates for the CIs (default 2000).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Significance level (default 0.05).")
@click.option("--correction", type=click.Choice(["holm", "bh"]), default=None,
              help="Multiple-comparison correction (default holm).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report's JSON (the same as report.json) instead of a summary.")
@click.pass_context
def report_command(ctx: click.Context, formats, ratings_path, scale_text, higher_is_better, columns,
                   out_dir, seed, bootstrap, alpha, correction, as_json) -> None:
    """Write the MOS ranking report (Table 1 with CIs and significance groups)."""
    from analysis.pipeline import analyse
    from analysis.report import write
    from analysis.table import RatingsError, parse_column_map, read_ratings

    study = None
    root_obj = ctx.find_root().obj
    study_dir = root_obj.get("study_dir") if isinstance(root_obj, dict) else None
    if ratings_path is None or study_dir:
        from study.studydir import open_study
        if ratings_path is None:
            study = open_study(study_dir)
        else:
            try:
                study = open_study(study_dir)
            except StudyError:
                study = None
    chosen = _formats(formats, study.settings.report.formats if study is not None else FORMATS)
    if study is not None and ratings_path is None and methods.of(study.settings).pairwise:
        from study.preferences import print_report
        print_report(study, chosen, Path(out_dir) if out_dir else study.reports_dir, as_json,
                     seed=seed, bootstrap=bootstrap, alpha=alpha, correction=correction)
        return
    if study is not None and ratings_path is None and not scale_text:
        scale = study_scale(study)
    else:
        scale = _scale(scale_text, higher_is_better, "0..4")
    try:
        colmap = parse_column_map(columns)
    except RatingsError as exc:
        raise _as_study_error(exc) from None
    if ratings_path is None:
        report = analyse_study(study, scale=scale, seed=seed, bootstrap=bootstrap, alpha=alpha,
                               correction=correction)
        default_out = study.reports_dir
    else:
        try:
            df = read_ratings(ratings_path, colmap, scale)
            report = analyse(df, scale, **analysis_options(study, seed=seed, bootstrap=bootstrap,
                                                           alpha=alpha, correction=correction))
        except RatingsError as exc:
            raise _as_study_error(exc) from None
        default_out = Path("report")
    out = Path(out_dir) if out_dir else default_out
    if out.exists() and not out.is_dir():
        raise StudyError(f"{out} exists and is not a folder", where="--out", hint="give a folder")
    paths = write(report, out, chosen)
    if as_json:
        from analysis.report.jsonreport import render_json
        click.echo(render_json(report))
        return
    from analysis.report.common import fmt, mos_decimals
    m = report.methods
    d = mos_decimals(scale)
    click.echo(f"Ranked {len(m)} methods on {report.counts['images']} images from "
               f"{report.counts['analysed']} ratings by {report.counts['workers']} workers "
               f"(scale {scale.label}).")
    for r in m.head(10).itertuples():
        ci = (f"  [{fmt(r.ci95_low, 'mos', decimals=d)}, {fmt(r.ci95_high, 'mos', decimals=d)}]"
              if r.ci95_low == r.ci95_low and r.ci95_high == r.ci95_high else "")
        click.echo(f"  {int(r.rank):>3}. {r.method:<24} MOS {fmt(r.mos, 'mos', decimals=d)}{ci}"
                   f"  {r.group}")
    if len(m) > 10:
        click.echo(f"  ... {len(m) - 10} more")
    for n in report.notes:
        click.echo(f"note: {n}", err=True)
    for p in paths:
        click.echo(f"wrote {p}")
