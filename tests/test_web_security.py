"""`study serve` as the open internet meets it: headers on every page, a dashboard that cannot be
framed, a token that never lands in a log, private database files."""

from __future__ import annotations

import os
import stat

import requests

from study.studydir import Study
from study.marketplace.server import serve_in_thread
from study.web import create_app
from study.web.commands import TOKEN_FILE, announce


def _serve(study_dir, **kw):
    app = create_app(Study.open(study_dir), dashboard_token="s3cret-token", **kw)
    return serve_in_thread(app, "127.0.0.1", 0)


def test_headers_on_every_kind_of_page(study_dir):
    url, stop = _serve(study_dir)
    try:
        for path in ("/", "/healthz", "/dashboard/", "/worker/sandbox/", "/tasks/nothing",
                     "/img/" + "0" * 64 + ".png"):
            resp = requests.get(url + path, timeout=10)
            assert resp.headers["X-Content-Type-Options"] == "nosniff", path
            assert resp.headers["Referrer-Policy"] == "no-referrer", path
        dash = requests.get(url + "/dashboard/", timeout=10)
        assert dash.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in dash.headers["Content-Security-Policy"]
        # Task pages are framed by a marketplace's worker site, wherever it is.
        task = requests.get(url + "/tasks/nothing", timeout=10)
        assert "X-Frame-Options" not in task.headers
    finally:
        stop()


def test_dashboard_cookie_is_samesite_and_a_non_ascii_token_is_a_401(study_dir):
    url, stop = _serve(study_dir)
    try:
        s = requests.Session()
        resp = s.get(url + "/dashboard/?token=s3cret-token", allow_redirects=False, timeout=10)
        assert resp.status_code == 302
        cookie = resp.headers["Set-Cookie"]
        assert "SameSite=Lax" in cookie and "HttpOnly" in cookie
        bad = requests.get(url + "/dashboard/?token=%C3%A9t%C3%A9", timeout=10)
        assert bad.status_code == 403
        bearer = requests.get(url + "/dashboard/", timeout=10,
                              headers={"Authorization": "Bearer \u00e9t\u00e9".encode()})
        assert bearer.status_code == 401
    finally:
        stop()


def test_behind_a_tls_proxy_cookies_are_secure(study_dir):
    toml = study_dir / "study.toml"
    toml.write_text(toml.read_text().replace("behind_tls_proxy = false",
                                             "behind_tls_proxy = true"))
    url, stop = _serve(study_dir)
    try:
        resp = requests.get(url + "/dashboard/?token=s3cret-token", allow_redirects=False,
                            headers={"X-Forwarded-Proto": "https"}, timeout=10)
        assert "Secure" in resp.headers["Set-Cookie"]
        assert resp.headers["Location"].startswith(("/", "https://"))
        assert "max-age" in resp.headers["Strict-Transport-Security"]
    finally:
        stop()


def test_the_token_goes_to_a_private_file_and_not_into_a_log(study_dir):
    lines: list[str] = []
    study = Study.open(study_dir)
    announce(study, "http://127.0.0.1:1", "s3cret-token", echo=lines.append, on_terminal=False)
    assert not any("s3cret-token" in line for line in lines)
    path = study_dir / TOKEN_FILE
    assert path.read_text().strip() == "s3cret-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shown: list[str] = []
    announce(study, "http://127.0.0.1:1", "s3cret-token", echo=shown.append, on_terminal=True)
    assert any("token=s3cret-token" in line for line in shown)


def test_study_database_and_its_wal_are_private(study_dir):
    conn = Study.open(study_dir).connect()
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('x', 'y')")
    for name in ("study.db", "study.db-wal", "study.db-shm"):
        path = study_dir / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    conn.close()
    os.chmod(study_dir / "study.db", 0o644)
    Study.open(study_dir).connect().close()
    assert stat.S_IMODE((study_dir / "study.db").stat().st_mode) == 0o600


def test_a_symlink_in_hosted_is_never_followed(study_dir):
    hosted = study_dir / "hosted"
    hosted.mkdir(exist_ok=True)
    name = "a" * 64 + ".png"
    (hosted / name).symlink_to(study_dir / "study.db")
    url, stop = _serve(study_dir)
    try:
        assert requests.get(f"{url}/img/{name}", timeout=10).status_code == 404
    finally:
        stop()
