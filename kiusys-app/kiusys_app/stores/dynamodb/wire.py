"""DynamoDB's wire: one signed attempt of one call, and what its answer means.

Each attempt is DynamoDB's JSON protocol over aiohttp on the event loop, signed (`signer`) with
the key that the credentials source holds. An attempt either returns the answer's JSON or
raises one of the exceptions below, which say whether the request may have been applied
(`errors` says what each of DynamoDB's error types means); `retry` decides what to do about it.
"""

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiodynamo.credentials import Key
from aiodynamo.sign import Request
from yarl import URL

from kiusys_app.stores.base import StoreErrorKind
from kiusys_app.stores.dynamodb.credentials import CredentialsError
from kiusys_app.stores.dynamodb.errors import Meaning, of_error_type
from kiusys_app.stores.dynamodb.signer import Signer

# Status codes of an answer that is not DynamoDB's (a proxy, a load balancer) that are worth a
# retry; any other foreign answer means the endpoint is wrong.
_TRANSIENT_FOREIGN_STATUSES = frozenset({500, 502, 503, 504})
# DynamoDB answers in its own JSON protocol, errors included.
_CONTENT_TYPE = "application/x-amz-json"

# Connections per process to DynamoDB. A call waits for one before it is sent, and that wait is
# no attempt: a call that found none in time was never sent.
POOL_SIZE = 64
CONNECT_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Answer:
    """What the endpoint answered to one request."""

    status: int
    content_type: str | None
    body: bytes


# Sends one signed request within a timeout (seconds). A test may wrap it to inject faults.
Transport = Callable[[Request, float], Awaitable[Answer]]


class Failed(Exception):
    """One attempt failed. `maybe_applied`: it was sent, and nothing says it was not applied."""

    def __init__(self, kind: StoreErrorKind, reason: str, *, maybe_applied: bool) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.maybe_applied = maybe_applied


class ConditionFailed(Exception):
    """A write's condition did not hold, so nothing was written."""


