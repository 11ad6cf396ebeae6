"""Where a study's service (`study serve`) is, and whether it is this study's.

`.serve.json` in the study folder names the running service (its URL, process and study). Every
command that needs the service finds it here, and checks over HTTP that the service at the URL
belongs to this study: two studies on one machine must never reach each other's marketplace or
images."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from study.errors import StudyError

SERVE_FILE = ".serve.json"
# An unreachable service fails fast: a local service answers in milliseconds.
PROBE_TIMEOUT_S = 3.0


def serve_file(study) -> Path:
    return study.root / SERVE_FILE


def service_id(study_id: str) -> str:
    """What the service tells the world about which study it serves (the study id itself keys
    the HIT names, so it is not shown)."""
    return hashlib.sha256(f"service:{study_id}".encode()).hexdigest()[:16]


def announce_service(study, url: str, pid: int | None = None) -> None:
    """Write .serve.json for a service of this study now listening at `url`."""
    path = serve_file(study)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"url": url.rstrip("/"), "pid": os.getpid() if pid is None else pid,
                   "service_id": service_id(study.study_id)}, fh)


def running_service_url(study) -> str | None:
    """The URL of a running service of this study, if one is announced."""
    try:
        info = json.loads(serve_file(study).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if info.get("service_id") != service_id(study.study_id):
        return None
    return str(info["url"]).rstrip("/")


def configured_service_url(study) -> str:
    """Where `study serve` listens for this study according to its settings."""
    host = study.settings.serve.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{study.settings.serve.port}"


def probe(url: str) -> dict | None:
    """The service's /healthz answer at `url`, or None when nothing answers there."""
    import requests

    try:
        resp = requests.get(f"{url.rstrip('/')}/healthz", timeout=PROBE_TIMEOUT_S)
        return resp.json() if resp.ok else {}
    except (requests.RequestException, ValueError):
        return None


def check_service(study, url: str) -> str:
    """`url` when this study's service answers there; a StudyError naming the URL otherwise."""
    info = probe(url)
    if info is None:
        raise StudyError(f"no service answers at {url}", where=url,
                         hint="start this study's service with `study serve` (in the study "
                              "folder) and run the command again")
    if info.get("service_id") != service_id(study.study_id):
        raise StudyError(f"the service at {url} belongs to another study", where=url,
                         hint="each study has its own port (serve.port in study.toml): start "
                              "this study's `study serve`, or stop the other one")
    return url.rstrip("/")


def study_service_url(study) -> str:
    """This study's running service: the announced one, else the configured address, checked."""
    return check_service(study, running_service_url(study) or configured_service_url(study))


# Ports handed to new studies: above the common development ports, below the ephemeral range.
PORT_RANGE = (20000, 29999)


def free_port(preferred: int | None = None) -> int:
    """A port nothing listens on now: `preferred` if free, else one from PORT_RANGE."""
    import random
    import socket

    candidates = [preferred] if preferred else []
    candidates += random.SystemRandom().sample(range(*PORT_RANGE), 50)
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise StudyError("no free port on 127.0.0.1", hint="stop some services and try again")
