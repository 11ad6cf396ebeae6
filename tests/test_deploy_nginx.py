"""The shipped nginx configuration (deploy/nginx/) in front of a real `study serve`: real nginx
with real TLS on loopback, the shipped files with only names, ports and paths replaced, and
requests, boto3 and a worker going through it."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from conftest import CLI, make_ebb
from e2e_support import REPO, free_port, processes, wait_until_up
from study.marketplace.testing import WorkerClient
from study.studydir import Study
from test_crowd_support import set_config

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(NGINX is None or shutil.which("openssl") is None,
                                 reason="needs nginx and openssl (Debian: apt-get install "
                                        "nginx; tests/run installs it as root)")]

SHIPPED = REPO / "deploy" / "nginx"
TOKEN = "deploy-test-token"
NAME = "localhost"  # the server name the test's certificate is for
OUTSIDER = "127.0.0.2"  # a loopback address that is not on the organiser's allow list
HTML_NS = ("http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/"
           "HTMLQuestion.xsd")
PAGE = ('<!DOCTYPE html><html><body><form method="post" id="mturk_form">'
        '<input name="rating" value="3"></form></body></html>')


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", f"/CN={NAME}", "-addext",
                    f"subjectAltName=DNS:{NAME}"], check=True, capture_output=True, timeout=60)
    return cert, key


def replace(text: str, old: str, new: str) -> str:
    """`text` with every `old` replaced; the shipped file must still contain `old`."""
    assert old in text, f"deploy/nginx/study.conf no longer contains {old!r}"
    return text.replace(old, new)


def study_conf(cert: Path, key: str | Path, access_log: Path, *, service_port: int | None = None,
               http_port: int | None = None, https_port: int | None = None) -> str:
    """The shipped study.conf with its certificate and log paths (and, given ports, its listen
    addresses and upstream) replaced; nothing else changes."""
    text = (SHIPPED / "study.conf").read_text()
    text = replace(text, "/etc/letsencrypt/live/study.example.org/fullchain.pem", str(cert))
    text = replace(text, "/etc/letsencrypt/live/study.example.org/privkey.pem", str(key))
    text = replace(text, "/var/log/nginx/study.access.log", str(access_log))
    if service_port is not None:
        text = replace(text, "server_name study.example.org", f"server_name {NAME}")
        text = replace(text, "server 127.0.0.1:8765;", f"server 127.0.0.1:{service_port};")
        # Loopback only, on free ports: the test must not take this machine's 80 and 443.
        text, n = re.subn(r"^\s*listen \[::\]:.*\n", "", text, flags=re.M)
        assert n == 3
        text = replace(text, "listen 80;", f"listen 127.0.0.1:{http_port};")
        text = replace(text, "listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl")
    return text


def nginx_prefix(base: Path, conf: str) -> Path:
    """An nginx prefix of its own: a main config holding the given site, the shipped
    study-locations.conf copied unchanged where study.conf includes it, every path in `base`."""
    (base / "conf" / "snippets").mkdir(parents=True)
    (base / "conf" / "sites").mkdir()
    shutil.copyfile(SHIPPED / "study-locations.conf",
                    base / "conf" / "snippets" / "study-locations.conf")
    (base / "conf" / "sites" / "study.conf").write_text(conf)
    temp = " ".join(f"{kind}_temp_path {base / kind};"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # As root, nginx would run its worker as `nobody`, which cannot enter pytest's directories.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (base / "conf" / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {base / 'nginx.pid'};\n"
        f"error_log {base / 'error.log'} info;\nevents {{ worker_connections 256; }}\n"
        f"http {{\n  {temp}\n  access_log {base / 'other.log'};\n"
        f"  include sites/study.conf;\n}}\n")
    return base


def nginx(prefix: Path, *args: str) -> list[str]:
    return [NGINX, "-p", str(prefix), "-c", str(prefix / "conf" / "nginx.conf"),
            "-e", str(prefix / "error.log"), *args]


def test_the_shipped_configuration_passes_nginx_t(tmp_path):
    """study.conf as shipped (ports 80 and 443, IPv6 included), only the certificate and log
    paths pointing at a self-signed test certificate."""
    cert, key = self_signed(tmp_path)
    prefix = nginx_prefix(tmp_path / "nginx", study_conf(cert, key, tmp_path / "access.log"))
    done = subprocess.run(nginx(prefix, "-t"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """`study serve` (behind_tls_proxy = true) on 127.0.0.1, and nginx with the shipped
    configuration in front of it on two free loopback ports; both stopped at the end."""
    base = tmp_path_factory.mktemp("deploy")
    root = base / "study"
    CLI()("init", root, "--dataset", make_ebb(base / "ebb", ids=(1, 2)))
    port, http_port, https_port = free_port(), free_port(), free_port()
    set_config(root, f'[serve]\nhost = "127.0.0.1"\nport = {port}\n'
                     f'dashboard_token = "{TOKEN}"\nbehind_tls_proxy = true\n')
    set_config(root, '[hosting]\nmode = "service"\nbase_url = "https://study.example.org"\n')
    cert, key = self_signed(base)
    prefix = nginx_prefix(base / "nginx", study_conf(
        cert, key, base / "access.log", service_port=port, http_port=http_port,
        https_port=https_port))
    with processes(base / "logs") as procs:
        serve = procs.start(root, "serve", log="serve")
        wait_until_up(f"http://127.0.0.1:{port}/healthz", serve)
        proxy = subprocess.Popen(nginx(prefix, "-g", "daemon off;"), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"https://{NAME}:{https_port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    requests.get(url + "/healthz", verify=str(cert), timeout=2)
                    break
                except requests.ConnectionError:
                    assert proxy.poll() is None and time.monotonic() < deadline, \
                        (base / "nginx" / "error.log").read_text()[-3000:]
                    time.sleep(0.1)
            yield {"url": url, "cert": str(cert), "root": root, "http_port": http_port,
                   "https_port": https_port, "access_log": base / "access.log"}
        finally:
            proxy.send_signal(signal.SIGQUIT)  # graceful: the master stops its worker
            try:
                proxy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proxy.pid, signal.SIGKILL)
                proxy.wait(timeout=10)


def get(site, path: str, **kw) -> requests.Response:
    kw.setdefault("allow_redirects", False)
    return requests.get(site["url"] + path, verify=site["cert"], timeout=30, **kw)


def session(site) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # else $REQUESTS_CA_BUNDLE would replace the test's certificate
    s.verify = site["cert"]
    return s


def from_outside(site, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
    """A request over TLS from an address that is not the organiser's."""
    ctx = ssl.create_default_context(cafile=site["cert"])
    conn = http.client.HTTPSConnection(NAME, site["https_port"], context=ctx, timeout=30,
                                       source_address=(OUTSIDER, 0))
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_health_and_headers_through_the_proxy(site):
    resp = get(site, "/healthz")
    assert resp.status_code == 200 and resp.json()["ok"] is True
    assert resp.headers["Server"] == "nginx"  # no version
    # The service saw HTTPS through X-Forwarded-Proto.
    assert "max-age" in resp.headers["Strict-Transport-Security"]


