"""AWS Signature Version 4 verification for the Requester API (service `mturk-requester`).

Refusals use the error types AWS sends and botocore knows: MissingAuthenticationTokenException
(no signature), IncompleteSignatureException (a malformed Authorization header),
UnrecognizedClientException (unknown key id), InvalidSignatureException (wrong signature, wrong
scope, an unsigned header that steers the request, or a request time too far from the server's).

Every header that decides what a request does must be signed, or a captured request could be
replayed with a different meaning: `host`, `x-amz-date`, and every `x-amz-*` header sent
(`x-amz-target` names the operation). The credential scope must name this service and region.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote

SERVICE = "mturk-requester"
REGION = "us-east-1"  # MTurk's only region; boto3 clients are made with region_name=us-east-1
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 15 * 60

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-f]{64})\s*$")


class AuthError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = _hmac(("AWS4" + secret).encode("utf-8"), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def _canonical_query(query_string: str) -> str:
    pairs = parse_qsl(query_string, keep_blank_values=True)
    enc = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in enc)


def _must_sign(headers) -> list[str]:
    """The headers of this request that must be in SignedHeaders, lower-case, sorted."""
    names = {"host", "x-amz-date"}
    names.update(k.lower() for k in headers.keys() if k.lower().startswith("x-amz-"))
    return sorted(names)


def _shown(name: str) -> str:
    """'x-amz-target' as AWS writes it in messages: 'X-Amz-Target'."""
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


def verify(method: str, path: str, query_string: str, headers, body: bytes,
           keys: dict[str, str], now: float | None = None, region: str = REGION) -> str:
    """Check the request's signature; return the requester key id or raise AuthError.

    `headers` is a case-insensitive mapping of the request headers as received.
    """
    auth = headers.get("Authorization")
    if not auth:
        raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
    m = _AUTH_RE.match(auth.strip())
    if not m:
        raise AuthError("IncompleteSignatureException",
                        "Authorization header requires 'Credential', 'SignedHeaders' and "
                        "'Signature' parameters for AWS4-HMAC-SHA256.")
    credential, signed_headers, signature = m.groups()
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise AuthError("IncompleteSignatureException",
                        f"Credential should be scoped to a valid region, not '{credential}'.")
    expected_region = region
    key_id, date, region, service, _ = parts
    secret = keys.get(key_id)
    if secret is None:
        raise AuthError("UnrecognizedClientException",
                        "The security token included in the request is invalid.")
    if service != SERVICE:
        raise AuthError("InvalidSignatureException",
                        f"Credential should be scoped to correct service: '{SERVICE}'.")
    if region != expected_region:
        raise AuthError("InvalidSignatureException",
                        f"Credential should be scoped to a valid region, not '{region[:40]}'. "
                        f"This marketplace signs in '{expected_region}'.")
    amz_date = headers.get("X-Amz-Date")
    if not amz_date:
        raise AuthError("IncompleteSignatureException",
                        "Authorization header requires existence of either a 'X-Amz-Date' or a "
                        "'Date' header.")
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise AuthError("IncompleteSignatureException", f"Invalid X-Amz-Date: {amz_date}")
    if amz_date[:8] != date:
        raise AuthError("InvalidSignatureException",
                        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
                        "of date from HTTP.")
    now = time.time() if now is None else now
    if abs(signed_at.timestamp() - now) > MAX_SKEW_S:
        raise AuthError("InvalidSignatureException",
                        f"Signature expired: {amz_date} is now earlier or later than the "
                        f"allowed {MAX_SKEW_S // 60} minutes from the server time.")
    names = signed_headers.split(";")
    for name in _must_sign(headers):
        if name not in names:
            raise AuthError("InvalidSignatureException",
                            f"'{_shown(name)}' must be a 'SignedHeader' in the AWS "
                            f"Authorization.")
    canonical_headers = ""
    for name in names:
        value = headers.get(name)
        if value is None:
            raise AuthError("InvalidSignatureException",
                            f"The request signature we calculated does not match the signature "
                            f"you provided: signed header '{name}' is missing.")
        canonical_headers += f"{name}:{' '.join(value.split())}\n"
    payload_hash = hashlib.sha256(body).hexdigest()
    canonical_request = "\n".join([
        method.upper(),
        quote(path or "/", safe="/~"),
        _canonical_query(query_string),
        canonical_headers,
        signed_headers,
        payload_hash,
    ])
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join([
        ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()])
    expected = hmac.new(signing_key(secret, date, region, service),
                        string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise AuthError("InvalidSignatureException",
                        "The request signature we calculated does not match the signature you "
                        "provided. Check your AWS Secret Access Key and signing method. Consult "
                        "the service documentation for details.")
    return key_id
