"""The latency proxy that the keep-alive race runs behind: bytes arrive intact, in order and
`delay` late each way, and a close reaches the other side `delay` late."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.latency_proxy import latency_proxy

DELAY = 0.05


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    """A TCP server that echoes what it reads, and closes a connection on `close`."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(connection: socket.socket) -> None:
        with connection:
            while (data := connection.recv(65536)) and data != b"close":
                connection.sendall(data)

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()
    listener.close()


def connect(address: str) -> socket.socket:
    host, port = address.split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := sock.recv(size - len(data))):
        data += chunk
    return data


def test_a_round_trip_takes_twice_the_delay_and_keeps_every_byte_in_order(
    echo: tuple[str, int],
) -> None:
    payload = bytes(range(256)) * 1000
    with latency_proxy(*echo, DELAY) as address, connect(address) as sock:
        started = time.monotonic()
        sock.sendall(b"ping")
        assert receive(sock, 4) == b"ping"
        elapsed = time.monotonic() - started
        sock.sendall(payload)
        assert receive(sock, len(payload)) == payload
    assert 2 * DELAY <= elapsed < 2 * DELAY + 0.1


def test_the_servers_close_reaches_the_client_one_delay_later(echo: tuple[str, int]) -> None:
    with latency_proxy(*echo, DELAY) as address, connect(address) as sock:
        sock.sendall(b"close")
        started = time.monotonic()
        assert sock.recv(1) == b"", "closed, with nothing sent"
        elapsed = time.monotonic() - started
    # The close is sent one delay after "close" left, and arrives one delay after that.
    assert 2 * DELAY <= elapsed < 2 * DELAY + 0.1
