"""`study serve`: the study's service in the foreground, with a production WSGI server."""

from __future__ import annotations

import os
import signal
import socket
import sys

import click

from study.config import base_url_mismatch
from study.errors import StudyError
from study.marketplace.server import THREADS, allow_open_files, create_server, waitress_settings
from study.service import announce_service, serve_file
from study.studydir import Study, pass_study


TOKEN_FILE = ".dashboard-token"
def announce(study: Study, url: str, token: str, echo=click.echo,
             on_terminal: bool | None = None) -> None:
    """Where everything is. The dashboard token is a secret: it goes to a file only its owner
    can read, and onto the screen only when the screen is a terminal (never into a log)."""
    path = study.root / TOKEN_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    if on_terminal is None:
        on_terminal = sys.stdout.isatty()
    echo(f"Serving on {url}")
    echo(f"  Requester API (boto3 endpoint_url): sandbox {url}/requester/sandbox")
    echo(f"                                      live    {url}/requester/live")
    echo(f"  Worker site:                        sandbox {url}/worker/sandbox/")
    echo(f"                                      live    {url}/worker/live/")
    if on_terminal:
        echo(f"  Dashboard (open this link once):    {url}/dashboard/?token={token}")
    else:
        echo(f"  Dashboard:                          {url}/dashboard/?token=<the token in "
             f"{path}>")


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
@click.option("--threads", type=int, default=THREADS, show_default=True)
@pass_study
def serve_command(study: Study, host: str | None, port: int | None, threads: int) -> None:
    """Serve the marketplace, task pages, images and dashboard until interrupted."""
    from study.web import create_app

    host = host or study.settings.serve.host
    port = study.settings.serve.port if port is None else port
    hosting = study.settings.hosting
    mismatch = base_url_mismatch(hosting.base_url, port) if hosting.mode == "service" else None
    if mismatch:
        raise StudyError(mismatch, where="--port / study.toml hosting.base_url",
                         hint=f"set serve.port = {port} and a base_url on that port in "
                              "study.toml, or serve on serve.port")
    _check_port(host, port)
    app = create_app(study)
    url = f"http://{host}:{port}"
    path = serve_file(study)
    announce_service(study, url)
    announce(study, url, app.config["DASHBOARD_TOKEN"])
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    allow_open_files()
    try:
        create_server(app, host=host, port=port,
                      **waitress_settings(threads, study.settings.serve.behind_tls_proxy)).run()
    except KeyboardInterrupt:
        pass
    finally:
        path.unlink(missing_ok=True)
        click.echo("stopped")
