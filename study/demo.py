"""`study demo`: a whole study, end to end, on demo data, with no network.

Every stage runs through the same commands a user runs (`study render`, `publish`, `collect`,
`report`); the service (marketplace, worker site, task pages, images) runs in this process on
loopback, and a simulated crowd does the rating over HTTP."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import click

from study.errors import StudyError
from study.methods import NAMES

# The seed's design size: 10 images x 5 methods = 50 items. Twelve ratings per item rank the
# methods right on seeds 0-7 with workers as noisy as real subjects (ten missed once: the global
# blur and the input lie 0.3 apart in truth); enough workers that spammers and straight-liners
# turn up among them.
DEMO_SETTINGS = {
    ("design", "ratings_per_item"): 12,
    ("design", "items_per_hit"): 9,
    ("hit", "max_hits_per_worker"): 3,
    ("hit", "reward"): '"0.40"',
    ("hit", "expected_seconds_per_hit"): 150,
    # The crowd works in simulated time: slots held by workers who walked away free up ten
    # simulated minutes later, without the demo waiting for them.
    ("hit", "assignment_duration_s"): 600,
    ("budget", "max_usd"): 200.0,
}
# `study demo --method pairwise`: the reference and two outputs, which is closer. Every pair of
# the 5 methods on every image (100 pairs), 5 choices each: about the judgements of the rating
# demo's 12 ratings of 50 items.
PAIRWISE_SETTINGS = {
    ("design", "method"): '"pairwise"',
    ("design", "ratings_per_item"): 5,
    ("design", "items_per_hit"): 10,
}
# `study demo --allocation adaptive`: ratings go where the verdict is still undecided, 3 per
# item first, more only for the pairs of methods the full budget could still change
# (docs/allocation.md); the demo prints what that saved against giving every item all 12. Not
# the default: on seed 1 it ranks two methods 0.01 apart in the wrong order, which uniform
# allocation ranks right.
ADAPTIVE_SETTINGS = {
    ("design", "allocation"): '"adaptive"',
    ("design", "initial_ratings_per_item"): 3,
}


# `study demo --training`: a qualification HIT with training before any rating (new workers
# arrive every round, so it takes many workers at a small reward) and one attention trap per
# HIT. Not the default: it adds a round trip per crowd (qualify, collect, then rate).
TRAINING_SETTINGS = {
    ("qualification", "enabled"): "true",
    ("qualification", "max_workers"): 400,
    ("qualification", "reward"): '"0.05"',
    ("quality", "traps_per_hit"): 1,
    ("budget", "max_usd"): 260.0,
}


def _set(toml_text: str, section: str, key: str, value: Any) -> str:
    """Change one `key = value` line inside [section] of the commented template."""
    pattern = re.compile(rf"(^\[{re.escape(section)}\]\n(?:(?!^\[).*\n)*?){re.escape(key)} = .*$",
                         re.M)
    new, n = pattern.subn(lambda m: f"{m.group(1)}{key} = {value}", toml_text, count=1)
    if n != 1:
        raise RuntimeError(f"setting {section}.{key} not found in the template")
    return new


# Share of a photo's width each of its two crops keeps (they overlap in the middle).
CROP_WIDTH = 0.6


def crop_in_two(data_dir: Path) -> int:
    """Make each demo photo two images: its left and right crops, input, reference and depth
    alike. A study of the seed's size (10 images) from the five bundled photos, without
    rendering the slow reference twice. Returns the number of images."""
    from PIL import Image

    test = Path(data_dir) / "test"
    folders = {"original": ".jpg", "bokeh": ".jpg", "original_depth": ".png"}
    ids = sorted((p.stem for p in (test / "original").glob("*.jpg")), key=int)
    photos = {}
    for old in ids:
        for folder, ext in folders.items():
            with Image.open(test / folder / f"{old}{ext}") as im:
                im.load()
            photos[old, folder] = im
    for new, old in enumerate(ids):
        for folder, ext in folders.items():
            im = photos[old, folder]
            w, h = im.size
            cw = round(w * CROP_WIDTH)
            for side, left in enumerate((0, w - cw)):
                crop = im.crop((left, 0, left + cw, h))
                target = test / folder / f"{2 * new + side + 1}{ext}"
                if ext == ".jpg":
                    crop.save(target, quality=95)
                else:
                    crop.save(target)
    return 2 * len(ids)


def _stage(title: str) -> float:
    click.secho(f"\n== {title}", bold=True)
    return time.perf_counter()


def _cli(*args: str) -> None:
    from study.cli import cli
    rv = cli.main(args=[str(a) for a in args], prog_name="study", standalone_mode=False)
    if isinstance(rv, int) and rv != 0:
        raise StudyError(f"`study {' '.join(map(str, args))}` failed (exit status {rv})")


def run_demo(directory: Path, *, workers: int = 36, seed: int = 0, size: int = 1024,
             port: int = 8765, rounds: int = 30,
             mix: dict[str, float] | None = None,
             allocation: str = "uniform", training: bool = False,
             method: str = "similarity-0-4") -> dict[str, Any]:
    from study.create import create_study
    from study.marketplace.ids import SeededIds
    from study.marketplace.server import serve_in_thread
    from study import methods
    from study.render.demodata import build_demo_dataset
    from study.simulate import SimulatedClock, reference_paths, simulate_crowd
    from study.simulate.scoring import planted_ranking, planted_scores
    from study.simulate.workers import LOW_QUALITY, NOISY
    from study.studydir import Study
    from study.web import create_app
    from study.service import announce_service, free_port, serve_file

    test_method = methods.get(method)
    started = time.perf_counter()
    directory = Path(directory).absolute()
    if directory.exists() and any(directory.iterdir()):
        raise StudyError(f"{directory} already exists and is not empty",
                         hint="pass another folder: `study demo DIR`, or remove this one")
    data_dir = directory / "data"
    study_root = directory / "study"

    t = _stage("1/7 demo dataset")
    build_demo_dataset(data_dir, size=size, seed=seed)
    n_images = crop_in_two(data_dir)
    click.echo(f"built {data_dir}: {n_images} images ({time.perf_counter() - t:.1f} s)")

    t = _stage("2/7 study folder")
    port = free_port(port or None)
    create_study(study_root, data_dir, seed=seed, name="aim2019-bokeh-demo", port=port,
                 echo=lambda m: click.echo(m))
    toml_path = study_root / "study.toml"
    text = toml_path.read_text()
    settings = dict(DEMO_SETTINGS)
    if allocation == "adaptive":
        settings.update(ADAPTIVE_SETTINGS)
    if training:
        settings.update(TRAINING_SETTINGS)
    settings[("design", "method")] = f'"{method}"'
    if method == "pairwise":
        settings.update(PAIRWISE_SETTINGS)
    for (section, key), value in settings.items():
        text = _set(text, section, key, value)
    # A stronger global blur than the default keeps the baseline clearly apart from the
    # unprocessed input on these few demo images.
    text = text.replace('builtin = "gaussian"\n', 'builtin = "gaussian"\nparams = { sigma = 8 }\n')
    toml_path.write_text(text)
    click.echo(f"created {study_root}")

    t = _stage("3/7 render every built-in method")
    _cli("--study", study_root, "render")
    click.echo(f"rendered in {time.perf_counter() - t:.1f} s")

    study = Study.open(study_root)
    # The marketplace runs on simulated time and seeded ids, which the crowd moves: the outcome
    # depends on the seed alone, not on how fast this machine is.
    clock = SimulatedClock()
    app = create_app(study, clock=clock, new_id=SeededIds(seed))
    url, stop = serve_in_thread(app, host="127.0.0.1", port=port)
    announce_service(study, url)
    references = reference_paths(study)
    try:
        t = _stage("4/7 publish to the sandbox realm")
        _cli("--study", study_root, "publish", "--sandbox", "--yes")

        from study.simulate.instructions import trap_instructions
        from study.status import gather
        crowd_results = []
        instructions = trap_instructions(study)
        for round_no in range(1, rounds + 1):
            t = _stage(f"5/7 simulated crowd, round {round_no}")
            # With training, last round's crowd comes back (its passers are qualified now)
            # before this round's newcomers take the qualification HIT.
            crowd_seeds = ([seed + 1000 * (round_no - 1)] if training and round_no > 1
                           else []) + [seed + 1000 * round_no]
            submitted = 0
            for crowd_seed in crowd_seeds:
                result = simulate_crowd(f"{url}/worker/sandbox", workers=workers,
                                        seed=crowd_seed, mix=mix, progress=False,
                                        clock=clock, instructions=instructions,
                                        references=references)
                crowd_results.append(result)
                submitted += sum(w.submitted for w in result.workers)
            click.echo(f"{submitted} assignment(s) submitted in {time.perf_counter() - t:.1f} s")
            t = _stage(f"6/7 collect with quality control, round {round_no}")
            _cli("--study", study_root, "collect")
            if gather(study)["collect"].get("complete"):
                break
            # Slots still held by workers who accepted and walked away free up when their
            # assignments expire (hit.assignment_duration_s), in simulated time.
            clock.advance(study.settings.hit.assignment_duration_s + 1)

        t = _stage("7/7 report")
        _cli("--study", study_root, "report")
    finally:
        serve_file(study).unlink(missing_ok=True)
        stop()

    # Check the result against what the simulation planted.
    conn = study.connect()
    try:
        pairs = [(r["image_id"], r["method"], r["reference_path"], study.resolve(r["path"]))
                 for r in
                 conn.execute("SELECT r.image_id, r.method, r.path, i.reference_path "
                              "FROM renders r JOIN images i USING (image_id) "
                              "WHERE r.status = 'done'")]
    finally:
        conn.close()
    scores = planted_scores(pairs)
    planted = planted_ranking(scores)
    report = json.loads((study.reports_dir / "report.json").read_text())
    pairwise = method == "pairwise"
    # Best first: the highest preference score, or the MOS by the scale's direction (the
    # planted order is closest to the reference first).
    best_first = -1 if test_method.scale.higher_is_better else 1
    ranked = [m["method"] for m in sorted(
        report["methods"], key=lambda m: m["rank"] if pairwise else best_first * m["mos"])]
    planted_bad, noisy, worked = set(), set(), set()
    for res in crowd_results:
        worked |= {w.worker_id for w in res.workers if w.submitted}
        planted_bad |= set(res.low_quality_workers)
        noisy |= set(res.ids_of(*NOISY))
    planted_bad &= worked
    # Noisy honest workers count neither way: excluding them is no catch and no loss.
    judged = worked - (noisy - planted_bad)
    flagged = {w["worker"] for w in report.get("workers", [])
               if w.get("screening") not in (None, "kept")}
    conn = study.connect()
    try:
        doubted = {r[0] for r in conn.execute(
            "SELECT DISTINCT worker_id FROM assignments WHERE decision IN ('exclude', 'reject')")}
    finally:
        conn.close()
    summary = {
        "study": str(study_root),
        "method": method,
        "scale": test_method.scale.label,
        "images": n_images,
        "planted_ranking": planted,
        "report_ranking": ranked,
        "ranking_matches": planted == ranked,
        "letters": _letters_check(scores, report),
        "workers": len(worked),
        "low_quality": sorted(planted_bad),
        # Workers the report left out of the analysis, and workers quality control excluded or
        # rejected at collect (any assignment), against the workers planted as low quality.
        "flags": _precision_recall(flagged & judged, planted_bad, judged),
        "collect_flags": _precision_recall(doubted & judged, planted_bad, judged),
        "noisy": {"workers": len(noisy & worked), "excluded": len(noisy & worked & flagged)},
        "allocation": _allocation_summary(study),
        "training": _training_summary(study, crowd_results) if training else None,
        "seconds": round(time.perf_counter() - started, 1),
    }
    click.secho("\n== result", bold=True)
    click.echo(f"test method: {test_method.title} ({method}), scale {test_method.scale.label}")
    click.echo("planted order (closest to the f/1.8 photo first): " + " < ".join(planted))
    click.echo(("report order  (most often chosen first):         " if pairwise else
                "report order  (best MOS first):                   ") + " < ".join(ranked))
    click.echo("ranking matches the planted order: " + ("yes" if summary["ranking_matches"] else "NO"))
    lt = summary["letters"]
    click.echo(f"the letters separate {lt['separated']} of the {lt['different']} pairs of methods "
               f"at least {lt['gap']} apart in truth")
    click.echo(f"{len(planted_bad)} of {len(worked)} workers who submitted were planted as low "
               f"quality ({', '.join(LOW_QUALITY)})")
    if summary["noisy"]["workers"]:
        click.echo(f"{summary['noisy']['workers']} were honest but noisier than real subjects "
                   f"({', '.join(NOISY)}"
                   + ("" if pairwise else f"; {summary['noisy']['excluded']} excluded by the report")
                   + "), counted neither way below")
    for label, key in ((("excluded from the analysis by the report", "flags"),) * (not pairwise)
                       + (("excluded (or rejected) at collect, at least once",
                           "collect_flags"),)):
        f = summary[key]
        click.echo(f"  {label}: {f['flagged']} workers, {f['caught']} of them planted; "
                   f"precision {_fmt(f['precision'])}, recall {_fmt(f['recall'])}; "
                   f"{f['honest_flagged']} of {f['honest']} others "
                   f"({_fmt(f['honest_share'])})")
    for line in _allocation_lines(summary["allocation"]):
        click.echo(line)
    for line in _training_lines(summary["training"]):
        click.echo(line)
    click.echo(f"\nfinished in {summary['seconds']} s")
    click.echo(f"  study folder: {study_root}")
    for name in sorted(p.name for p in study.reports_dir.glob("report.*")):
        click.echo(f"  report:       {study.reports_dir / name}")
    click.echo(f"  dashboard:    run `study serve --study {study_root}` and open the link it prints")
    (directory / "demo-summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _letters_check(scores: dict[str, float], report: dict[str, Any],
                   gap: float = 0.49) -> dict[str, Any]:
    """How many pairs of methods that truly differ (by `gap` or more; the smallest planted gap
    of the demo's design) the report's letters separate (no letter in common)."""
    from itertools import combinations

    groups = {m["method"]: set(m.get("group") or "") for m in report["methods"]}
    different = [(a, b) for a, b in combinations(sorted(scores), 2)
                 if abs(scores[a] - scores[b]) >= gap and a in groups and b in groups]
    joined = [f"{a} ~ {b}" for a, b in different if groups[a] & groups[b]]
    return {"gap": gap, "different": len(different),
            "separated": len(different) - len(joined), "joined": joined}


def _training_summary(study, crowd_results) -> dict[str, Any]:
    """Who passed the qualification, and whom the attention traps caught, by planted kind."""
    from study.simulate.workers import LOW_QUALITY

    kinds = {w.worker_id: w.kind for res in crowd_results for w in res.workers}
    conn = study.connect()
    try:
        tests = conn.execute("SELECT worker_id, passed FROM qualification_assignments"
                             ).fetchall()
        caught = {r[0] for r in conn.execute(
            "SELECT DISTINCT worker_id FROM assignments WHERE decision_reason LIKE "
            "'%attention check%'")}
        rated = {r[0] for r in conn.execute("SELECT DISTINCT worker_id FROM assignments")}
    finally:
        conn.close()
    out: dict[str, Any] = {}
    for group, members in (("low_quality", set(LOW_QUALITY)),
                           ("others", set(kinds.values()) - set(LOW_QUALITY))):
        took = [t for t in tests if kinds.get(t["worker_id"]) in members]
        workers = {w for w in rated if kinds.get(w) in members}
        out[group] = {"took_test": len(took), "passed": sum(t["passed"] for t in took),
                      "rated": len(workers), "caught_by_traps": len(workers & caught)}
    return out


def _training_lines(t: dict[str, Any] | None) -> list[str]:
    if not t:
        return []
    return [f"qualification: {g['passed']} of {g['took_test']} {name} passed; of the "
            f"{g['rated']} who rated, {g['caught_by_traps']} missed an attention check"
            for name, g in (("planted low-quality workers", t["low_quality"]),
                            ("other workers", t["others"]))]


def _allocation_summary(study) -> dict[str, Any] | None:
    """What adaptive allocation spent against uniform allocation (every item all its ratings)."""
    from study.crowd import allocation
    from study.crowd.ratings import current_realm

    conn = study.connect()
    try:
        view = allocation.view(conn, current_realm(conn))
    finally:
        conn.close()
    if view is None:
        return None
    return {"rounds": view["round"], "stop": view["stop"], "ratings": view["ratings"],
            "uniform_ratings": view["budget_ratings"],
            "saved_ratings": view["budget_ratings"] - view["ratings"],
            "spent_usd": round(view["committed_usd"], 2),
            "uniform_usd": round(view["uniform_usd"], 2),
            "saved_usd": round(view["uniform_usd"] - view["committed_usd"], 2),
            "p_change": view["p_change"]}


def _allocation_lines(a: dict[str, Any] | None) -> list[str]:
    if not a:
        return []
    share = a["saved_ratings"] / a["uniform_ratings"] if a["uniform_ratings"] else 0.0
    return [f"adaptive allocation: {a['ratings']} valid ratings in {a['rounds']} round(s), "
            f"where uniform allocation takes {a['uniform_ratings']}: {a['saved_ratings']} "
            f"({share:.0%}) saved",
            f"  spent ${a['spent_usd']:.2f}, uniform about ${a['uniform_usd']:.2f} at the same "
            f"cost per valid rating: ${a['saved_usd']:.2f} saved",
            (f"  stopped because {a['stop']}; the full budget would have changed some verdict "
             f"with probability {a['p_change']:.2f}") if a["stop"]
            else "  collection had not stopped when the demo's rounds ran out"]


def _precision_recall(flagged: set[str], planted: set[str], worked: set[str]) -> dict[str, Any]:
    caught = len(flagged & planted)
    honest = worked - planted
    return {"flagged": len(flagged), "planted": len(planted), "caught": caught,
            "precision": caught / len(flagged) if flagged else None,
            "recall": caught / len(planted) if planted else None,
            "honest": len(honest), "honest_flagged": len(flagged & honest),
            "honest_share": len(flagged & honest) / len(honest) if honest else None}


def _fmt(share: float | None) -> str:
    return "-" if share is None else f"{share:.2f}"


@click.command("demo")
@click.argument("directory", required=False, default="demo-study", type=click.Path())
@click.option("--workers", type=int, default=36, show_default=True,
              help="Simulated workers per round (spammers among them).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=int, default=1024, show_default=True,
              help="Height of the demo images in pixels.")
@click.option("--port", type=int, default=8765, show_default=True,
              help="Port for the in-process service (a free one if taken).")
@click.option("--mix", default=None,
              help="Worker kinds and shares, as for `study simulate --mix`, e.g. "
                   "careful=0.7,satisficer=0.3.")
@click.option("--allocation", type=click.Choice(["uniform", "adaptive"]), default="uniform",
              show_default=True,
              help="adaptive: ratings only where the verdict is undecided; prints the saving.")
@click.option("--training", is_flag=True,
              help="Workers pass a qualification HIT with training first, and each HIT holds "
                   "an attention trap; prints who passed and whom the traps caught.")
@click.option("--method", type=click.Choice(NAMES), default=NAMES[0], show_default=True,
              help="The test method (design.method); pairwise: which of two outputs is closer.")
def demo_command(directory: str, workers: int, seed: int, size: int, port: int,
                 mix: str | None, allocation: str, training: bool, method: str) -> None:
    """Run a whole study end to end on demo data (default folder: ./demo-study)."""
    from study.simulate import parse_mix

    summary = run_demo(Path(directory), workers=workers, seed=seed, size=size, port=port,
                       mix=parse_mix(mix) if mix else None, allocation=allocation,
                       training=training, method=method)
    if not summary["ranking_matches"]:
        raise StudyError("the report's ranking differs from the planted one",
                         where=str(Path(directory) / "demo-summary.json"))
