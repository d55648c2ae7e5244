"""An HTTP proxy in front of moto that holds answers back, as a slow network or an overloaded
endpoint does: the request reaches moto at once and takes effect; its answer comes late. It
can also refuse every request for a while, with one of DynamoDB's errors, before moto sees it:
a store that throttles, say, for all the pods at once."""

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.support.processes import free_port


@dataclass
class DelayingProxy:
    url: str
    # The DynamoDB action (`X-Amz-Target`'s last part) of every request, in order.
    actions: list[str] = field(default_factory=list)
    # While set, every request is answered with this DynamoDB error type (HTTP 400), unapplied.
    refusing: str | None = None


@contextmanager
def delaying_proxy(
    target: str, action: str, hold: float, times: int = 1
) -> Iterator[DelayingProxy]:
    """A proxy to `target` that answers the first `times` requests of `action` `hold` seconds
    after `target` answered them; every other request at once."""
    port = free_port()
    proxy = DelayingProxy(f"http://127.0.0.1:{port}")
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def forward(request: web.Request) -> web.Response:
        this = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        proxy.actions.append(this)
        if proxy.refusing is not None:
            error = {"__type": f"com.amazonaws.dynamodb.v20120810#{proxy.refusing}"}
            return web.Response(
                status=400, body=json.dumps(error), content_type="application/x-amz-json-1.0"
            )
        async with (
            aiohttp.ClientSession() as session,
            session.post(target, data=await request.read(), headers=request.headers) as answer,
        ):
            body = await answer.read()
            content_type = answer.headers.get("Content-Type", "")
        if this == action and proxy.actions.count(action) <= times:
            await asyncio.sleep(hold)
        return web.Response(status=answer.status, body=body, headers={"Content-Type": content_type})

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        started.set()

    def run() -> None:
        loop.run_until_complete(serve())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(loop.stop)  # answers still held back are never sent
        thread.join(10)
