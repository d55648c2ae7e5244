"""The request size limits, which no route should have to know:

- A URL (path and query) over 8 KiB is refused with 414, and request headers over 16 KiB in
  total with 431, before any route or store call. Larger still, the server itself answers
  (`kiusys_app.serve.MAX_BUFFER_BYTES`).
- A body over 1 KiB is refused with 413. No route reads a body, and a small one is ignored,
  but only once it has all arrived: a request counts nothing until it is complete. A body still
  arriving after BODY_SECONDS is refused with 408 and the connection closed; a client that goes
  away before its body is complete is answered nothing, and no route sees its request. A
  request without a body goes on at once.
"""

import asyncio
import enum

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024
# Well inside the server's drain (kiusys_app.serve.DRAIN_SECONDS), so that a request whose body
# never ends cannot hold a shutdown for all of it.
BODY_SECONDS = 10.0


# The limits' answers as the schema documents them, on every operation.
LIMIT_RESPONSES: dict[int, str] = {
    408: f"The request's body was not complete within {BODY_SECONDS:g} s; the connection is closed.",
    413: f"A body over {MAX_BODY_BYTES} bytes (no call reads a body).",
    414: f"A URL (path and query) over {MAX_URL_BYTES} bytes.",
    431: f"Request headers over {MAX_HEADER_BYTES} bytes in all.",
}


class _Body(enum.Enum):
    COMPLETE = enum.auto()
    TOO_LARGE = enum.auto()
    ABANDONED = enum.auto()  # the client went away before its end


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], _Body]:
    """The body's messages, to its end or to just past `limit` bytes, and how it ended."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return messages, _Body.ABANDONED
        messages.append(message)
        size += len(message.get("body", b""))
        if size > limit:
            return messages, _Body.TOO_LARGE
        if not message.get("more_body", False):
            return messages, _Body.COMPLETE


class RequestLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        url_bytes = len(scope.get("raw_path") or scope["path"]) + len(
            scope.get("query_string", b"")
        )
        if url_bytes > MAX_URL_BYTES:
            await _refuse(scope, receive, send, 414, f"a URL over {MAX_URL_BYTES} bytes")
            return
        # One pass over the raw headers (ASGI gives their names in lower case).
        size = 0
        length = encoding = None
        for name, value in scope["headers"]:
            size += len(name) + len(value)
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                encoding = value
        if size > MAX_HEADER_BYTES:
            await _refuse(scope, receive, send, 431, f"headers over {MAX_HEADER_BYTES} bytes")
            return
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _refuse(scope, receive, send, 413, f"a body over {MAX_BODY_BYTES} bytes")
            return
        chunked = length is None and encoding is not None and b"chunked" in encoding.lower()
        if chunked or (length is not None and int(length) > 0):
            try:
                async with asyncio.timeout(BODY_SECONDS):
                    messages, body = await _read_body(receive, MAX_BODY_BYTES)
            except TimeoutError:
                await _refuse(
                    scope, receive, send, 408, f"a body not complete within {BODY_SECONDS:g} s",
                    headers={"Connection": "close"},
                )  # fmt: skip
                return
            if body is _Body.ABANDONED:
                return
            if body is _Body.TOO_LARGE:
                await _refuse(scope, receive, send, 413, f"a body over {MAX_BODY_BYTES} bytes")
                return
            receive = _replay(messages, receive)
        await self.app(scope, receive, send)


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    what: str,
    headers: dict[str, str] | None = None,
) -> None:
    detail = {"detail": f"this service refuses requests with {what}"}
    await JSONResponse(detail, status, headers=headers)(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands out the messages already read, then reads on."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
