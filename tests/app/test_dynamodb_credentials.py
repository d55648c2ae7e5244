"""The DynamoDB store signs with what botocore's credential chain finds, refreshed off the loop.

Each source is tried on its own, with the others emptied, and a record is made on the moto
server with the key it yields; the key that signed each request is read from its
`Authorization` header.
"""

import asyncio
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiodynamo.credentials import Key
from aiodynamo.sign import Request
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.exceptions import ClientError, CredentialRetrievalError
from moto.core import DEFAULT_ACCOUNT_ID

from kiusys_app.stores import StoreError, StoreErrorKind
from kiusys_app.stores.dynamodb import DynamoDBStore
from kiusys_app.stores.dynamodb import credentials as credentials_module
from kiusys_app.stores.dynamodb import store as dynamodb_store
from kiusys_app.stores.dynamodb.credentials import (
    LOOKUP_SPACING_SECONDS,
    RETRY_CAP_SECONDS,
    RETRY_FIRST_SECONDS,
    ChainCredentials,
    CredentialsError,
)
from kiusys_app.stores.dynamodb.wire import Answer
from tests.app.conftest import Clock

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
    """Records the access key id that signed each write (the record's `UpdateItem`), and its
    session token, then sends every request on."""

    def __init__(self, store: DynamoDBStore) -> None:
        self.key_ids: list[str] = []
        self.tokens: list[str | None] = []
        self._send = store.wire.transport
        store.wire.transport = self

    async def __call__(self, request: Request, timeout: float) -> Answer:
        if request.headers["X-Amz-Target"].endswith(".UpdateItem"):
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


async def test_an_expiring_key_is_looked_up_again_in_the_background_and_its_new_key_signs(
    moto_store: Callable[..., DynamoDBStore],
    no_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
    clock: Clock,
) -> None:
    runs = process_config(no_credentials, delay=0)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(no_credentials / "config"))
    credentials = ChainCredentials(clock=clock)
    store = moto_store(credentials=credentials.key)
    signers = Signers(store)
    try:
        await store.record("AR1133")
        clock.now += LOOKUP_SPACING_SECONDS
        await store.record("AR1133")  # near expiry: signed with it, and a lookup starts
        for _ in range(500):
            if len(runs.read_text()) == 4:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await store.record("AR1133")
    finally:
        await store.aclose()
    # Each lookup runs the process twice: once to find the key, once more as botocore finds
    # a key that is already in its advisory window (this one lives 60 s).
    assert signers.key_ids == ["AKIDPROCESS1", "AKIDPROCESS1", "AKIDPROCESS3"]
    assert len(runs.read_text()) == 4


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

    def get_component(self, name: str) -> "FailingSession":
        return self  # the credential resolver

    def load_credentials(self) -> None:
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

    def get_component(self, name: str) -> "CountingSession":
        return self  # the credential resolver

    def load_credentials(self) -> Credentials:
        self.lookups += 1
        return Credentials("AKIDSTATIC", "secret")


async def test_static_keys_are_looked_up_once() -> None:
    session = CountingSession()
    credentials = ChainCredentials(session=session)
    keys = [await credentials.key() for _ in range(3)]
    assert [key.id if key else None for key in keys] == ["AKIDSTATIC"] * 3
    assert session.lookups == 1


class Sts:
    """A credential chain that issues keys living `lifetime` s (20 minutes) by `clock`, each
    lookup taking `delay` s of real time on its thread; while `failing`, every lookup fails."""

    LIFETIME = 20 * 60

    def __init__(self, clock: Clock, delay: float = 0.2, lifetime: float = LIFETIME) -> None:
        self.clock = clock
        self.delay = delay
        self.lifetime = lifetime
        self.failing = False
        self.lookups = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def get_component(self, name: str) -> "Sts":
        return self  # the credential resolver

    def load_credentials(self) -> RefreshableCredentials:
        with self._lock:
            self.lookups += 1
            number = self.lookups
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            if self.failing:
                raise CredentialRetrievalError(provider="sts", error_msg="unreachable")
            expires = self._at(self.clock.now + self.lifetime)
            key = {
                "access_key": f"AKID{number}",
                "secret_key": f"secret{number}",
                "token": "token",
                "expiry_time": expires.isoformat(),
            }
            return RefreshableCredentials(
                key["access_key"],
                key["secret_key"],
                key["token"],
                expires,
                # A key inside botocore's mandatory window is refreshed as it is frozen: to itself.
                refresh_using=lambda: key,
                method="sts",
                time_fetcher=lambda: self._at(self.clock.now),
            )
        finally:
            with self._lock:
                self.in_flight -= 1

    @staticmethod
    def _at(moment: float) -> datetime:
        return datetime.fromtimestamp(moment, UTC)

    async def idle(self) -> None:
        """Once a lookup that was just asked for, if any, has ended and been taken in."""
        await asyncio.sleep(0.02)
        while self.in_flight:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)


async def concurrent_keys(credentials: ChainCredentials, calls: int = 20) -> list[float]:
    """`calls` concurrent asks for the key; how long each took (real seconds)."""

    async def timed() -> float:
        started = time.perf_counter()
        key = await credentials.key()
        assert key is not None
        return time.perf_counter() - started

    return await asyncio.gather(*(timed() for _ in range(calls)))


