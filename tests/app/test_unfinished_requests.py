"""A record counts only once its whole request has arrived, through the real `kiusys-app` on
both stores: a body short of its `Content-Length`, or a chunked body abandoned mid-way, counts
nothing when the client goes away, and is refused with 408 and closed when it stays but never
finishes; a bodiless record, and one with a complete small body, still count."""

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from kiusys_app.api.limits import BODY_SECONDS
from tests.support.processes import AppServer, app_process

pytestmark = pytest.mark.slow

HEAD = b"POST /v1/routes/AR1133/transactions HTTP/1.1\r\nHost: kiusys\r\n"
SHORT = HEAD + b"Content-Length: 10\r\n\r\nab"
CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"
UNFINISHED = {"short of its Content-Length": SHORT, "chunked, abandoned": CHUNKED}


@pytest.fixture(params=["sqlite", "dynamodb"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppServer]:
    if request.param == "sqlite":
        env = {"KIUSYS_SQLITE_PATH": str(tmp_path / "counts.sqlite3")}
    else:
        request.getfixturevalue("moto_tables")
        env = {"KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": request.getfixturevalue("moto_url")}
    with app_process(env, workers=2) as running:
        yield running


def connection(server: AppServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def count(server: AppServer) -> int:
    answer = httpx.get(f"{server.url}/v1/routes/AR1133/transactions")
    return int(answer.json()["transactions"])


def test_1000_unfinished_records_count_nothing_and_a_finished_one_still_counts(
    server: AppServer,
) -> None:
    with ExitStack() as held:
        for n in range(1000):
            sock = held.enter_context(connection(server))
            sock.sendall(SHORT if n % 2 else CHUNKED)
        time.sleep(1.0)  # every request reached a worker, which waits for the rest
        assert count(server) == 0
    time.sleep(1.0)  # the closes reached the workers
    assert count(server) == 0, "nothing counted when the clients went away"
    with connection(server) as sock:
        sock.sendall(SHORT)
        sock.shutdown(socket.SHUT_WR)  # the client stops sending, and waits
        sock.recv(1024)
    bodiless = httpx.post(f"{server.url}/v1/routes/AR1133/transactions")
    small_body = httpx.post(f"{server.url}/v1/routes/AR1133/transactions", content=b"{}")
    chunked = httpx.post(f"{server.url}/v1/routes/AR1133/transactions", content=iter([b"a", b"b"]))
    assert [bodiless.status_code, small_body.status_code, chunked.status_code] == [201] * 3
    assert count(server) == 3


def answer_of(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize("request_bytes", UNFINISHED.values(), ids=UNFINISHED.keys())
def test_a_body_that_never_ends_is_refused_with_408_and_closed_in_time(
    server: AppServer, request_bytes: bytes
) -> None:
    with connection(server) as sock:
        sock.sendall(request_bytes)
        started = time.monotonic()
        answer = answer_of(sock)  # to the server's close
        elapsed = time.monotonic() - started
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout"
    assert b"x-request-id" in rest.lower()
    assert rest.endswith(
        b'{"detail":"this service refuses requests with a body not complete within 10 s"}'
    )
    assert BODY_SECONDS <= elapsed < BODY_SECONDS + 1.0
    assert count(server) == 0
