"""Headers and cookie rules of `study serve`, for every response it sends.

- Every response: no MIME sniffing, no referrer leaving the site.
- The dashboard and the study's own pages: never framed, and a content security policy that
  allows only this origin (the dashboard's small inline styles and scripts included).
- Task pages (`/tasks/...`) and hosted images are meant to be framed or embedded by a
  marketplace's worker site, possibly on another origin, so they may be framed.
- Behind a TLS reverse proxy (`serve.behind_tls_proxy`), the forwarded scheme and host are
  trusted from that one proxy and the dashboard's cookie is Secure."""

from __future__ import annotations

import hmac

from flask import Flask, request

DASHBOARD_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                 "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; "
                 "form-action 'self'")
# Pages whose very purpose is to be shown inside a marketplace's worker site.
FRAMEABLE_PREFIXES = ("/tasks/", "/img/")


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison that accepts any text (non-ASCII included) without raising."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass"))


def install(app: Flask, *, behind_tls_proxy: bool = False) -> None:
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=behind_tls_proxy)
    if behind_tls_proxy:
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)

    @app.after_request
    def headers(resp):
        h = resp.headers
        # The names present, looked up once: werkzeug's Headers.setdefault raises and catches
        # an HTTP exception for each absent name, a noticeable part of every answer's cost.
        present = {name.lower() for name, _ in h}

        def default(name: str, value: str) -> None:
            if name.lower() not in present:
                h.add(name, value)

        default("X-Content-Type-Options", "nosniff")
        default("Referrer-Policy", "no-referrer")
        if behind_tls_proxy:
            default("Strict-Transport-Security", "max-age=31536000")
        if request.path.startswith(FRAMEABLE_PREFIXES):
            return resp
        if request.path.startswith("/dashboard") or request.path in ("/", "/healthz"):
            default("Content-Security-Policy", DASHBOARD_CSP)
            default("X-Frame-Options", "DENY")
        else:
            # The worker site frames HIT pages itself, but is never framed by another site.
            default("Content-Security-Policy", "frame-ancestors 'self'")
            default("X-Frame-Options", "SAMEORIGIN")
        return resp
