"""The Requester API client of a study: real boto3 against the bundled marketplace (embedded)
or any MTurk-compatible endpoint named in study.toml, with retries for throttling and faults."""

from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager
from typing import Any, Iterator

from study.errors import StudyError

REALMS = ("sandbox", "live")
AWS_ENDPOINTS = {"sandbox": "https://mturk-requester-sandbox.us-east-1.amazonaws.com",
                 "live": "https://mturk-requester.us-east-1.amazonaws.com"}
RETRY_CODES = {"ServiceFault", "ServiceUnavailable", "InternalFailure", "InternalError",
               "Throttling", "ThrottlingException", "TooManyRequestsException",
               "RequestLimitExceeded"}
MAX_ATTEMPTS = 10
# An endpoint that never answered is most likely wrong or down, not busy: fail within seconds.
FIRST_CONTACT_ATTEMPTS = 2
CONNECT_TIMEOUT_S = 3
BACKOFF_BASE_S = 0.5  # STUDY_RETRY_BASE_S overrides it (tests use a short one)
BACKOFF_CAP_S = 20.0


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", "")) or str(exc)


def _transient(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, \
        HTTPClientError

    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error_code(exc) in RETRY_CODES or int(status) >= 500 or int(status) == 429
    return False


class Requester:
    """A boto3 MTurk client whose calls retry transient failures (throttling, ServiceFault,
    5xx, lost connections) with jittered exponential backoff. botocore's own retries are off,
    so there is one retry policy, and it knows MTurk's ServiceFault."""

    def __init__(self, client, realm: str, endpoint: str):
        self.client = client
        self.realm = realm
        self.endpoint = endpoint
        self.reached = False

    def call(self, operation: str, **params: Any) -> dict:
        from botocore.exceptions import ConnectionError as BotoConnectionError

        method = getattr(self.client, operation)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                answer = method(**params)
                self.reached = True
                return answer
            except Exception as exc:  # noqa: BLE001 - classified just below
                if isinstance(exc, BotoConnectionError) and not self.reached \
                        and attempt >= FIRST_CONTACT_ATTEMPTS:
                    raise StudyError(f"the marketplace at {self.endpoint} cannot be reached "
                                     f"({type(exc).__name__})", where=self.endpoint,
                                     hint="check marketplace.endpoint in study.toml and that "
                                          "the service is running") from None
                if not _transient(exc) or attempt == MAX_ATTEMPTS:
                    raise
                base = float(os.environ.get("STUDY_RETRY_BASE_S", BACKOFF_BASE_S))
                delay = min(BACKOFF_CAP_S, base * 2 ** (attempt - 1))
                time.sleep(delay * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def pages(self, operation: str, key: str, **params: Any) -> Iterator[dict]:
        """Every element of a paginated list operation."""
        token = None
        while True:
            kwargs = dict(params, MaxResults=100)
            if token:
                kwargs["NextToken"] = token
            page = self.call(operation, **kwargs)
            yield from page.get(key, [])
            token = page.get("NextToken")
            if not token or not page.get(key):
                return


def _boto_client(endpoint: str, region: str, profile: str | None, key_id: str | None,
                 secret: str | None):
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(profile_name=profile or None)
    kwargs: dict[str, Any] = {}
    if key_id:
        kwargs = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
    return session.client(
        "mturk", endpoint_url=endpoint, region_name=region or "us-east-1",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1},
                      connect_timeout=CONNECT_TIMEOUT_S, read_timeout=60), **kwargs)


def configured_endpoint(marketplace, realm: str) -> str | None:
    """The Requester endpoint named in study.toml, or None for the embedded marketplace.
    "aws" picks the AWS endpoints by realm; "{realm}" in a URL is replaced by the realm."""
    endpoint = marketplace.endpoint.strip()
    if endpoint == "embedded":
        return None
    if endpoint == "aws":
        return AWS_ENDPOINTS[realm]
    if not endpoint.startswith(("http://", "https://")):
        raise StudyError(f"marketplace.endpoint {endpoint!r} is not a URL",
                         where="study.toml marketplace.endpoint",
                         hint="use \"embedded\", \"aws\", or an https URL")
    return endpoint.replace("{realm}", realm)


def _keys(study) -> tuple[str, str]:
    secrets = study.secrets()
    try:
        return secrets["aws_access_key_id"], secrets["aws_secret_access_key"]
    except KeyError:
        raise StudyError("the study's marketplace key is missing", where=".secrets.toml",
                         hint="delete .secrets.toml; a new key is made on the next run") \
            from None


@contextmanager
def requester(study, realm: str) -> Iterator[Requester]:
    """A Requester for the study's marketplace in `realm`, for the duration of the block.

    Embedded marketplace: a running `study serve` is used when there is one; otherwise the
    marketplace runs in this process, on loopback, until the block ends."""
    if realm not in REALMS:
        raise StudyError(f"unknown realm {realm!r}", hint="use --sandbox or --live")
    market = study.settings.marketplace
    region = market.region
    endpoint = configured_endpoint(market, realm)
    if endpoint is not None:
        client = _boto_client(endpoint, region, market.aws_profile, None, None)
        yield Requester(client, realm, endpoint)
        return
    key_id, secret = _keys(study)
    from study.service import check_service, running_service_url
    url = running_service_url(study)
    if url is not None:
        check_service(study, url)
        endpoint = f"{url}/requester/{realm}"
        yield Requester(_boto_client(endpoint, region, None, key_id, secret), realm, endpoint)
        return
    from study.marketplace import create_app
    from study.marketplace.server import serve_in_thread

    app = create_app(study.marketplace_db_path, keys={key_id: secret})
    base, stop = serve_in_thread(app, "127.0.0.1", 0)
    try:
        endpoint = f"{base}/requester/{realm}"
        yield Requester(_boto_client(endpoint, region, None, key_id, secret), realm, endpoint)
    finally:
        stop()
        market = app.extensions.get("marketplace")
        if market is not None and hasattr(market, "pool"):
            market.pool.close_all()
