"""`study marketplace ...`: serve the bundled marketplace, invite live workers, add funds,
register HIT layouts."""

from __future__ import annotations

from pathlib import Path

import click

from study.errors import StudyError
from study.marketplace.server import THREADS, allow_open_files, create_server, waitress_settings


def _study_or_none(ctx: click.Context):
    from study.studydir import find_study_root, Study
    root_obj = ctx.find_root().obj
    study_dir = root_obj.get("study_dir") if isinstance(root_obj, dict) else None
    if study_dir:
        return Study.open(Path(study_dir))
    root = find_study_root(Path.cwd())
    return Study.open(root) if root else None


def _db_path(ctx: click.Context, db: str | None) -> Path:
    if db:
        return Path(db)
    study = _study_or_none(ctx)
    return study.marketplace_db_path if study else Path("marketplace.db")


def _keys(ctx: click.Context) -> dict[str, str]:
    from study.marketplace import keys_from_env
    keys: dict[str, str] = {}
    study = _study_or_none(ctx)
    if study is not None:
        s = study.secrets()
        if s.get("aws_access_key_id") and s.get("aws_secret_access_key"):
            keys[s["aws_access_key_id"]] = s["aws_secret_access_key"]
    keys.update(keys_from_env())
    return keys


@click.group("marketplace")
def marketplace_group() -> None:
    """The bundled MTurk-compatible marketplace (Requester API and worker site)."""


@marketplace_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8766, show_default=True, type=int)
@click.option("--db", "db", default=None, type=click.Path(dir_okay=False),
              help="Marketplace SQLite file (default: <study>/marketplace.db, or ./marketplace.db "
                   "outside a study).")
@click.option("--threads", default=THREADS, show_default=True, type=int)
@click.pass_context
def serve_command(ctx: click.Context, host: str, port: int, db: str | None, threads: int) -> None:
    """Serve the Requester API (boto3 endpoint_url) and the worker site."""
    from study.marketplace import KEYS_ENV, create_app

    keys = _keys(ctx)
    if not keys:
        raise StudyError("no requester keys are configured for the marketplace",
                         where=KEYS_ENV,
                         hint=f"run it inside a study folder (its .secrets.toml holds a key) or "
                              f"set {KEYS_ENV}=KEY_ID:SECRET")
    db_path = _db_path(ctx, db)
    app = create_app(db_path, keys=keys)
    try:
        allow_open_files()
        server = create_server(app, host=host, port=port, **waitress_settings(threads))
    except OSError as exc:
        raise StudyError(f"cannot listen on {host}:{port}: {exc.strerror}",
                         hint="another program uses that port: pass --port N") from None
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{server.effective_port}"
    click.echo(f"marketplace database: {db_path}")
    click.echo(f"requester keys: {', '.join(sorted(keys))}")
    for realm in ("sandbox", "live"):
        click.echo(f"Requester API ({realm}): {base}/requester/{realm}")
    click.echo(f"worker site (sandbox): {base}/worker/sandbox/")
    click.echo(f"worker site (live):    {base}/worker/live/  (workers join by invitation; "
               f"`study marketplace invite`)")
    click.echo("Ctrl-C to stop.")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


@marketplace_group.command("invite")
@click.option("--label", default="invite", show_default=True, help="A note for your records.")
@click.option("--base-url", default=None,
              help="Where the worker site is reachable (default: the study's hosting.base_url, "
                   "else http://127.0.0.1:8766).")
@click.option("--completion-code", default=None, help="Code shown after each submission "
              "(default: random).")
@click.option("--completion-url", default=None, help="Where a participant goes after each "
              "submission, with the code in place of {code} or appended as cc=CODE (e.g. "
              "https://app.prolific.com/submissions/complete).")
@click.option("--shared-link", "shared_link", default=None,
              type=click.Choice(["platform-id", "closed", "open"]),
              help="What the shared link lets in: platform-id = only visits that carry a "
                   "recruiting platform's participant id (the default); closed = nobody, only "
                   "personal links (the default with --personal); open = anyone, each fresh "
                   "browser a new participant.")
@click.option("--personal", "personal", default=0, type=click.IntRange(0, 100_000),
              metavar="N", help="Also make N personal links, one participant each.")
@click.option("--to", "to", default=None, metavar="SHARED_LINK",
              help="Add the --personal links to the invitation with this shared link instead "
                   "of making a new one.")
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False),
              help="Where the personal links go: a new CSV file only you can read "
                   "(default: personal-links-<time>.csv here).")
