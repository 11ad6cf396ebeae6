"""Run a WSGI app on a real threaded HTTP server in a background thread."""

from __future__ import annotations

import threading
from typing import Callable

from werkzeug.serving import WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    # HTTP/1.1 keeps boto3's and requests' connections alive between calls.
    protocol_version = "HTTP/1.1"

    def log_request(self, code="-", size="-"):
        pass


def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0) -> tuple[str, Callable[[], None]]:
    """Serve `app` (threaded: one thread per connection) until the returned stop function is
    called. Returns (base_url, stop); port 0 picks a free port."""
    server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name=f"wsgi-{server.port}", daemon=True)
    thread.start()
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{server.port}"

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return url, stop


THREADS = 16
# Keep-alive workers past waitress's default of 100 connections waited up to 120 s for a free
# one, and a thousand workers (whose browsers keep a connection or more each) still stalled
# sign-ins for 30 s at 1,000 connections.
CONNECTIONS = 4000


def create_server(app, **settings):
    """waitress.create_server, running its loop with study.marketplace.polling's (whose cost
    does not grow with idle keep-alive connections)."""
    import waitress

    from study.marketplace import polling

    server = waitress.create_server(app, **settings)
    polling.install(server)
    return server


def waitress_settings(threads: int = THREADS, behind_tls_proxy: bool = False) -> dict:
    """How `study serve` and `study marketplace serve` run waitress, chosen rather than left at
    its defaults. A client that stalls mid-request is dropped after 30 s instead of 120 s; a
    body is cut off well before it could fill the disk (the app's own limits, in
    study.marketplace.limits, are far smaller and answer in the API's error shape). Idle
    keep-alive connections cost no thread, so a pool of 16 serves them all; the backlog absorbs
    a burst of new connections (the kernel may cap it lower); idle channels are looked at
    every 10 s; poll(), not select(), because select() cannot watch a socket numbered past
    1023. Behind a TLS proxy its X-Forwarded-* headers are read by ProxyFix
    (study.web.security); waitress would otherwise drop them before the app sees them."""
    return dict(connection_limit=CONNECTIONS, channel_timeout=30,
                max_request_body_size=16 << 20, max_request_header_size=64 << 10,
                threads=threads, backlog=2048, cleanup_interval=10, asyncore_use_poll=True,
                ident="study", clear_untrusted_proxy_headers=not behind_tls_proxy)


def allow_open_files(connections: int = CONNECTIONS) -> None:
    """Raise this process's open-file limit (up to the hard limit) so the connection limit,
    not the descriptor limit, is what bounds the service: many systems start processes at a
    soft limit of 1,024, where accepting more connections fails."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256  # databases, logs, images being served
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
