"""The signer against AWS's own (botocore's SigV4Auth) and aiodynamo's, byte for byte, and what
it keeps: the signing key per secret and day, the time stamp per second."""

import datetime
from typing import Any

import botocore.auth
import pytest
from aiodynamo import sign as aiodynamo_sign
from aiodynamo.credentials import Key
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from yarl import URL

from kiusys_app.stores.dynamodb import signer as signer_module
from kiusys_app.stores.dynamodb.signer import Signer

ENDPOINT = URL("https://dynamodb.sa-east-1.amazonaws.com/")
REGION = "sa-east-1"
PAYLOAD = {"TableName": "flights-db", "Key": {"flight-route": {"S": "AR1133"}}}
# 2026-11-30T23:59:59Z, a second before a new day (and month).
BEFORE_MIDNIGHT = 1_796_083_199.0
# AWS's documented example secret, and a session's.
KEYS = [
    Key(id="AKIDEXAMPLE", secret="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),  # noqa: S106
    Key(id="ASIAEXAMPLE", secret="another/secret", token="a-session-token"),  # noqa: S106
]


def botocore_signature(key: Key, signed: Any, at: float, monkeypatch: pytest.MonkeyPatch) -> str:
    """botocore's Authorization header for the same request, at the same time."""
    request = AWSRequest(
        method="POST",
        url=str(ENDPOINT),
        data=signed.body,
        headers={
            "Content-Type": signed.headers["Content-Type"],
            "X-Amz-Target": signed.headers["X-Amz-Target"],
        },
    )
    credentials = Credentials(key.id, key.secret, key.token)
    then = datetime.datetime.fromtimestamp(at, datetime.UTC).replace(tzinfo=None)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: then)
    SigV4Auth(credentials, "dynamodb", REGION).add_auth(request)
    return str(request.headers["Authorization"])


@pytest.mark.parametrize("key", KEYS, ids=["static", "session"])
@pytest.mark.parametrize("at", [BEFORE_MIDNIGHT, BEFORE_MIDNIGHT + 1], ids=["before", "after"])
def test_a_signature_is_botocores(key: Key, at: float, monkeypatch: pytest.MonkeyPatch) -> None:
    signed = Signer(REGION, ENDPOINT, clock=lambda: at).sign(key, "GetItem", PAYLOAD)
    assert signed.headers["Authorization"] == botocore_signature(key, signed, at, monkeypatch)
    assert ("X-Amz-Security-Token" in signed.headers) == (key.token is not None)


@pytest.mark.parametrize("at", [BEFORE_MIDNIGHT, BEFORE_MIDNIGHT + 1], ids=["before", "after"])
def test_a_request_of_a_static_key_is_aiodynamos(
    at: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiodynamo, which signed before, leaves a session token out of the signed headers, where
    botocore signs it; with a static key the two requests are the same."""
    key = KEYS[0]
    signed = Signer(REGION, ENDPOINT, clock=lambda: at).sign(key, "GetItem", PAYLOAD)
    instant = aiodynamo_sign.Instant(datetime.datetime.fromtimestamp(at, datetime.UTC))
    monkeypatch.setattr(aiodynamo_sign.Instant, "now", classmethod(lambda cls: instant))
    theirs = aiodynamo_sign.signed_dynamo_request(
        key=key, payload=PAYLOAD, action="GetItem", region=REGION, endpoint=ENDPOINT
    )
    assert (signed.url, signed.headers, signed.body) == (theirs.url, theirs.headers, theirs.body)


def test_the_signing_key_is_derived_once_per_secret_and_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    derived: list[str] = []
    hmac_of = signer_module._hmac

    def counted(key: bytes, message: str) -> bytes:
        derived.append(message)
        return hmac_of(key, message)

    monkeypatch.setattr(signer_module, "_hmac", counted)
    now = [BEFORE_MIDNIGHT - 10]
    signer = Signer(REGION, ENDPOINT, clock=lambda: now[0])
    for _ in range(3):
        signer.sign(KEYS[0], "UpdateItem", PAYLOAD)
    assert derived == ["20261130", REGION, "dynamodb", "aws4_request"]
    now[0] = BEFORE_MIDNIGHT + 1
    signer.sign(KEYS[0], "UpdateItem", PAYLOAD)
    signer.sign(KEYS[1], "UpdateItem", PAYLOAD)
    assert derived[4::4] == ["20261201", "20261201"], "a new day, then a new secret"


def test_the_time_stamp_follows_the_clock_second_by_second() -> None:
    now = [BEFORE_MIDNIGHT]
    signer = Signer(REGION, ENDPOINT, clock=lambda: now[0])
    stamps = []
    for step in (0.0, 0.4, 0.7, 1.2):
        now[0] = BEFORE_MIDNIGHT + step
        stamps.append(signer.sign(KEYS[0], "GetItem", PAYLOAD).headers["X-Amz-Date"])
    assert stamps == ["20261130T235959Z"] * 3 + ["20261201T000000Z"]