@click.option("--db", "db", default=None, type=click.Path(dir_okay=False))
@click.pass_context
def invite_command(ctx, label: str, base_url: str, completion_code: str | None,
                   completion_url: str | None, shared_link: str | None, personal: int,
                   to: str | None, out: str | None, db: str | None) -> None:
    """Create an invitation for live workers: prints its shared link (a platform appends
    ?PROLIFIC_PID=ID) and writes any personal links to a file, never to the terminal."""
    import time
    from study.marketplace.invites import (create_invite, create_personal_links,
                                           write_personal_links)
    if base_url is None:
        study = _study_or_none(ctx)
        base_url = study.settings.hosting.base_url if study else "http://127.0.0.1:8766"
    if to is not None and (personal == 0 or shared_link or completion_code or completion_url):
        raise StudyError("--to adds personal links to an invitation that exists",
                         where="--to", hint="give --personal N and none of --shared-link, "
                                            "--completion-code, --completion-url")
    out_path = Path(out or time.strftime("personal-links-%Y%m%d-%H%M%S.csv"))
    # Checked before anything is made: links that cannot be written would be lost.
    if personal and out_path.exists():
        raise StudyError(f"{out_path} exists; personal links are written once, to a new file",
                         where="--out", hint="choose another file name")
    if personal and not out_path.parent.is_dir():
        raise StudyError(f"the folder of {out_path} does not exist", where="--out",
                         hint="give a file in a folder that exists")
    db_path = _db_path(ctx, db)
    if to is None:
        policy = shared_link or ("closed" if personal else "platform-id")
        try:
            path = create_invite(db_path, label, completion_code=completion_code,
                                 completion_url=completion_url, shared_link=policy)
        except ValueError as exc:
            raise StudyError(str(exc), where="--completion-url", hint="give an http(s) URL")
        click.echo(base_url.rstrip("/") + path)
        click.echo(_SHARED_LINK_NOTES[policy], err=True)
    else:
        path = to
    if personal:
        try:
            links = create_personal_links(db_path, path, personal)
        except LookupError as exc:
            raise StudyError(str(exc), where="--to", hint="give the shared link that "
                                                          "`study marketplace invite` printed")
        write_personal_links(out_path, base_url, links)
        click.echo(f"{len(links)} personal links written to {out_path} (readable by you only; "
                   f"each opens one participant in any browser)", err=True)


_SHARED_LINK_NOTES = {
    "platform-id": "The shared link lets in only visits with a platform's participant id "
                   "(?PROLIFIC_PID=ID), one participant per id.",
    "closed": "The shared link lets nobody in: participants join only by personal links "
              "(give it to --to to add more).",
    "open": "The shared link lets anyone in: each fresh browser is a new participant.",
}


@marketplace_group.command("deposit")
@click.argument("amount")
@click.option("--realm", type=click.Choice(["sandbox", "live"]), default="live",
              show_default=True)
@click.option("--requester", default=None, metavar="KEY_ID",
              help="The requester key to credit (needed when the realm has several).")
@click.option("--db", "db", default=None, type=click.Path(dir_okay=False))
@click.pass_context
def deposit_command(ctx, amount: str, realm: str, requester: str | None, db: str | None) -> None:
    """Add AMOUNT dollars to a requester's balance (the live realm starts at 0.00)."""
    from study.marketplace.money import deposit
    try:
        balance = deposit(_db_path(ctx, db), realm, amount, requester)
    except ValueError:
        raise StudyError(f"{amount!r} is not a dollar amount", where="AMOUNT",
                         hint="write it like 250 or 250.00")
    except LookupError as exc:
        raise StudyError(str(exc), where="--requester", hint="pass --requester KEY_ID")
    click.echo(f"{realm} balance: ${balance}")


@marketplace_group.group("layout")
def layout_group() -> None:
    """HIT layouts: HTML pages with ${name} parameters, used by CreateHIT's HITLayoutId."""


@layout_group.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--db", "db", default=None, type=click.Path(dir_okay=False))
@click.pass_context
def layout_add_command(ctx, name: str, file: str, db: str | None) -> None:
    """Register the HTML in FILE as a layout called NAME; prints its HITLayoutId."""
    from study.marketplace.layouts import add_layout
    try:
        layout_id = add_layout(_db_path(ctx, db), name, Path(file).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StudyError(f"the layout {file} cannot be used: {exc}", where=file,
                         hint="give an HTML file in UTF-8 under 64 KB")
    click.echo(layout_id)
