"""A marketplace on a real HTTP server for tests, benchmarks and the simulated crowd.

    with running_marketplace(tmp_path) as mk:
        client = mk.client("sandbox")          # a real boto3 'mturk' client
        client.create_hit(...)
        requests.post(mk.base_url + "/worker/sandbox/login", data={"worker_id": "A1"})
"""

from __future__ import annotations

import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from study.marketplace.server import serve_in_thread


class ManualClock:
    """A clock tests move by hand: `clock.advance(3600)`."""

    def __init__(self, start: float | None = None):
        import time
        self.t = float(time.time() if start is None else start)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


_SESSION = None
_SESSION_LOCK = threading.Lock()


def _boto_session():
    """One boto3 session for every client: it loads botocore's model once, so a client costs
    milliseconds instead of most of a second."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            import boto3
            _SESSION = boto3.session.Session()
        return _SESSION


@dataclass
class RunningMarketplace:
    base_url: str
    key_id: str
    secret: str
    db_path: Path
    app: object
    clock: Callable[[], float] | None
    stop: Callable[[], None] = field(repr=False)

    @property
    def market(self):
        """The Market behind the app (its .throttle and .faults may be swapped at run time)."""
        return self.app.extensions["marketplace"]

    def endpoint(self, realm: str = "sandbox") -> str:
        return f"{self.base_url}/requester/{realm}"

    def worker_url(self, realm: str = "sandbox") -> str:
        return f"{self.base_url}/worker/{realm}"

    def client(self, realm: str = "sandbox", **config):
        """A boto3 MTurk client for this marketplace; keyword arguments go to botocore's
        Config (e.g. retries={"max_attempts": 10, "mode": "standard"})."""
        from botocore.config import Config
        session = _boto_session()
        with _SESSION_LOCK:  # creating clients from one session is not thread-safe
            return session.client(
                "mturk", endpoint_url=self.endpoint(realm), region_name="us-east-1",
                aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
                config=Config(**config) if config else None)


@contextmanager
def running_marketplace(tmp_path, *, db_path: str | Path | None = None, clock=None,
                        throttle=None, faults=None, live_balance: str | None = None,
                        key_id: str | None = None, secret: str | None = None,
                        port: int = 0, aws: dict | None = None, new_id=None
                        ) -> Iterator[RunningMarketplace]:
    """Start the marketplace on 127.0.0.1 (ephemeral port) with a fresh requester key;
    `db_path` defaults to <tmp_path>/marketplace.db (pass the same path to restart on it)."""
    from study.marketplace import create_app
    db = Path(db_path) if db_path is not None else Path(tmp_path) / "marketplace.db"
    key_id = key_id or "AKIA" + secrets.token_hex(8).upper()
    secret = secret or secrets.token_urlsafe(30)
    app = create_app(db, keys={key_id: secret}, clock=clock, throttle=throttle, faults=faults,
                     live_balance=live_balance, aws=aws, new_id=new_id)
    url, stop = serve_in_thread(app, "127.0.0.1", port)
    try:
        yield RunningMarketplace(url, key_id, secret, db, app, clock, stop)
    finally:
        stop()
        app.extensions["marketplace"].pool.close_all()


class WorkerClient:
    """A worker on the worker site over real HTTP (requests), as a browser would drive it."""

    def __init__(self, base_url: str, realm: str = "sandbox", session=None):
        import requests
        self.base_url = base_url.rstrip("/")
        self.realm = realm
        self.http = session or requests.Session()
        self.worker_id: str | None = None

    def _abs(self, path: str) -> str:
        return path if path.startswith("http") else self.base_url + path

    def login(self, worker_id: str, **profile) -> str:
        """Sandbox sign-in; profile: locale ("US", "US-CA"), hits_approved, percent_approved,
        masters. Returns the WorkerId the marketplace assigned."""
        data = {"worker_id": worker_id, **{k: str(v) for k, v in profile.items()}}
        r = self.http.post(self._abs("/worker/sandbox/login"), data=data)
        r.raise_for_status()
        self.worker_id = _find(r.text, r'id="worker-id">([^<]+)<')
        return self.worker_id

    def join(self, invite_path: str, participant: str | None = None) -> str:
        """Live sign-in through an invitation link."""
        url = self._abs(invite_path) + (f"?participant={participant}" if participant else "")
        r = self.http.get(url)
        r.raise_for_status()
        self.worker_id = _find(r.text, r'id="worker-id">([^<]+)<')
        return self.worker_id

    def groups(self) -> list[dict]:
        """The HIT groups listed for this worker: [{hit_type_id, href}]."""
        r = self.http.get(self._abs(f"/worker/{self.realm}/"))
        r.raise_for_status()
        import html
        import re
        return [{"hit_type_id": m.group(1), "href": html.unescape(m.group(2))}
                for m in re.finditer(r'<a class="hit-group[^"]*" data-hit-type-id="([^"]+)" '
                                     r'href="([^"]+)"', r.text)]

    def preview_group(self, hit_type_id: str):
        """Follow a group link to the preview of an available HIT; returns the response."""
        return self.http.get(self._abs(f"/worker/{self.realm}/groups/{hit_type_id}"))

    def preview(self, hit_id: str):
        return self.http.get(self._abs(f"/worker/{self.realm}/hits/{hit_id}"))

    @staticmethod
    def frame_src(page_html: str) -> str:
        import html
        return html.unescape(_find(page_html, r'<iframe id="question-frame" src="([^"]+)"'))

    def accept(self, hit_id: str) -> str:
        """Accept the HIT; returns the assignment id (raises for a refusal)."""
        r = self.http.post(self._abs(f"/worker/{self.realm}/hits/{hit_id}/accept"),
                           allow_redirects=False)
        if r.status_code != 303:
            raise RuntimeError(f"accept refused ({r.status_code}): {_message(r.text)}")
        return r.headers["Location"].rstrip("/").rsplit("/", 1)[1]

    def work_page(self, assignment_id: str):
        return self.http.get(self._abs(f"/worker/{self.realm}/assignments/{assignment_id}"))

    def return_(self, assignment_id: str):
        return self.http.post(
            self._abs(f"/worker/{self.realm}/assignments/{assignment_id}/return"),
            allow_redirects=False)

    def submit(self, assignment_id: str, fields) -> object:
        """POST the answer fields (a dict or a list of pairs) to externalSubmit."""
        items = list(fields.items()) if isinstance(fields, dict) else list(fields)
        return self.http.post(self._abs(f"/worker/{self.realm}/mturk/externalSubmit"),
                              data=[("assignmentId", assignment_id), *items])


def _find(text: str, pattern: str) -> str | None:
    import re
    m = re.search(pattern, text)
    return m.group(1) if m else None


def _message(text: str) -> str:
    import html
    return html.unescape(_find(text, r'<p id="message">([^<]*)<') or text[:200])


@contextmanager
def serve_process(db_path: str | Path, keys: dict[str, str], port: int = 0,
                  threads: int = 16, timeout_s: float = 60.0) -> Iterator[str]:
    """`study marketplace serve` in a child process on `db_path`; yields its base URL.

    Its output goes to <db_path>.serve.log (a pipe nobody reads would fill up and stall the
    server). The process is terminated on exit.
    """
    import os
    import subprocess
    import sys
    import time
    db_path = Path(db_path)
    log_path = db_path.with_name(db_path.name + ".serve.log")
    env = dict(os.environ, STUDY_MARKETPLACE_KEYS=",".join(f"{k}:{v}" for k, v in keys.items()))
    repo = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "study", "marketplace", "serve", "--port", str(port),
             "--db", str(db_path), "--threads", str(threads)],
            cwd=db_path.parent, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + timeout_s
        base = None
        while base is None:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the marketplace did not start: {log_path.read_text()[-2000:]}")
            for line in log_path.read_text().splitlines():
                if line.startswith("Requester API (sandbox):") and "Ctrl-C" in log_path.read_text():
                    base = line.split(": ", 1)[1].strip().rsplit("/requester/", 1)[0]
            time.sleep(0.05)
        yield base
    finally:
        stop(proc)


def stop(proc) -> None:
    """Stop a server process: asked first (it finishes what it was doing), killed after 10 s."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