async def test_a_refresh_failing_for_60_s_backs_off_logs_each_failure_and_stalls_no_call(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    sts = Sts(clock)
    credentials = ChainCredentials(session=sts, clock=clock)
    assert (await credentials.key()) is not None
    assert sts.lookups == 1
    clock.now += 6 * 60  # 14 minutes left: inside botocore's advisory window (15 minutes)
    sts.failing = True
    caplog.set_level(logging.WARNING, logger="kiusys_app.stores.dynamodb.credentials")
    slowest = 0.0
    for _ in range(60):
        slowest = max(slowest, *await concurrent_keys(credentials))
        await sts.idle()
        clock.now += 1
    failed = sts.lookups - 1
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("credentials")]
    print(
        f"60 s of failing STS: {failed} lookups, the slowest of 1,200 calls {slowest * 1e3:.1f} ms"
    )
    assert failed == 6, "at 0, 1, 3, 7, 15 and 31 s: the pause doubles from 1 s"
    assert sts.most_in_flight == 1, "20 calls at a time, one lookup"
    assert slowest < sts.delay / 4, "every call signed with the key it had"
    assert len(lines) == failed, "one line per failed lookup"
    reason = "credentials: Error when retrieving credentials from sts: unreachable"
    assert all(line.startswith(f"{reason}; signing with the key") for line in lines)
    assert {r.error for r in caplog.records} == {reason}  # type: ignore[attr-defined]
    assert all("signing with the key that is still valid" in line for line in lines)
    sts.failing = False
    clock.now += RETRY_CAP_SECONDS
    await credentials.key()
    await sts.idle()
    keys = {key.id if key else None for key in [await credentials.key()]}
    assert keys == {f"AKID{sts.lookups}"}, "the next lookup after STS is back signs"


async def test_calls_fail_fast_as_unavailable_only_once_the_key_has_expired(clock: Clock) -> None:
    sts = Sts(clock)
    credentials = ChainCredentials(session=sts, clock=clock)
    await credentials.key()
    sts.failing = True
    clock.now += sts.lifetime - 1
    assert (await credentials.key()) is not None, "a second left: still signs"
    await sts.idle()
    clock.now += 2
    with pytest.raises(CredentialsError) as expired:
        await credentials.key()  # no valid key: waits for the lookup, which fails
    assert expired.value.kind is StoreErrorKind.UNAVAILABLE
    started = time.perf_counter()
    with pytest.raises(CredentialsError):
        await credentials.key()  # in the pause after that failure: at once
    assert time.perf_counter() - started < sts.delay / 4


async def test_a_key_that_expires_in_the_pause_after_its_lookup_fails_fast_as_expired(
    clock: Clock,
) -> None:
    sts = Sts(clock, delay=0, lifetime=LOOKUP_SPACING_SECONDS / 2)
    credentials = ChainCredentials(session=sts, clock=clock)
    key = await credentials.key()
    assert key == Key("AKID1", "secret1", "token"), "valid to its last moment"
    clock.now += LOOKUP_SPACING_SECONDS * 0.75
    with pytest.raises(CredentialsError) as expired:
        await credentials.key()
    assert (expired.value.kind, expired.value.reason) == (
        StoreErrorKind.UNAVAILABLE,
        "credentials: the key expired",
    )
    assert sts.lookups == 1, "no lookup inside the pause after the last one"
    clock.now += LOOKUP_SPACING_SECONDS
    key = await credentials.key()
    assert key is not None
    assert (key.id, sts.lookups) == ("AKID2", 2)


async def test_a_chain_whose_refresh_is_still_expired_fails_as_unavailable_and_backs_off(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=credentials_module.__name__)
    # A key that had expired when it was found, and that its refresh finds again: a
    # `credential_process` that prints a past `Expiration`, or a node's clock far ahead.
    sts = Sts(clock, delay=0, lifetime=-1)
    credentials = ChainCredentials(session=sts, clock=clock)
    reason = (
        "credentials: Credentials were refreshed, but the refreshed credentials are still expired."
    )
    for _ in range(2):
        with pytest.raises(CredentialsError) as failed:
            await credentials.key()
        assert (failed.value.kind, failed.value.reason) == (StoreErrorKind.UNAVAILABLE, reason)
    assert sts.lookups == 1, "the second call came in the pause after the failure"
    (line,) = [r for r in caplog.records if r.name == credentials_module.__name__]
    assert line.error == reason  # type: ignore[attr-defined]


async def test_a_chain_that_found_nothing_is_asked_again_and_finds_keys_that_appear_later(
    no_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="kiusys_app.stores.dynamodb.credentials")
    credentials = ChainCredentials(clock=clock)
    assert await credentials.key() is None
    (line,) = caplog.records
    assert line.getMessage() == (
        "credentials: no source in the chain has any; no valid key; the next lookup in 1 s"
    )
    assert line.error == "credentials: no source in the chain has any"  # type: ignore[attr-defined]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDLATER")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert await credentials.key() is None, "asked again only after a pause"
    clock.now += RETRY_FIRST_SECONDS
    key = await credentials.key()
    assert key is not None
    assert key.id == "AKIDLATER"
