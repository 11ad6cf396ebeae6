"""`study simulate`: a simulated crowd of workers rating a study's HITs over real HTTP.

Library entry points: `simulate_crowd` (run a crowd against a worker site), `true_score` (an
item's true score from its two images) and `planted_scores` (each method's score from an ideal
crowd, to check a study's ranking against)."""

from __future__ import annotations

import json

import click

from study.errors import StudyError
from study.simulate.crowd import hit_key, simulate_crowd
from study.simulate.results import SimulationResult, Submission, WorkerOutcome
from study.simulate.schedule import SimulatedClock
from study.simulate.scoring import (item_true_scores, perceptual_distance, planted_ranking,
                                    planted_scores, true_score)
from study.simulate.workers import DEFAULT_MIX, KINDS, LOW_QUALITY, WorkerModel, build_crowd

__all__ = [
    "DEFAULT_MIX", "KINDS", "LOW_QUALITY", "SimulatedClock", "SimulationResult", "Submission",
    "WorkerModel", "WorkerOutcome", "build_crowd", "hit_key", "item_true_scores",
    "parse_mix", "perceptual_distance", "planted_ranking", "planted_scores", "reference_paths",
    "simulate_command",
    "simulate_crowd", "true_score", "worker_site_url",
]


def worker_site_url(base_url: str, realm: str = "sandbox") -> str:
    """The worker site of the marketplace at `base_url` (given the worker site itself, that)."""
    base = base_url.rstrip("/")
    for r in ("sandbox", "live"):
        if base.endswith(f"/worker/{r}"):
            base = base[: -len(f"/worker/{r}")]
    return f"{base}/worker/{realm}"


def _check_published(study, realm: str) -> None:
    conn = study.connect()
    try:
        published = conn.execute("SELECT COUNT(*) FROM hits WHERE realm = ? AND "
                                 "state = 'created'", (realm,)).fetchone()[0]
    finally:
        conn.close()
    if not published:
        raise StudyError(f"nothing is published in the {realm} realm, so there is nothing to "
                         "rate", hint=f"run `study publish --{realm}` first")


def reference_paths(study) -> list[str]:
    """The study's reference photos: what simulated workers compare a photo shown alone with."""
    conn = study.connect()
    try:
        return [r[0] for r in conn.execute("SELECT reference_path FROM images ORDER BY position")]
    finally:
        conn.close()


def parse_mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, share = part.partition("=")
        try:
            if not sep:
                raise ValueError
            mix[kind.strip()] = float(share)
        except ValueError:
            raise StudyError(f"bad --mix entry {part!r}", where="--mix",
                             hint="write KIND=SHARE pairs, e.g. careful=0.7,spammer=0.3; kinds: "
                                  + ", ".join(KINDS)) from None
    return mix


@click.command("simulate")
@click.option("--workers", "n_workers", type=int, default=30, show_default=True,
              help="Number of simulated workers.")
@click.option("--seed", type=int, default=None,
              help="Random seed (default: the study's seed, or 0 with --url).")
@click.option("--realm", type=click.Choice(["sandbox", "live"]), default="sandbox",
              show_default=True, help="Marketplace realm (simulated workers only work in sandbox).")
@click.option("--url", "base_url", default=None,
              help="Base URL of any running marketplace (default: this study's `study serve`).")
@click.option("--mix", default=None,
              help="Worker kinds and shares, e.g. careful=0.6,sloppy=0.15,spammer=0.1,"
                   "straightliner=0.05,returner=0.05,abandoner=0.05; also satisficer (plausible "
                   "ratings from a coarse impression at a normal pace).")
@click.option("--concurrency", type=int, default=8, show_default=True,
              help="Workers in session at once (in simulated time).")
@click.option("--max-hits-per-worker", type=int, default=None,
              help="HITs one worker takes at most (default: the study's hit.max_hits_per_worker).")
@click.option("--deadline", "deadline_s", type=float, default=900.0, show_default=True,
              help="Stop every session after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def simulate_command(ctx: click.Context, n_workers: int, seed: int | None, realm: str,
                     base_url: str | None, mix: str | None, concurrency: int,
                     max_hits_per_worker: int | None, deadline_s: float, as_json: bool) -> None:
    """Run a simulated crowd against the worker site: careful and sloppy raters, satisficers,
    spammers, straight-liners, and workers who return or abandon HITs. Deterministic with --seed."""
    if realm != "sandbox":
        raise StudyError("simulated workers only work in the sandbox realm", where="--realm",
                         hint="live HITs are for real people; use --realm sandbox")
    instructions = None
    references: list[str] = []
    if base_url is None:
        from study.service import study_service_url
        from study.simulate.instructions import trap_instructions
        from study.studydir import open_study

        root = ctx.find_root()
        study_dir = root.obj.get("study_dir") if isinstance(root.obj, dict) else None
        study = open_study(study_dir)
        base_url = study_service_url(study)
        references = reference_paths(study)
        _check_published(study, realm)
        instructions = trap_instructions(study)
        if seed is None:
            seed = study.settings.study.seed
        if max_hits_per_worker is None:
            max_hits_per_worker = study.settings.hit.max_hits_per_worker or None
    result = simulate_crowd(worker_site_url(base_url, realm), workers=n_workers,
                            seed=0 if seed is None else seed,
                            mix=parse_mix(mix) if mix else None, concurrency=concurrency,
                            max_hits_per_worker=max_hits_per_worker,
                            progress=not as_json, deadline_s=deadline_s,
                            instructions=instructions, references=references)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(result.table())
    click.echo(f"{result.requests} requests in {result.elapsed_s:.1f} s"
               + ("; stopped at the deadline" if result.deadline_reached else ""))
    if result.low_quality_workers:
        click.echo("planted low-quality workers (satisficers, spammers, straight-liners): "
                   + ", ".join(result.low_quality_workers))
    errors = [(w.worker_id, e) for w in result.workers for e in w.errors]
    for wid, e in errors[:10]:
        click.echo(f"  {wid}: {e}", err=True)
