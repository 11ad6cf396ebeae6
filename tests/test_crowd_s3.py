"""Image hosting on S3, against moto's S3 server on loopback."""

from __future__ import annotations

import re

import boto3
import pytest
import requests

from study.crowd import design
from study.crowd.hosting import Hosting, file_sha256
from study.crowd.pages import question_xml
from study.errors import StudyError
from study.studydir import Study
from test_crowd_support import photo_dataset_study, set_config


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def s3(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def s3_study(tmp_path, endpoint, bucket, presign=3600):
    root = photo_dataset_study(tmp_path)
    set_config(root, f'[hosting]\nmode = "s3"\ns3_bucket = "{bucket}"\ns3_prefix = "imgs/"\n'
                     f's3_endpoint_url = "{endpoint}"\ns3_presign_seconds = {presign}\n')
    return Study.open(root)


def test_uploads_once_content_addressed_with_presigned_urls(tmp_path, s3_endpoint, aws_env):
    s3(s3_endpoint).create_bucket(Bucket="hits")
    study = s3_study(tmp_path, s3_endpoint, "hits")
    conn = study.connect()
    design.ensure_design(study, conn)
    xml = question_xml(study, conn, Hosting(study, conn), 0)
    urls = re.findall(r'src="([^"]+)"', xml)
    assert urls and all("X-Amz-Signature" in u.replace("&amp;", "&") for u in urls)
    client = s3(s3_endpoint)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="hits")["Contents"]]
    assert all(re.fullmatch(r"imgs/[0-9a-f]{64}\.(png|jpg)", k) for k in keys)
    head = client.head_object(Bucket="hits", Key=keys[0])
    assert "immutable" in head["CacheControl"] and head["ContentType"].startswith("image/")
    # The URL serves exactly the hosted bytes.
    url = urls[0].replace("&amp;", "&")
    body = requests.get(url, timeout=10).content
    sha = re.search(r"/imgs/([0-9a-f]{64})\.", url).group(1)
    rows = {r["sha256"]: r for r in conn.execute("SELECT * FROM hosted_images")}
    assert rows[sha]["location"].startswith("s3://hits/imgs/")
    import hashlib
    assert hashlib.sha256(body).hexdigest() == sha
    cors = client.get_bucket_cors(Bucket="hits")["CORSRules"][0]
    assert cors["AllowedOrigins"] == ["*"] and "GET" in cors["AllowedMethods"]
    # A second publication of every HIT uploads nothing again.
    before = {o["Key"]: o["LastModified"] for o in
              client.list_objects_v2(Bucket="hits")["Contents"]}
    for h in range(design.design_hit_count(conn)):
        question_xml(study, conn, Hosting(study, conn), h)
    after = {o["Key"]: o["LastModified"] for o in
             client.list_objects_v2(Bucket="hits")["Contents"]}
    assert set(before) <= set(after)
    assert all(after[k] == before[k] for k in before)
    n_images = len({r["reference_path"] for r in conn.execute("SELECT * FROM items")}
                   | {r["result_path"] for r in conn.execute("SELECT * FROM items")})
    assert len(after) == len({file_sha256(p) for r in conn.execute("SELECT * FROM items")
                              for p in (r["reference_path"], r["result_path"])}) <= n_images


def test_public_bucket_urls(tmp_path, s3_endpoint, aws_env):
    s3(s3_endpoint).create_bucket(Bucket="public")
    study = s3_study(tmp_path, s3_endpoint, "public", presign=0)
    conn = study.connect()
    design.ensure_design(study, conn)
    url = Hosting(study, conn).url_for(conn.execute("SELECT result_path FROM items")
                                       .fetchone()[0])
    assert re.fullmatch(re.escape(s3_endpoint) + r"/public/imgs/[0-9a-f]{64}\.png", url)


def test_missing_bucket_is_a_clear_error(tmp_path, s3_endpoint, aws_env):
    study = s3_study(tmp_path, s3_endpoint, "no-such-bucket")
    conn = study.connect()
    design.ensure_design(study, conn)
    with pytest.raises(StudyError, match="no-such-bucket"):
        question_xml(study, conn, Hosting(study, conn), 0)
