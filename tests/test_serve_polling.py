"""The event loop `study serve` runs waitress with (study/marketplace/polling.py) asks only the
connections that can have changed: an idle keep-alive connection must still be read when its
client speaks, timed out when it stays silent, and every way HTTP/1.1 uses a connection must
work as under waitress's own loop."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from flask import Flask, Response, request

from study.marketplace import polling
from study.marketplace.server import create_server, waitress_settings

pytestmark = pytest.mark.skipif(not hasattr(__import__("select"), "epoll"),
                                reason="the epoll loop is Linux's")
BIG = 300_000  # past waitress's send_bytes and its output buffer's high watermark


def _app() -> Flask:
    app = Flask("polling-test")

    @app.get("/hello")
    def hello():
        return "hello"

    @app.get("/big")
    def big():
        return Response(b"x" * BIG, mimetype="application/octet-stream")

    @app.post("/echo")
    def echo():
        return request.get_data()

    @app.get("/slow")
    def slow():
        time.sleep(0.3)
        return "slow"

    return app


@pytest.fixture
def served():
    settings = dict(waitress_settings(threads=4), channel_timeout=2, cleanup_interval=1)
    server = create_server(_app(), host="127.0.0.1", port=0, **settings)
    assert isinstance(server.asyncore, polling.EpollLoop)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield server.effective_port
    server.trigger.pull_trigger(lambda: [c.close() for c in list(server._map.values())])
    server.task_dispatcher.shutdown(timeout=5)
    thread.join(timeout=5)


def _read_answer(s: socket.socket, seen: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """(head, body, what came after it) of one answer on `s`."""
    while b"\r\n\r\n" not in seen:
        chunk = s.recv(65536)
        assert chunk, "the server closed the connection"
        seen += chunk
    head, _, rest = seen.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(rest) < length:
        chunk = s.recv(65536)
        assert chunk, "the server closed the connection mid-answer"
        rest += chunk
    return head, rest[:length], rest[length:]


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_idle_keep_alive_connections_are_read_when_their_client_speaks(served):
    idle = []
    try:
        for _ in range(200):
            s = _connect(served)
            s.sendall(_get("/hello"))
            assert _read_answer(s)[1] == b"hello"
            idle.append(s)
        busy = _connect(served)
        for _ in range(20):
            busy.sendall(_get("/hello"))
            assert _read_answer(busy)[1] == b"hello"
        busy.close()
        # Every idle connection is still heard, in any order.
        for s in idle[::-1][:50] + idle[:50]:
            s.sendall(_get("/hello"))
            assert _read_answer(s)[1] == b"hello"
    finally:
        for s in idle:
            s.close()


def test_a_silent_connection_is_closed_after_the_channel_timeout(served):
    s = _connect(served)
    s.sendall(_get("/hello"))
    assert _read_answer(s)[1] == b"hello"
    t = time.monotonic()
    s.settimeout(10)
    assert s.recv(1) == b""  # closed by the server, not by the 10 s timeout
    assert time.monotonic() - t < 6
    s.close()


def test_pipelined_requests_large_answers_and_a_continue(served):
    s = _connect(served)
    try:
        s.sendall(_get("/slow") + _get("/big") + _get("/hello"))
        head, body, rest = _read_answer(s)
        assert body == b"slow"
        head, body, rest = _read_answer(s, rest)
        assert len(body) == BIG and set(body) == {ord("x")}
        assert _read_answer(s, rest)[1] == b"hello"
        payload = b"y" * 5000
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                  b"Content-Type: application/octet-stream\r\n"
                  + f"Content-Length: {len(payload)}\r\n\r\n".encode())
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += s.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        s.sendall(payload)
        assert _read_answer(s, interim.partition(b"\r\n\r\n")[2])[1] == payload
    finally:
        s.close()


def test_many_clients_at_once_are_all_answered(served):
    errors: list[BaseException] = []

    def client() -> None:
        try:
            s = _connect(served)
            for _ in range(10):
                s.sendall(_get("/hello"))
                assert _read_answer(s)[1] == b"hello"
            s.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:3]
