"""What the test proxies in front of moto share: an aiohttp server on an event loop of its own
thread, on a free loopback port, and a way to pass a request on to the target unchanged."""

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from tests.support.processes import free_port

T = TypeVar("T")


@dataclass
class Served:
    url: str
    target: str
    loop: asyncio.AbstractEventLoop
    site: web.TCPSite
    session: aiohttp.ClientSession

    async def forward(self, request: web.Request, body: bytes) -> web.Response:
        """`body`, with the request's headers, sent on to the target; its answer."""
        async with self.session.post(self.target, data=body, headers=request.headers) as answer:
            content = await answer.read()
            content_type = answer.headers.get("Content-Type", "")
        return web.Response(
            status=answer.status, body=content, headers={"Content-Type": content_type}
        )

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the server's loop, from another thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)


Handler = Callable[[web.Request, Served], Awaitable[web.StreamResponse]]


@contextmanager
def proxy_server(target: str, handle: Handler) -> Iterator[Served]:
    """`handle` answers every POST on a free port until the block ends; answers it still holds
    back are never sent."""
    port = free_port()
    loop = asyncio.new_event_loop()
    ready: list[Served] = []
    started = threading.Event()

    async def answer(request: web.Request) -> web.StreamResponse:
        return await handle(request, ready[0])

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/", answer)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        ready.append(Served(f"http://127.0.0.1:{port}", target, loop, site, session))
        started.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True
    )
    thread.start()
    started.wait(10)
    (served,) = ready
    try:
        yield served
    finally:
        served.run(_drop_held_answers())
        served.run(served.session.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


async def _drop_held_answers() -> None:
    """Cancel the handlers still at work, such as those holding an answer back."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