def test_plain_http_is_sent_to_https(site):
    resp = requests.get(f"http://127.0.0.1:{site['http_port']}/worker/live/join/x?a=1",
                        headers={"Host": NAME}, allow_redirects=False, timeout=30)
    assert resp.status_code == 301
    assert resp.headers["Location"] == f"https://{NAME}/worker/live/join/x?a=1"


def test_a_name_that_is_not_the_study_gets_no_tls_handshake(site):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://127.0.0.1:{site['https_port']}/healthz", verify=False, timeout=30)


def test_the_live_worker_site_is_public(site):
    status, body = from_outside(site, "GET", "/worker/live/")
    assert status == 401 and "Invitation needed" in body  # the service's own page
    status, body = from_outside(site, "GET", "/worker/live/join/no-such-invitation")
    assert status == 404 and "Unknown invitation" in body
    status, _ = from_outside(site, "GET", "/tasks/no-such-hit")
    assert status == 404


def test_the_organisers_parts_answer_the_organiser_only(site):
    for method, path in (("GET", "/dashboard/"), ("GET", f"/dashboard/?token={TOKEN}"),
                         ("POST", "/requester/sandbox"), ("POST", "/requester/live/"),
                         ("GET", "/worker/sandbox/"), ("GET", "/worker/sandbox/login"),
                         ("GET", "/")):
        status, body = from_outside(site, method, path, b"{}" if method == "POST" else None)
        assert status == 403 and "nginx" in body, (method, path)
    # Paths the configuration does not list are closed, whatever the service would answer.
    for path in ("/worker/other/", "/dashboardx", "/static/x.css"):
        assert from_outside(site, "GET", path)[0] == 404, path
    # From the organiser's address the same paths reach the service.
    assert get(site, "/dashboard/").status_code == 401
    assert get(site, "/worker/sandbox/login").status_code == 200


