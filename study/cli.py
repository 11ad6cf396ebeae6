"""The `study` command. Each subcommand is a thin call into the module that does the work;
modules load lazily so `study --help` does not import torch."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from study import __version__
from study.errors import StudyError

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module:attribute, one-line help shown by `study --help`)
    "init": ("study.cli:init_command", "Create a study folder from a dataset."),
    "dataset": ("study.dataset:dataset_group", "Check a dataset folder or manifest."),
    "status": ("study.status:status_command", "Show what each stage has done and what is next."),
    "demo-data": ("study.render.demodata:demo_data_command",
                  "Build the synthetic EBB!-style demo dataset."),
    "render": ("study.render.command:render_command",
               "Run every method on every image; PSNR, SSIM and runtimes."),
    "publish": ("study.crowd.commands:publish_command",
                "Publish the rating HITs (sandbox by default)."),
    "collect": ("study.crowd.commands:collect_command",
                "Fetch assignments, check quality, pay once, top up."),
    "report": ("study.report:report_command", "Write the MOS ranking report."),
    "serve": ("study.web.commands:serve_command",
              "Serve the marketplace, task pages, images and dashboard."),
    "marketplace": ("study.marketplace.commands:marketplace_group",
                    "Run the bundled MTurk-compatible marketplace."),
    "simulate": ("study.simulate:simulate_command", "Run a simulated crowd of workers."),
    "demo": ("study.demo:demo_command", "Run a whole study end to end on demo data."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, _ = COMMANDS[name]
        module_name, attr = target.split(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    def invoke(self, ctx: click.Context):
        # User mistakes become a message and exit status 2, never a traceback; the same
        # under CliRunner in tests as in the console script.
        try:
            return super().invoke(ctx)
        except StudyError as exc:
            report_error(exc)
            ctx.exit(2)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--study", "study_dir", type=click.Path(file_okay=False), default=None,
              help="Study folder (default: the one containing the current directory).")
@click.version_option(__version__, prog_name="study")
@click.pass_context
def cli(ctx: click.Context, study_dir: str | None) -> None:
    """Run a perceptual (MOS) user study of image-to-image methods end to end."""
    ctx.ensure_object(dict)
    ctx.obj["study_dir"] = study_dir


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--dataset", "dataset_path", required=True, type=click.Path(),
              help="EBB!-style folder, AIM 2020 release, or manifest CSV.")
@click.option("--images", "n_images", type=int, default=None,
              help="Select N images at random (seeded); default: up to 10.")
@click.option("--image-ids", default=None,
              help="Comma-separated image ids to use instead of a random selection.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the selection.")
@click.option("--split", default=None, help="Sub-folder of the release (default: detected).")
@click.option("--name", default=None, help="Study name (default: the folder name).")
@click.option("--json", "as_json", is_flag=True, help="Print the new study as JSON.")
def init_command(directory: str, dataset_path: str, n_images: int | None,
                 image_ids: str | None, seed: int, split: str | None, name: str | None,
                 as_json: bool) -> None:
    """Create a study folder DIRECTORY from a dataset."""
    from study.create import create_study

    if n_images is not None and image_ids:
        raise StudyError("--images and --image-ids cannot be used together",
                         hint="give either a count or a list of ids")
    ids = [s.strip() for s in image_ids.split(",") if s.strip()] if image_ids else None
    study = create_study(Path(directory), Path(dataset_path), n_images=n_images,
                         image_ids=ids, seed=seed, split=split, name=name,
                         echo=lambda msg: click.echo(msg, err=True))
    if as_json:
        import json
        conn = study.connect()
        try:
            images = [r[0] for r in conn.execute("SELECT image_id FROM images ORDER BY position")]
        finally:
            conn.close()
        click.echo(json.dumps({"name": study.name, "root": str(study.root), "images": images,
                               "port": study.settings.serve.port}, indent=2))
        return
    click.echo(f"Created study {study.name!r} in {study.root}")
    click.echo("Next: cd into it and run `study render`.")


def report_error(exc: StudyError) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + str(exc), err=True)


def main(argv: list[str] | None = None) -> None:
    try:
        rv = cli.main(args=argv, prog_name="study", standalone_mode=False)
        if isinstance(rv, int) and not isinstance(rv, bool):
            sys.exit(rv)
    except StudyError as exc:
        report_error(exc)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
