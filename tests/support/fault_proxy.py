"""A proxy in front of DynamoDB (moto, or the contention layer) that injects the faults of the
real network and service, chosen by a seeded random draw per request:

- `throttle`: DynamoDB's ProvisionedThroughputExceededException, not applied;
- `reset-before` / `reset-after`: the connection is cut before the request goes on, or after
  its answer came back (applied, answer lost);
- `500-before` / `500-after`: InternalServerError, not applied or applied;
- `late`: applied, answered after `late_seconds` (longer than an attempt);
and, while `refusing()` is on, no connection is accepted at all.
"""

import asyncio
import json
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.proxy_server import Served, proxy_server

FAULTS = ("throttle", "reset-before", "reset-after", "500-before", "500-after", "late")
_JSON = "application/x-amz-json-1.0"


def _error(code: str, status: int) -> web.Response:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code})
    return web.Response(status=status, body=body, content_type=_JSON)


@dataclass
class FaultProxy:
    url: str
    seed: int
    # The chance that a request meets a fault, while `faulty`.
    rate: float = 0.1
    late_seconds: float = 2.5
    faulty: bool = True
    injected: Counter[str] = field(default_factory=Counter)
    served: Served | None = None
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def draw(self) -> str | None:
        if not self.faulty or self._random.random() >= self.rate:
            return None
        return self._random.choice(FAULTS)

    def refusing(self, on: bool) -> None:
        """Stop accepting connections (those already open stay), or start again."""
        assert self.served is not None
        site = self.served.site
        self.served.run(site.stop() if on else site.start())
        if on:
            self.injected["refused"] += 1


@contextmanager
def fault_proxy(target: str, seed: int, rate: float = 0.1) -> Iterator[FaultProxy]:
    proxy = FaultProxy("", seed, rate)

    async def forward(request: web.Request, served: Served) -> web.StreamResponse:
        fault = proxy.draw()
        body = await request.read()
        if fault is not None:
            proxy.injected[fault] += 1
        if fault == "throttle":
            return _error("ProvisionedThroughputExceededException", 400)
        if fault == "500-before":
            return _error("InternalServerError", 500)
        if fault == "reset-before":
            return _cut(request)
        answer = await served.forward(request, body)
        if fault == "reset-after":
            return _cut(request)
        if fault == "500-after":
            return _error("InternalServerError", 500)
        if fault == "late":
            await asyncio.sleep(proxy.late_seconds)
        return answer

    with proxy_server(target, forward) as served:
        proxy.url, proxy.served = served.url, served
        yield proxy


def _cut(request: web.Request) -> web.StreamResponse:
    """Cut the connection: the client sees it drop with no answer."""
    assert request.transport is not None
    request.transport.abort()
    return web.Response(status=499)  # never sent: the connection is gone
