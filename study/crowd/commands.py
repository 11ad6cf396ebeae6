"""`study publish` and `study collect`."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterator

import click

from study.errors import StudyError
from study.studydir import Study, pass_study


@contextmanager
def marketplace_errors(study: Study) -> Iterator[None]:
    """What the marketplace refused, as a message: the journal makes a re-run safe."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from study.crowd.client import error_code, error_message

    rerun = "fix the cause and run the command again: nothing is done twice"
    try:
        yield
    except ClientError as exc:
        op = getattr(exc, "operation_name", "a call")
        code = error_code(exc)
        turk = str(exc.response.get("TurkErrorCode", ""))
        funds = "InsufficientFunds" in turk or "insufficient funds" in error_message(exc).lower()
        hint = ("add funds to the requester account, then " + rerun) if funds else rerun
        raise StudyError(f"the marketplace refused {op}: {error_message(exc)} ({code})",
                         where="study.toml [marketplace]", hint=hint) from None
    except NoCredentialsError:
        raise StudyError("no AWS credentials for the configured marketplace endpoint",
                         where="study.toml marketplace.endpoint",
                         hint="set marketplace.aws_profile or the AWS_* environment "
                              "variables") from None
    except BotoCoreError as exc:
        raise StudyError(f"the marketplace cannot be reached: {exc}",
                         where="study.toml marketplace.endpoint", hint=rerun) from None


def chosen_realm(sandbox: bool, live: bool) -> str | None:
    """The realm named by --sandbox / --live; naming both is a mistake, not a choice."""
    if sandbox and live:
        raise StudyError("--sandbox and --live cannot be used together",
                         where="--sandbox / --live", hint="name one realm")
    return "live" if live else "sandbox" if sandbox else None


def _quiet_unless(show: bool):
    return click.echo if show else (lambda _msg: None)


@click.command("publish")
@click.option("--sandbox", is_flag=True,
              help="Publish in the sandbox realm (the default; no real money).")
@click.option("--live", is_flag=True, help="Publish for real (needs --yes).")
@click.option("--dry-run", is_flag=True, help="Show the plan and its cost; change nothing.")
@click.option("--yes", is_flag=True, help="Confirm a live publication.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--skip-preflight", is_flag=True,
              help="Do not load the images through hosting.base_url first (for a base URL "
                   "that workers reach but this machine cannot).")
@pass_study
def publish_command(study: Study, sandbox: bool, live: bool, dry_run: bool, yes: bool,
                    as_json: bool, skip_preflight: bool) -> None:
    """Publish the rating HITs (sandbox by default)."""
    from study.crowd.publish import publish

    realm = chosen_realm(sandbox, live) or "sandbox"
    with marketplace_errors(study):
        plan = publish(study, realm, dry_run=dry_run, yes=yes, echo=_quiet_unless(not as_json),
                       preflight=not skip_preflight)
    if as_json:
        click.echo(json.dumps(plan.to_dict(), indent=2))


@click.command("collect")
@click.option("--approve/--no-approve", default=True, show_default=True,
              help="Send approvals, rejections and bonuses (else only fetch, check and top up).")
@click.option("--sandbox", is_flag=True, help="Only the sandbox realm.")
@click.option("--live", is_flag=True, help="Only the live realm.")
@click.option("--json", "as_json", is_flag=True, help="Print what was collected as JSON.")
@pass_study
def collect_command(study: Study, approve: bool, sandbox: bool, live: bool,
                    as_json: bool) -> None:
    """Fetch assignments, check quality, pay once, top up."""
    from study.crowd.collect import collect

    realm = chosen_realm(sandbox, live)
    with marketplace_errors(study):
        summaries = collect(study, approve=approve, realm=realm,
                            echo=_quiet_unless(not as_json))
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in summaries], indent=2))