def test_the_dashboard_cookie_is_secure_and_the_token_stays_out_of_the_log(site):
    s = session(site)
    resp = s.get(f"{site['url']}/dashboard/?token={TOKEN}", allow_redirects=False, timeout=30)
    assert resp.status_code == 302
    assert "Secure" in resp.headers["Set-Cookie"] and "HttpOnly" in resp.headers["Set-Cookie"]
    assert resp.headers["Location"] in ("/dashboard/", f"{site['url']}/dashboard/")
    assert s.get(f"{site['url']}/dashboard/", timeout=60).status_code == 200
    log = site["access_log"].read_text()
    assert "GET /dashboard/ " in log and TOKEN not in log


def test_an_oversized_body_is_refused_by_nginx(site):
    body = b"x" * (3 * 1024 * 1024)
    for path in ("/requester/sandbox", "/worker/live/mturk/externalSubmit"):
        resp = requests.post(site["url"] + path, data=body, verify=site["cert"], timeout=30)
        assert resp.status_code == 413 and resp.headers["Server"] == "nginx", path
    # A body under the limit goes through to the service (which answers for itself).
    resp = requests.post(site["url"] + "/requester/sandbox", data=b"x" * (512 * 1024),
                         verify=site["cert"], timeout=30)
    assert resp.status_code != 413 and "__type" in resp.json()


def test_boto3_and_a_worker_through_the_proxy(site):
    """SigV4 survives the proxy (Host kept as signed); the worker site builds its submit URL
    from the forwarded scheme and host."""
    import boto3
    from botocore.exceptions import ClientError

    keys = Study.open(site["root"]).secrets()

    def client(secret: str):
        return boto3.client("mturk", endpoint_url=site["url"] + "/requester/sandbox",
                            region_name="us-east-1", verify=site["cert"],
                            aws_access_key_id=keys["aws_access_key_id"],
                            aws_secret_access_key=secret)

    api = client(keys["aws_secret_access_key"])
    assert api.get_account_balance()["AvailableBalance"] == "10000.00"
    with pytest.raises(ClientError):
        client("not-the-secret").get_account_balance()

    question = (f'<HTMLQuestion xmlns="{HTML_NS}"><HTMLContent><![CDATA[{PAGE}]]>'
                f'</HTMLContent><FrameHeight>400</FrameHeight></HTMLQuestion>')
    hit = api.create_hit(Title="Proxy check", Description="d", Reward="0.10",
                         MaxAssignments=1, LifetimeInSeconds=600,
                         AssignmentDurationInSeconds=300, Question=question)["HIT"]
    worker = WorkerClient(site["url"], "sandbox", session=session(site))
    worker.login("proxy-worker")
    assignment = worker.accept(hit["HITId"])
    frame = WorkerClient.frame_src(worker.work_page(assignment).text)
    submit_to = parse_qs(urlsplit(frame).query)["turkSubmitTo"]
    # The https base the proxy forwarded, followed by the assignment's submit capability.
    assert submit_to[0].startswith(site["url"] + "/worker/sandbox/s/")
    assert worker.submit(assignment, {"rating": "3"}).status_code == 200
    done = api.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]
    assert [a["AssignmentStatus"] for a in done] == ["Submitted"]
