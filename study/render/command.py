"""`study render`: the click command. It reads the [render] settings once, hands them as plain
values to the run, and prints the run's outcome and the Track 1 table."""

from __future__ import annotations

import json

import click

from study.render.output import format_table, track1_table
from study.render.runner import RenderSettings, render_study
from study.render.schedule import parse_shard
from study.studydir import Study, pass_study


def render_settings(render, device: str | None = None,
                    timeout: float | None = None) -> RenderSettings:
    """The study's [render] settings, with the command line's --device and --timeout taking
    precedence."""
    return RenderSettings(
        device=device or render.device,
        timeout_s=float(timeout if timeout is not None else render.timeout_s),
        border_crop=render.border_crop, fp16=render.fp16, tile=render.tile,
        tile_overlap=render.tile_overlap)


@click.command("render")
@click.option("--methods", "methods_opt", default=None, metavar="A,B",
              help="Comma-separated method names (default: every method in study.toml).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Where tensor methods run (default: render.device).")
@click.option("--shard", "shard_opt", default=None, metavar="K/N",
              help="Do the K-th of N equal shares of the work (default: torchrun's rank, if any).")
@click.option("--force", is_flag=True, help="Redo outputs that are already done.")
@click.option("--timeout", type=float, default=None, metavar="S",
              help="Seconds a method may take per image (default: render.timeout_s).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr (default: when stderr is a terminal).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the outcome and the Track 1 table as JSON.")
@pass_study
def render_command(study: Study, methods_opt: str | None,
                   device: str | None, shard_opt: str | None, force: bool,
                   timeout: float | None, progress: bool | None, as_json: bool) -> None:
    """Run every method on every selected image; PSNR, SSIM and runtimes.

    Outputs go to renders/<method>/<image_id>.png. Done outputs are skipped unless --force;
    failed ones are retried. Exits with status 1 when any output failed."""
    methods = [m.strip() for m in methods_opt.split(",") if m.strip()] if methods_opt else None
    shard = parse_shard(shard_opt) if shard_opt else None
    settings = render_settings(study.settings.render, device=device, timeout=timeout)
    result = render_study(study, settings, methods=methods, shard=shard, force=force,
                          progress=progress)
    rows = track1_table(study)
    if methods:
        rows = [r for r in rows if r["method"] in methods]
    if as_json:
        click.echo(json.dumps({"rendered": result.rendered, "skipped": result.skipped,
                               "failed": result.failed, "device": result.device,
                               "failures": [{"method": m, "image_id": i, "error": e}
                                            for m, i, e in result.failures],
                               "track1": rows}, indent=2, default=str))
        if result.failed:
            click.get_current_context().exit(1)
        return
    click.echo(f"rendered {result.rendered}, skipped {result.skipped} (done), "
               f"failed {result.failed} on {result.device}")
    for method, image_id, error in result.failures:
        click.echo(f"  failed: {method} / {image_id}: {error}")
    click.echo("")
    click.echo(f"Track 1 (fidelity against the reference, border crop {settings.border_crop} px):")
    click.echo(format_table(rows))
    if result.failed:
        click.echo(f"\n{result.failed} output(s) failed; fix the method or run `study render` "
                   "again to retry them.")
        click.get_current_context().exit(1)
