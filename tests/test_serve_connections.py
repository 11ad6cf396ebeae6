"""`study serve` under many keep-alive connections: workers keep theirs open between pages, and
a new worker signing in must still be answered at once, not after a connection times out."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from study.studydir import Study
from study.web import create_app
from study.marketplace.server import (CONNECTIONS, allow_open_files, create_server,
                                      waitress_settings)

IDLE_CONNECTIONS = 1100  # past waitress's default of 100, and past 1,000


def _served(study_dir, **settings):
    """The study's app on waitress with `settings` (as `study serve` runs it), in a thread;
    returns (url, stop)."""
    app = create_app(Study.open(study_dir), dashboard_token="t0ken")
    server = create_server(app, host="127.0.0.1", port=0, **settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def stop() -> None:
        # waitress's loop runs while its map holds a channel; closing them all (in the loop's
        # own thread, through its trigger) ends it.
        server.trigger.pull_trigger(
            lambda: [channel.close() for channel in list(server._map.values())])
        server.task_dispatcher.shutdown(timeout=5)
        thread.join(timeout=5)

    return f"http://127.0.0.1:{server.effective_port}", stop


def _healthz(s: socket.socket) -> bytes:
    """One keep-alive request on `s`, its whole answer read (head and body)."""
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
    seen = b""
    while b"\r\n\r\n" not in seen:
        chunk = s.recv(65536)
        assert chunk, "the server closed a keep-alive connection"
        seen += chunk
    head, _, body = seen.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += s.recv(65536)
    return head


def _keep_alive(port: int) -> socket.socket:
    """A connection that made one request, read its answer, and stays open, idle."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = _healthz(s)
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    return s


def test_a_new_request_is_answered_past_a_thousand_idle_keep_alive_connections(study_dir):
    allow_open_files()  # both ends of every connection are in this process
    url, stop = _served(study_dir, **waitress_settings())
    port = int(url.rsplit(":", 1)[1])
    idle: list[socket.socket] = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            idle.append(_keep_alive(port))
        t = time.perf_counter()
        fresh = requests.get(url + "/worker/sandbox/", timeout=5)
        assert fresh.status_code == 200
        assert time.perf_counter() - t < 3
        # The idle connections are still usable: keep-alive was not bought by dropping them.
        assert _healthz(idle[0]).startswith(b"HTTP/1.1 200")
    finally:
        for s in idle:
            s.close()
        stop()


def test_the_settings_are_chosen_not_defaults():
    settings = waitress_settings()
    assert settings["connection_limit"] > 1000  # a thousand workers, a connection or more each
    assert settings["channel_timeout"] <= 30
    assert settings["max_request_body_size"] <= 16 << 20
    assert settings["threads"] >= 8 and settings["backlog"] >= 1024
    assert settings["asyncore_use_poll"]  # select() fails past file descriptor 1023
    assert waitress_settings(behind_tls_proxy=True)["clear_untrusted_proxy_headers"] is False


def test_the_open_file_limit_is_raised_for_the_connection_limit():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and hard < 1100:
            pytest.skip("the hard limit leaves nothing to raise")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        allow_open_files()
        raised = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        wanted = CONNECTIONS + 256
        assert raised == (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
