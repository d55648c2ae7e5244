"""`Client` and `AsyncClient`: the same calls, the one blocking and the other awaited.

Every call retries on its own within its deadline (see `_retry`), and every record carries an
`Idempotency-Key`, generated once per call and sent unchanged on each attempt, so that a record
counts once however many of its attempts reached the service.
"""

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import date
from types import TracebackType
from typing import Self

import httpx

from kiusys_client import _protocol
from kiusys_client._protocol import Call, Recorded, Usage
from kiusys_client._retry import (
    RETRIED_ERRORS,
    RETRIED_STATUSES,
    Attempts,
    RetryPolicy,
    retry_after,
)

DEFAULT_URL = "http://127.0.0.1:8000"


class Client:
    """A blocking client, safe to share between threads (httpx's pool is).

    `transport`, `clock`, `sleep` and `jitter` (a draw in [0, 1)) are for tests; a client uses the defaults.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._http = httpx.Client(
            base_url=base_url,
            headers=_protocol.headers(api_key),
            limits=_protocol.LIMITS,
            transport=transport,
        )
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter

    def record(self, route: str, key: str | None = None) -> Recorded:
        """Counts one transaction on `route`. Give `key` to resume a call that raised
        `DeadlineExceeded` (its `idempotency_key`); otherwise a new one is made."""
        key = key if key is not None else str(uuid.uuid4())
        return _protocol.recorded(self._send(_protocol.record_call(route, key)), key)

    def check(self, route: str) -> int:
        """The route's count: 0 for a route never recorded."""
        return _protocol.checked(self._send(_protocol.check_call(route)))

    def check_many(self, routes: Iterable[str]) -> dict[str, int]:
        """Each route's count, read 100 routes a call."""
        counts: dict[str, int] = {}
        for call in _protocol.check_many_calls(routes):
            counts.update(_protocol.answer(self._send(call)))
        return counts

    def usage(
        self,
        first: date | str,
        last: date | str,
        *,
        airline: str | None = None,
        routes: Iterable[str] = (),
        granularity: str = "day",
    ) -> Usage:
        """What `airline`'s routes, or `routes`, counted per UTC day (`granularity="month"`:
        per month) from `first` to `last`, both included (at most 366 days); the client's
        right `usage`. Routes are asked 100 a call."""
        calls = _protocol.usage_calls(first, last, airline, routes, granularity)
        return _protocol.usage_of(_protocol.answer(self._send(call)) for call in calls)

    def _send(self, call: Call) -> httpx.Response:
        attempts = Attempts(self.policy, self._clock, self._jitter, call.idempotency_key)
        while True:
            try:
                response = self._http.send(call.request(self._http, attempts.start()))
            except RETRIED_ERRORS as error:
                self._sleep(attempts.pause_after(error))
                continue
            if response.status_code not in RETRIED_STATUSES:
                return response
            self._sleep(attempts.pause_after(_protocol.refusal(response), retry_after(response)))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient:
    """The same calls as `Client`, for asyncio code."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=_protocol.headers(api_key),
            limits=_protocol.LIMITS,
            transport=transport,
        )
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter

    async def record(self, route: str, key: str | None = None) -> Recorded:
        """See `Client.record`."""
        key = key if key is not None else str(uuid.uuid4())
        return _protocol.recorded(await self._send(_protocol.record_call(route, key)), key)

    async def check(self, route: str) -> int:
        """See `Client.check`."""
        return _protocol.checked(await self._send(_protocol.check_call(route)))

    async def check_many(self, routes: Iterable[str]) -> dict[str, int]:
        """See `Client.check_many`."""
        counts: dict[str, int] = {}
        for call in _protocol.check_many_calls(routes):
            counts.update(_protocol.answer(await self._send(call)))
        return counts

    async def usage(
        self,
        first: date | str,
        last: date | str,
        *,
        airline: str | None = None,
        routes: Iterable[str] = (),
        granularity: str = "day",
    ) -> Usage:
        """See `Client.usage`."""
        calls = _protocol.usage_calls(first, last, airline, routes, granularity)
        return _protocol.usage_of([_protocol.answer(await self._send(call)) for call in calls])

    async def _send(self, call: Call) -> httpx.Response:
        attempts = Attempts(self.policy, self._clock, self._jitter, call.idempotency_key)
        while True:
            try:
                response = await self._http.send(call.request(self._http, attempts.start()))
            except RETRIED_ERRORS as error:
                await self._sleep(attempts.pause_after(error))
                continue
            if response.status_code not in RETRIED_STATUSES:
                return response
            await self._sleep(
                attempts.pause_after(_protocol.refusal(response), retry_after(response))
            )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
