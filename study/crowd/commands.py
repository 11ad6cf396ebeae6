"""`study publish` and `study collect`."""

from __future__ import annotations

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


@click.command("publish")
@click.option("--sandbox", "realm", flag_value="sandbox", default=True,
              help="Publish in the sandbox realm (the default; no real money).")
@click.option("--live", "realm", flag_value="live", help="Publish for real (needs --yes).")
@click.option("--dry-run", is_flag=True, help="Show the plan and its cost; change nothing.")
@click.option("--yes", is_flag=True, help="Confirm a live publication.")
@pass_study
def publish_command(study: Study, realm: str, dry_run: bool, yes: bool) -> None:
    """Publish the rating HITs (sandbox by default)."""
    from study.crowd.publish import publish

    with marketplace_errors(study):
        publish(study, realm, dry_run=dry_run, yes=yes, echo=click.echo)


@click.command("collect")
@click.option("--approve/--no-approve", default=True, show_default=True,
              help="Send approvals, rejections and bonuses (else only fetch, check and top up).")
@click.option("--sandbox", "realm", flag_value="sandbox", help="Only the sandbox realm.")
@click.option("--live", "realm", flag_value="live", help="Only the live realm.")
@pass_study
def collect_command(study: Study, approve: bool, realm: str | None) -> None:
    """Fetch assignments, check quality, pay once, top up."""
    from study.crowd.collect import collect

    with marketplace_errors(study):
        collect(study, approve=approve, realm=realm, echo=click.echo)
