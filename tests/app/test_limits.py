"""The request limits at their exact edges, on the ASGI middleware alone: the headers' total size
and the body's, by Content-Length or chunked."""

import asyncio
from typing import Any

import pytest
from starlette.types import Message

from kiusys_app.api.head import HeadAsGet
from kiusys_app.api.limits import MAX_BODY_BYTES, MAX_HEADER_BYTES, RequestLimits

pytestmark = pytest.mark.anyio
CHUNKED = [(b"transfer-encoding", b"chunked")]


async def serve(
    app: Any, headers: list[tuple[bytes, bytes]], messages: list[Message], method: str = "POST"
) -> list[Message]:
    """One request through RequestLimits to `app`: the server hands out `messages` as they are
    asked for; what went back to it."""
    pending, sent = list(messages), []

    async def receive() -> Message:
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/save-transaction/AR1133"}
    await RequestLimits(app)({**scope, "headers": headers}, receive, send)
    return sent


async def through_limits(
    headers: list[tuple[bytes, bytes]], chunks: tuple[bytes, ...] = (b"",)
) -> tuple[int, bytes | None]:
    """The status the middleware answers, and the body the app behind it read (None if the app
    was never called)."""
    read: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        read.append(body)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
        for n, chunk in enumerate(chunks)
    ]
    sent = await serve(app, headers, messages)
    return sent[0]["status"], read[0] if read else None


def headers_of_total_size(size: int) -> list[tuple[bytes, bytes]]:
    host = (b"host", b"kiusys.example.com")
    padding = size - len(host[0]) - len(host[1]) - len(b"x-padding")
    return [host, (b"x-padding", b"a" * padding)]


@pytest.mark.parametrize(("size", "status"), [(MAX_HEADER_BYTES, 204), (MAX_HEADER_BYTES + 1, 431)])
async def test_headers_of_exactly_16_kib_pass_and_one_byte_more_is_431(
    size: int, status: int
) -> None:
    headers = headers_of_total_size(size)
    assert sum(len(name) + len(value) for name, value in headers) == size
    assert (await through_limits(headers))[0] == status


@pytest.mark.parametrize(("length", "status"), [(MAX_BODY_BYTES, 204), (MAX_BODY_BYTES + 1, 413)])
async def test_a_body_of_exactly_1_kib_passes_and_one_byte_more_is_413(
    length: int, status: int
) -> None:
    body = b"x" * length
    declared = [(b"content-length", str(length).encode())]
    assert (await through_limits(declared, (body,)))[0] == status
    answered, read = await through_limits(CHUNKED, (body[:600], body[600:]))
    assert answered == status
    assert read == (body if status == 204 else None), "the app reads the whole body, or nothing"


async def test_after_a_replayed_chunked_body_the_app_reads_on_from_the_server() -> None:
    """The body read ahead is handed out again, and what the server sends next (here the
    client's disconnect) still reaches the app."""
    seen: list[Message] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.extend([await receive(), await receive(), await receive()])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    messages: list[Message] = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
        {"type": "http.disconnect"},
    ]
    await serve(app, CHUNKED, messages)
    assert [m.get("body") for m in seen] == [b"ab", b"cd", None]
    assert seen[-1]["type"] == "http.disconnect"


async def test_head_is_answered_as_get_without_the_body_on_the_same_scope() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["method"])
        scope["route"] = "what the router found"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"1")]})
        await send({"type": "http.response.body", "body": b'{"AR1133":1}'})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "HEAD", "path": "/v1/routes/AR1133/transactions"}
    await HeadAsGet(app)(scope, None, send)  # type: ignore[arg-type]
    assert seen == ["GET"], "the app answers a GET"
    assert scope == {**scope, "method": "HEAD", "route": "what the router found"}
    assert sent == [
        {"type": "http.response.start", "status": 200, "headers": [(b"x", b"1")]},
        {"type": "http.response.body", "body": b""},
    ]


async def test_a_chunk_without_more_body_is_the_last_one() -> None:
    """ASGI's default for a missing `more_body` is False: the body ends there."""
    read: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        read.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await serve(app, CHUNKED, [{"type": "http.request", "body": b"abc"}])
    assert read == [b"abc"]


@pytest.mark.parametrize(
    "headers", [[(b"content-length", b"10")], CHUNKED], ids=["content-length", "chunked"]
)
async def test_a_client_that_goes_away_mid_body_never_reaches_the_app(
    headers: list[tuple[bytes, bytes]],
) -> None:
    called: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope["path"])

    messages: list[Message] = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.disconnect"},
    ]
    assert await serve(app, headers, messages) == [], "nothing answered"
    assert called == [], "no route saw the request"


async def test_a_body_still_arriving_at_the_deadline_is_408_and_closes_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("kiusys_app.api.limits.BODY_SECONDS", 0.05)
    called: list[str] = []
    first = True

    async def receive() -> Message:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"ab", "more_body": True}
        await asyncio.sleep(60)  # the rest never comes
        raise AssertionError("unreachable")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope["path"])

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/save-transaction/AR1133"}
    await RequestLimits(app)({**scope, "headers": CHUNKED}, receive, send)
    assert called == []
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert b"not complete within 0.05 s" in sent[1]["body"]


@pytest.mark.parametrize("headers", [[], [(b"content-length", b"0")]], ids=["none", "empty"])
async def test_a_request_without_a_body_goes_on_without_a_read(
    headers: list[tuple[bytes, bytes]],
) -> None:
    called: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent = await serve(app, headers, [])  # a read would find no message and fail
    assert called == ["/save-transaction/AR1133"]
    assert sent[0]["status"] == 204
