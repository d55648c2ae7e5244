"""The DynamoDB store signs with what botocore's credential chain finds, refreshed off the loop.

Each source is tried on its own, with the others emptied, and a record is made on the moto
server with the key it yields; the key that signed each request is read from its
`Authorization` header.
"""

import asyncio
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiodynamo.sign import Request
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, CredentialRetrievalError
from moto.core import DEFAULT_ACCOUNT_ID

from kiusys_app.stores import StoreError, StoreErrorKind
from kiusys_app.stores import dynamodb as dynamodb_store
from kiusys_app.stores.aws_credentials import ChainCredentials
from kiusys_app.stores.dynamodb import Answer, DynamoDBStore

pytestmark = pytest.mark.anyio

# The script of a `credential_process`: each run writes a new key, valid for `LIFETIME` seconds
# (inside botocore's refresh window, so every use refreshes it), after `DELAY` seconds.
PROCESS = """
import datetime, json, pathlib, sys, time
runs = pathlib.Path(sys.argv[1])
run = len(runs.read_text()) if runs.exists() else 0
runs.write_text("x" * (run + 1))
time.sleep(float(sys.argv[2]))
expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=60)
print(json.dumps({"Version": 1, "AccessKeyId": f"AKIDPROCESS{run}", "SecretAccessKey": "s",
                  "SessionToken": "t", "Expiration": expires.isoformat()}))
"""


class Signers:
    """Records the access key id that signed each request, and its session token, then sends
    it on."""

    def __init__(self, store: DynamoDBStore) -> None:
        self.key_ids: list[str] = []
        self.tokens: list[str | None] = []
        self._send = store.transport
        store.transport = self

    async def __call__(self, request: Request, timeout: float) -> Answer:
        credential = request.headers["Authorization"].split("Credential=")[1]
        self.key_ids.append(credential.split("/")[0])
        self.tokens.append(request.headers.get("X-Amz-Security-Token"))
        return await self._send(request, timeout)


async def records_with(
    credentials: ChainCredentials, moto_store: Callable[..., DynamoDBStore], times: int = 1
) -> Signers:
    """Record `times` times on moto with `credentials`; what signed the writes."""
    store = moto_store(credentials=credentials.key)
    signers = Signers(store)
    try:
        for number in range(1, times + 1):
            assert (await store.record("AR1133")).count == number
    finally:
        await store.aclose()
    return signers


async def test_keys_from_the_environment_sign_accepted_requests(
    moto_store: Callable[..., DynamoDBStore], no_credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "a-session-token")
    signers = await records_with(ChainCredentials(), moto_store)
    assert (signers.key_ids, signers.tokens) == (["AKIDENVIRONMENT"], ["a-session-token"])


async def test_a_web_identity_token_file_irsa_signs_with_sts_keys(
    moto_store: Callable[..., DynamoDBStore],
    moto_url: str,
    no_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = no_credentials / "token"
    token.write_text("a-projected-service-account-token")
    # moto keeps each account's tables apart: the role is in the account that holds them.
    monkeypatch.setenv("AWS_ROLE_ARN", f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/kiusys-app")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_url)
    (key_id,) = (await records_with(ChainCredentials(), moto_store)).key_ids
    assert key_id.startswith("ASIA"), "a temporary key from AssumeRoleWithWebIdentity"


def process_config(directory: Path, delay: float) -> Path:
    script = directory / "credentials.py"
    script.write_text(PROCESS)
    runs = directory / "runs"
    config = directory / "config"
    config.write_text(f"[default]\ncredential_process = {sys.executable} {script} {runs} {delay}\n")
    return runs


async def test_an_expiring_credential_process_is_run_again_and_its_new_keys_sign(
    moto_store: Callable[..., DynamoDBStore], no_credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = process_config(no_credentials, delay=0)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(no_credentials / "config"))
    key_ids = (await records_with(ChainCredentials(), moto_store, times=2)).key_ids
    assert key_ids == ["AKIDPROCESS1", "AKIDPROCESS2"], "each use found the key near expiry"
    assert len(runs.read_text()) == 2 + 1, "run once to find it, then once per refresh"


async def test_a_slow_refresh_never_blocks_the_event_loop(
    no_credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    process_config(no_credentials, delay=0.5)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(no_credentials / "config"))
    credentials = ChainCredentials()
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    key = await credentials.key()
    ended = time.monotonic()
    ticker.cancel()
    took = ended - started
    assert key is not None
    assert key.id.startswith("AKIDPROCESS")
    assert took >= 0.5, "the process ran (twice: found, then refreshed)"
    moments = [started, *ticks, ended]
    longest_gap = max(later - earlier for earlier, later in itertools.pairwise(moments))
    print(f"key in {took:.2f} s; the loop's longest pause {longest_gap * 1000:.0f} ms")
    assert longest_gap < 0.4, "the process sleeps 0.5 s: run on the loop, it would stop it"


async def test_no_source_at_all_gives_no_key(no_credentials: Path) -> None:
    assert await ChainCredentials().key() is None


class FailingSession:
    """A botocore session whose credential chain fails as `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_credentials(self) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (
            ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "not trusted"}},
                "AssumeRoleWithWebIdentity",
            ),
            StoreErrorKind.MISCONFIGURED,
            "dynamodb: credentials: An error occurred (AccessDenied) when calling the "
            "AssumeRoleWithWebIdentity operation: not trusted",
        ),
        (
            CredentialRetrievalError(provider="sts", error_msg="timed out"),
            StoreErrorKind.UNAVAILABLE,
            "dynamodb: credentials: Error when retrieving credentials from sts: timed out",
        ),
    ],
    ids=["sts-refused", "sts-unreachable"],
)
async def test_a_chain_that_fails_is_a_store_error_of_its_kind(
    moto_store: Callable[..., DynamoDBStore],
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    kind: StoreErrorKind,
    reason: str,
) -> None:
    monkeypatch.setattr(dynamodb_store, "CALL_BUDGET_SECONDS", 0.3)
    store = moto_store(credentials=ChainCredentials(session=FailingSession(error)).key)
    with pytest.raises(StoreError) as failed:
        await store.record("AR1133")  # a plain record: nothing was sent, so nothing is unknown
    await store.aclose()
    assert (failed.value.kind, failed.value.reason) == (kind, reason)


class CountingSession:
    """A botocore session whose chain finds static keys, and counts its lookups."""

    def __init__(self) -> None:
        self.lookups = 0

    def get_credentials(self) -> Credentials:
        self.lookups += 1
        return Credentials("AKIDSTATIC", "secret")


async def test_static_keys_are_looked_up_once() -> None:
    session = CountingSession()
    credentials = ChainCredentials(session=session)
    keys = [await credentials.key() for _ in range(3)]
    assert [key.id if key else None for key in keys] == ["AKIDSTATIC"] * 3
    assert session.lookups == 1
