"""Pieces of the end-to-end fault tests: child processes that are always reaped, a free port,
and a study's own marketplace opened with its own requester key."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

REPO = Path(__file__).resolve().parent.parent


def study_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), **extra)
    env.pop("STUDY_FAULT", None)
    return env


class Processes:
    """Child `study` processes of one test; whatever is still running at the end is killed."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, root: Path, *args: str, log: str, **env: str) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_dir / f"{log}.log", "w")
        try:
            proc = subprocess.Popen([sys.executable, "-m", "study", "--study", str(root), *args],
                                    cwd=root, env=study_env(**env), stdout=out,
                                    stderr=subprocess.STDOUT, text=True)
        finally:
            out.close()  # the child holds its own copy
        proc.log_path = self.log_dir / f"{log}.log"  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def run(self, root: Path, *args: str, log: str, timeout: float = 120) -> str:
        """Run to the end; the output, or an AssertionError that shows it."""
        proc = self.start(root, *args, log=log)
        rc = proc.wait(timeout=timeout)
        text = proc.log_path.read_text()  # type: ignore[attr-defined]
        assert rc == 0, f"`study {' '.join(args)}` exited {rc}:\n{text[-3000:]}"
        return text

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


@contextmanager
def processes(log_dir: Path) -> Iterator[Processes]:
    procs = Processes(log_dir)
    try:
        yield procs
    finally:
        procs.kill_all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if proc is not None and proc.poll() is not None:
            log = getattr(proc, "log_path", None)
            raise AssertionError(f"the service exited {proc.returncode}:\n"
                                 + (log.read_text()[-3000:] if log else ""))
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout} s")
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=30)


@contextmanager
def study_marketplace(study, tmp_path: Path):
    """The study's marketplace DB served in this process under the study's requester key (no
    study code in between), for checking what really exists there."""
    from study.marketplace.testing import running_marketplace

    keys = study.secrets()
    with running_marketplace(tmp_path, db_path=study.marketplace_db_path,
                             key_id=keys["aws_access_key_id"],
                             secret=keys["aws_secret_access_key"]) as mk:
        yield mk


def pages(client, operation: str, key: str, **params):
    """Every element of a paginated Requester API list."""
    token = None
    while True:
        kwargs = dict(params, MaxResults=100)
        if token:
            kwargs["NextToken"] = token
        page = getattr(client, operation)(**kwargs)
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token or not page.get(key):
            return
