"""A TCP proxy that delays every byte, and every close, by `delay` seconds each way, as a
network path with that one-way latency does: what is sent arrives later and in order, and a
side's close reaches the other side `delay` seconds after it happened. The HTTP proxies beside
it work per request; this one keeps each connection as a connection, which is what a
keep-alive race needs."""

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from tests.support.processes import free_port


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Everything `reader` gives, written to `writer` `delay` seconds after it arrived; then
    `writer` closed, `delay` seconds after `reader` ended."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not data:
                return
            writer.write(data)
            await writer.drain()

    delivering = asyncio.create_task(deliver())
    try:
        while True:
            try:
                data = await reader.read(65536)
            except ConnectionError:
                data = b""
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
        with suppress(ConnectionError):
            await delivering
    finally:
        delivering.cancel()
        writer.close()


@contextmanager
def latency_proxy(host: str, port: int, delay: float) -> Iterator[str]:
    """A proxy to `host:port` on a free loopback port, `delay` seconds each way; yields its
    `host:port`. When either side closes, the other is closed `delay` seconds later."""
    listen = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def connect(client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        server_reader, server = await asyncio.open_connection(host, port)
        await asyncio.gather(
            _pipe(client_reader, server, delay),
            _pipe(server_reader, client, delay),
            return_exceptions=True,
        )

    async def serve() -> None:
        servers.append(await asyncio.start_server(connect, "127.0.0.1", listen))
        started.set()

    async def stop() -> None:
        servers[0].close()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    servers: list[asyncio.Server] = []
    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True
    )
    thread.start()
    started.wait(10)
    try:
        yield f"127.0.0.1:{listen}"
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
