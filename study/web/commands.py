"""`study serve`: the study's service in the foreground, with a production WSGI server."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import click

from study.errors import StudyError
from study.studydir import Study, pass_study

SERVE_FILE = ".serve.json"


def serve_file(study: Study) -> Path:
    return study.root / SERVE_FILE


def running_service_url(study: Study) -> str | None:
    """The URL of a `study serve` running for this study, if one is."""
    path = serve_file(study)
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(info["url"]).rstrip("/")


def announce(url: str, token: str, echo=click.echo) -> None:
    echo(f"Serving on {url}")
    echo(f"  Requester API (boto3 endpoint_url): sandbox {url}/requester/sandbox")
    echo(f"                                      live    {url}/requester/live")
    echo(f"  Worker site:                        sandbox {url}/worker/sandbox/")
    echo(f"                                      live    {url}/worker/live/")
    echo(f"  Dashboard (open this link once):    {url}/dashboard/?token={token}")


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        # Like the server itself, tolerate connections of a previous run still in TIME_WAIT.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise StudyError(f"cannot listen on {host}:{port}: {exc.strerror}",
                             hint="another program uses that port: pass --port N") from None


@click.command("serve")
@click.option("--host", default=None, help="Address to listen on (default: serve.host).")
@click.option("--port", type=int, default=None, help="Port (default: serve.port).")
@click.option("--threads", type=int, default=8, show_default=True)
@pass_study
def serve_command(study: Study, host: str | None, port: int | None, threads: int) -> None:
    """Serve the marketplace, task pages, images and dashboard until interrupted."""
    import waitress

    from study.web import create_app

    host = host or study.config["serve"]["host"]
    port = study.config["serve"]["port"] if port is None else port
    _check_port(host, port)
    app = create_app(study)
    url = f"http://{host}:{port}"
    path = serve_file(study)
    path.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    announce(url, app.config["DASHBOARD_TOKEN"])
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        waitress.serve(app, host=host, port=port, threads=threads, ident="study",
                       _quiet=True)
    except KeyboardInterrupt:
        pass
    finally:
        path.unlink(missing_ok=True)
        click.echo("stopped")
