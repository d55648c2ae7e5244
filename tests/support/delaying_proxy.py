"""An HTTP proxy in front of moto that holds answers back, as a slow network or an overloaded
endpoint does: the request reaches moto at once and takes effect; its answer comes late. It
can also refuse every request for a while, with one of DynamoDB's errors, before moto sees it:
a store that throttles, say, for all the pods at once."""

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.proxy_server import Served, proxy_server


@dataclass
class DelayingProxy:
    url: str
    # The DynamoDB action (`X-Amz-Target`'s last part) of every request, in order.
    actions: list[str] = field(default_factory=list)
    # While set, every request is answered with this DynamoDB error type (HTTP 400), unapplied.
    refusing: str | None = None
    # The body of every request refused so, in order.
    refused: list[bytes] = field(default_factory=list)


@contextmanager
def delaying_proxy(
    target: str, action: str, hold: float, times: int = 1
) -> Iterator[DelayingProxy]:
    """A proxy to `target` that answers the first `times` requests of `action` `hold` seconds
    after `target` answered them; every other request at once."""
    proxy = DelayingProxy("")

    async def forward(request: web.Request, served: Served) -> web.Response:
        this = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        proxy.actions.append(this)
        body = await request.read()
        if proxy.refusing is not None:
            proxy.refused.append(body)
            error = {"__type": f"com.amazonaws.dynamodb.v20120810#{proxy.refusing}"}
            return web.Response(
                status=400, body=json.dumps(error), content_type="application/x-amz-json-1.0"
            )
        answer = await served.forward(request, body)
        if this == action and proxy.actions.count(action) <= times:
            await asyncio.sleep(hold)
        return answer

    with proxy_server(target, forward) as served:
        proxy.url = served.url
        yield proxy
