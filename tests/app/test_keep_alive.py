"""Keep-alive as pooled clients meet it. granian times a connection's wait for request headers
with one timer, hyper's header-read timeout, whether the connection is idle or half-way through
a request; so an idle keep-alive connection is closed after the same 5 s that cut off a client
that stopped half-way through its headers. Pooled clients see that close before they reuse the
connection and open a new one: after any idle time, a record gets its 200 with no transport
error."""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import urllib3

from kiusys_app.api.observability import KEEP_ALIVE_SECONDS
from kiusys_app.serve import HEADER_READ_TIMEOUT_MS
from tests.support.processes import AppServer, app_process

pytestmark = pytest.mark.slow

RECORD = "/save-transaction/AR1133"
# 20 rounds just past the server's idle close, then a long idle and a longer one.
IDLE_SECONDS = [6.0] * 20 + [30.0, 120.0]


def idle_then_record(send: Callable[[], int], outcomes: list[int | str]) -> None:
    """A record after each idle time, on the client's one pooled connection."""
    for idle in [0.0, *IDLE_SECONDS]:
        time.sleep(idle)
        try:
            outcomes.append(send())
        except Exception as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AppServer]:
    with app_process({"KIUSYS_SQLITE_PATH": str(tmp_path / "counts.sqlite3")}) as running:
        yield running


def address(server: AppServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def test_pooled_clients_record_after_any_idle_time_with_no_transport_error(
    server: AppServer,
) -> None:
    with httpx.Client(base_url=server.url, limits=httpx.Limits(max_connections=1)) as hx:
        pool = urllib3.HTTPConnectionPool(*address(server), maxsize=1, block=True)
        clients = {
            "httpx": lambda: hx.post(RECORD).status_code,
            # No retries: a refused or reset send would show here as an error.
            "urllib3": lambda: pool.request("POST", RECORD, retries=False).status,
        }
        outcomes: dict[str, list[int | str]] = {name: [] for name in clients}
        threads = [
            threading.Thread(target=idle_then_record, args=(send, outcomes[name]))
            for name, send in clients.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        count = hx.get("/get-transaction/AR1133").json()["AR1133"]
    for name, answers in outcomes.items():
        assert answers == [200] * (len(IDLE_SECONDS) + 1), name
    assert count == 2 * (len(IDLE_SECONDS) + 1)


def test_a_client_that_stops_half_way_through_its_headers_is_cut_off_within_6_s(
    server: AppServer,
) -> None:
    with socket.create_connection(address(server), timeout=10) as sock:
        sock.sendall(b"POST /save-transaction/AR1133 HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = sock.recv(1024)
        cut_off_after = time.monotonic() - started
    count = httpx.get(f"{server.url}/get-transaction/AR1133").json()
    print(f"cut off after {cut_off_after:.2f} s (timer {HEADER_READ_TIMEOUT_MS} ms)")
    assert closed == b""
    assert cut_off_after < 6
    assert count == {"AR1133": 0}


def answer_to(server: AppServer, request: bytes) -> tuple[str, bool]:
    """The status line and headers the server answers to one raw request, and whether it kept
    the connection open for a second after its answer."""
    with socket.create_connection(address(server), timeout=1) as sock:
        sock.sendall(request)
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
            kept_open = False
        except TimeoutError:
            kept_open = True
    return received.partition(b"\r\n\r\n")[0].decode("latin-1").lower(), kept_open


@pytest.mark.parametrize(
    ("version", "connection", "kept_alive"),
    [
        ("1.1", "", True),
        ("1.1", "Connection: close\r\n", False),
        ("1.0", "", False),
        ("1.0", "Connection: keep-alive\r\n", True),
    ],
    ids=["1.1", "1.1-close", "1.0", "1.0-keep-alive"],
)
def test_a_kept_alive_answer_says_when_the_server_will_close(
    server: AppServer, version: str, connection: str, kept_alive: bool
) -> None:
    request = f"GET /healthz HTTP/{version}\r\nHost: x\r\n{connection}\r\n".encode()
    head, kept_open = answer_to(server, request)
    assert head.startswith(f"http/{version} 200"), head
    assert kept_open == kept_alive
    hint = f"\r\nkeep-alive: timeout={KEEP_ALIVE_SECONDS}\r\n"
    assert (hint in f"{head}\r\n") == kept_alive, head
    assert KEEP_ALIVE_SECONDS < HEADER_READ_TIMEOUT_MS / 1000, "the hint ends before the close"
