"""Signature Version 4 for DynamoDB's JSON protocol, with what is fixed kept, not redone.

A request's signature is an HMAC of the request under a signing key that four HMACs derive
from the secret, the day (UTC), the region and the service ("Create a signed AWS API request",
AWS IAM User Guide). That key is fixed for a day and a secret, so it is derived once for each;
the request's time stamp is formatted once a second. The rest is done per request: the
payload's hash, the canonical request's, and the signature. A session's token is signed, as
botocore signs it. Checked against botocore's `SigV4Auth`, and for a static key against
aiodynamo's signer (which signed before and leaves the token unsigned), byte for byte.
"""

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiodynamo.credentials import Key
from aiodynamo.sign import Request
from yarl import URL

SERVICE = "dynamodb"
CONTENT_TYPE = "application/x-amz-json-1.0"
TARGET_PREFIX = "DynamoDB_20120810."
ALGORITHM = "AWS4-HMAC-SHA256"
SIGNED_HEADERS = "content-type;host;x-amz-date;x-amz-target"
# A session's token is signed too, as botocore signs it.
SIGNED_WITH_TOKEN = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"  # noqa: S105


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


class Signer:
    """Signs DynamoDB calls to `endpoint` in `region`, at the time `clock` gives (epoch s)."""

    def __init__(self, region: str, endpoint: URL, clock: Callable[[], float] = time.time):
        self._region = region
        self._endpoint = endpoint
        self._clock = clock
        self._host = endpoint.host
        self._second = -1
        self._stamp = ""
        # The last signing key: for (secret, day).
        self._key_for: tuple[str, str] = ("", "")
        self._signing_key = b""

    def sign(self, key: Key, action: str, payload: Mapping[str, Any]) -> Request:
        stamp = self._now()
        day = stamp[:8]
        scope = f"{day}/{self._region}/{SERVICE}/aws4_request"
        target = TARGET_PREFIX + action
        body = json.dumps(payload, separators=(",", ":")).encode()
        token = f"x-amz-security-token:{key.token}\n" if key.token else ""
        signed = SIGNED_WITH_TOKEN if key.token else SIGNED_HEADERS
        canonical = (
            f"POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{self._host}\n"
            f"x-amz-date:{stamp}\n{token}x-amz-target:{target}\n\n{signed}\n"
            f"{hashlib.sha256(body).hexdigest()}"
        )
        to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._key(key.secret, day), to_sign.encode(), hashlib.sha256)
        headers = {
            "Content-Type": CONTENT_TYPE,
            "X-Amz-Date": stamp,
            "X-Amz-Target": target,
            "Authorization": f"{ALGORITHM} Credential={key.id}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature.hexdigest()}",
        }
        if key.token:
            headers["X-Amz-Security-Token"] = key.token
        return Request(url=self._endpoint, headers=headers, body=body)

    def _now(self) -> str:
        """The time stamp, `YYYYMMDDTHHMMSSZ` in UTC, formatted once a second."""
        second = int(self._clock())
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        return self._stamp

    def _key(self, secret: str, day: str) -> bytes:
        if self._key_for != (secret, day):
            derived = _hmac(f"AWS4{secret}".encode(), day)
            for part in (self._region, SERVICE, "aws4_request"):
                derived = _hmac(derived, part)
            self._key_for, self._signing_key = (secret, day), derived
        return self._signing_key
