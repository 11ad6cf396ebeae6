"""Image hosting on S3, against moto's S3 server on loopback."""

from __future__ import annotations

import re

import boto3
import pytest
import requests

from study.crowd import design
from study.crowd.hosting import Hosting
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


def test_uploads_each_appearance_once_with_presigned_urls(tmp_path, s3_endpoint, aws_env):
    s3(s3_endpoint).create_bucket(Bucket="hits")
    study = s3_study(tmp_path, s3_endpoint, "hits")
    conn = study.connect()
    design.ensure_design(study, conn)
    xml = question_xml(study, conn, Hosting(study, conn), 0)
    urls = [u.replace("&amp;", "&") for u in re.findall(r'src="([^"]+)"', xml)]
    assert urls and all("X-Amz-Signature" in u for u in urls)
    client = s3(s3_endpoint)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="hits")["Contents"]]
    # One object per appearance (two per item of the HIT), named opaquely.
    assert len(keys) == len(urls) == 2 * len(design.hit_items(conn, 0))
    assert all(re.fullmatch(r"imgs/a/[0-9a-f]{104}\.(png|jpg)", k) for k in keys)
    head = client.head_object(Bucket="hits", Key=keys[0])
    assert "immutable" in head["CacheControl"] and head["ContentType"].startswith("image/")
    # Each URL serves its own bytes; all show the pixels of the image behind them.
    import hashlib
    import io

    import numpy as np
    from PIL import Image

    bodies = [requests.get(u, timeout=10).content for u in urls]
    assert len({hashlib.sha256(b).hexdigest() for b in bodies}) == len(bodies)
    row = design.hit_items(conn, 0)[0]
    first = np.asarray(Image.open(io.BytesIO(bodies[0])).convert("RGB"))
    # (the pixels of the study's hosted copy, in its one image format)
    hosted = Hosting(study, conn).file(row["reference_path"])
    assert np.array_equal(first, np.asarray(Image.open(hosted).convert("RGB")))
    cors = client.get_bucket_cors(Bucket="hits")["CORSRules"][0]
    assert cors["AllowedOrigins"] == ["*"] and "GET" in cors["AllowedMethods"]
    # A second publication of every HIT uploads nothing again.
    for h in range(design.design_hit_count(conn)):
        question_xml(study, conn, Hosting(study, conn), h)
    before = {o["Key"]: o["LastModified"] for o in
              client.list_objects_v2(Bucket="hits")["Contents"]}
    for h in range(design.design_hit_count(conn)):
        question_xml(study, conn, Hosting(study, conn), h)
    after = {o["Key"]: o["LastModified"] for o in
             client.list_objects_v2(Bucket="hits")["Contents"]}
    assert after == before


def test_public_bucket_urls(tmp_path, s3_endpoint, aws_env):
    s3(s3_endpoint).create_bucket(Bucket="public")
    study = s3_study(tmp_path, s3_endpoint, "public", presign=0)
    conn = study.connect()
    design.ensure_design(study, conn)
    url = Hosting(study, conn).appearance_url(conn.execute("SELECT result_path FROM items")
                                              .fetchone()[0], 0, 1, "result")
    assert re.fullmatch(re.escape(s3_endpoint) + r"/public/imgs/a/[0-9a-f]{104}\.jpg", url)


def test_missing_bucket_is_a_clear_error(tmp_path, s3_endpoint, aws_env):
    study = s3_study(tmp_path, s3_endpoint, "no-such-bucket")
    conn = study.connect()
    design.ensure_design(study, conn)
    with pytest.raises(StudyError, match="no-such-bucket"):
        question_xml(study, conn, Hosting(study, conn), 0)
