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