class Cancelled(Exception):
    """A transaction was cancelled; `reasons` has one code per action, in order."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(reasons)
        self.reasons = reasons


def _error_of(answer: Answer) -> tuple[str, str, dict[str, Any]] | None:
    """DynamoDB's error type, message and body; None for an answer that is not DynamoDB's.
    The `__type` field marks it, whatever the content type (moto's is `application/json`)."""
    try:
        body = json.loads(answer.body)
        code = str(body["__type"]).rpartition("#")[2]
    except (ValueError, KeyError, TypeError):
        return None
    return code, str(body.get("message") or body.get("Message") or ""), body


def classify(answer: Answer) -> Failed | Cancelled | ConditionFailed | RuntimeError:
    """What a non-200 answer means. A RuntimeError is an error type this service does not know
    for a request DynamoDB refused: only a bug here sends such a request."""
    error = _error_of(answer)
    if error is None:
        reason = f"dynamodb: the endpoint answered {answer.status} {answer.content_type!r}"
        if answer.status in _TRANSIENT_FOREIGN_STATUSES:
            return Failed(StoreErrorKind.UNAVAILABLE, reason, maybe_applied=True)
        return Failed(StoreErrorKind.MISCONFIGURED, f"{reason}, not DynamoDB", maybe_applied=False)
    code, message, body = error
    reason = f"dynamodb: {code}: {message}".rstrip(": ")
    meaning = of_error_type(code)
    if meaning is Meaning.UNKNOWN and answer.status >= 500:
        meaning = Meaning.SERVER_ERROR
    match meaning:
        case Meaning.THROTTLED:
            return Failed(StoreErrorKind.THROTTLED, reason, maybe_applied=False)
        case Meaning.CONFLICT:
            return Failed(StoreErrorKind.UNAVAILABLE, reason, maybe_applied=False)
        case Meaning.MISCONFIGURED:
            return Failed(StoreErrorKind.MISCONFIGURED, reason, maybe_applied=False)
        case Meaning.CONDITION_FAILED:
            return ConditionFailed(reason)
        case Meaning.CANCELLED:
            reasons = body.get("CancellationReasons")
            if not reasons:  # one per action, always: without them nothing tells what happened
                return RuntimeError("transaction cancelled without reasons")
            return Cancelled([str(reason.get("Code", "None")) for reason in reasons])
        case Meaning.SERVER_ERROR:
            return Failed(StoreErrorKind.UNAVAILABLE, reason, maybe_applied=True)
    return RuntimeError(f"{reason} (HTTP {answer.status})")


def _unsent(reason: str) -> Failed:
    return Failed(StoreErrorKind.UNAVAILABLE, f"dynamodb: {reason}", maybe_applied=False)


class Wire:
    """Signs and sends one attempt at a time, through a pool of `pool_size` connections."""

    def __init__(
        self,
        *,
        region: str,
        endpoint_url: str,
        credentials: Callable[[], Awaitable[Key | None]],
        tls: ssl.SSLContext,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self._signer = Signer(region, URL(endpoint_url))
        self._key = credentials
        self._tls = tls
        self._pool_size = pool_size
        self._pool = asyncio.Semaphore(pool_size)
        self._session: aiohttp.ClientSession | None = None
        self.transport: Transport = self._post

    async def attempt(self, action: str, payload: dict[str, Any], timeout: float) -> Any:
        """One attempt, over within `timeout` seconds (> 0): the wait for a key and for a
        connection included, neither of which sends anything."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + timeout
        try:
            async with asyncio.timeout(timeout):
                key = await self._key()
        except TimeoutError:
            raise _unsent("credentials: none found within the call's budget") from None
        except CredentialsError as exc:
            raise Failed(exc.kind, f"dynamodb: {exc.reason}", maybe_applied=False) from None
        if key is None:
            raise Failed(
                StoreErrorKind.MISCONFIGURED,
                "dynamodb: no AWS credentials found",
                maybe_applied=False,
            )
        request = self._signer.sign(key, action, payload)
        try:
            async with asyncio.timeout(ends - loop.time()):
                await self._pool.acquire()
        except TimeoutError:
            raise _unsent(f"no free connection of {self._pool_size} within the timeout") from None
        try:
            answer = await self._send(request, ends - loop.time())
        finally:
            self._pool.release()
        return self._json_of(answer)

    async def _send(self, request: Request, timeout: float) -> Answer:
        if timeout <= 0:  # the waits took it all: aiohttp would then apply no timeout at all
            raise _unsent("no time left to send after the wait for a connection")
        try:
            return await self.transport(request, timeout)
        except aiohttp.ClientConnectorCertificateError as exc:
            # Not the endpoint we trust (or AWS_CA_BUNDLE lacks its CA): no retry helps.
            raise Failed(
                StoreErrorKind.MISCONFIGURED, f"dynamodb: {exc!r}", maybe_applied=False
            ) from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise _unsent(repr(exc)) from None  # no connection was made, so nothing was sent
        except (aiohttp.ClientError, TimeoutError) as exc:
            # A reset, a late or cut answer: the request may have arrived.
            raise Failed(
                StoreErrorKind.UNAVAILABLE, f"dynamodb: {exc!r}", maybe_applied=True
            ) from None

    @staticmethod
    def _json_of(answer: Answer) -> Any:
        if answer.status != 200:
            raise classify(answer)
        if not (answer.content_type or "").startswith(_CONTENT_TYPE):
            raise Failed(
                StoreErrorKind.MISCONFIGURED,
                f"dynamodb: the endpoint answered {answer.content_type!r}, not DynamoDB",
                maybe_applied=False,
            )
        try:
            return json.loads(answer.body)
        except ValueError:
            raise Failed(
                StoreErrorKind.MISCONFIGURED,
                "dynamodb: the endpoint answered a body that is not JSON",
                maybe_applied=False,
            ) from None

    async def _post(self, request: Request, timeout: float) -> Answer:
        if self._session is None:  # made here, inside the running event loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size, ssl=self._tls)
            )
        # The connection's phase ends first, so that its timeout says "never sent".
        client_timeout = aiohttp.ClientTimeout(
            total=timeout, connect=min(CONNECT_TIMEOUT_SECONDS, timeout / 2)
        )
        async with self._session.post(
            request.url, data=request.body, headers=request.headers, timeout=client_timeout
        ) as response:
            body = await response.read()
            return Answer(response.status, response.headers.get("Content-Type"), body)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
