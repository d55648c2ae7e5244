"""SIGTERM: requests in flight finish and are acknowledged, new connections are refused, every
acknowledged record is counted, and the process exits 0."""

import json
import signal
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.processes import app_process, app_server, wait_for

pytestmark = pytest.mark.slow

IN_FLIGHT = 8


def accepted_connections(port: int) -> int:
    """Established TCP connections whose local end is `port`: what the server has accepted."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, _, state = line.split()[1:4]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def test_sigterm_drains_in_flight_requests_and_refuses_new_ones(tmp_path: Path) -> None:
    database = tmp_path / "shared.sqlite3"
    env = {"KIUSYS_STORE": "sqlite", "KIUSYS_SQLITE_PATH": str(database)}
    log = tmp_path / "server.log"
    statuses: list[int | str] = []
    with app_process(env, log=log) as server:
        for _ in range(3):
            httpx.post(f"{server.url}/save-transaction/AR1133").raise_for_status()

        # Hold the database's write lock, so that the next records stay in flight.
        blocker = sqlite3.connect(database, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")

        def record() -> None:
            try:
                statuses.append(
                    httpx.post(f"{server.url}/save-transaction/AR1133", timeout=60).status_code
                )
            except httpx.HTTPError as exc:
                statuses.append(type(exc).__name__)

        threads = [threading.Thread(target=record) for _ in range(IN_FLIGHT)]
        for thread in threads:
            thread.start()
        port = int(server.url.rsplit(":", 1)[1])
        wait_for(lambda: accepted_connections(port) >= IN_FLIGHT, "the records to connect")
        assert statuses == [], "the records should be waiting for the lock"

        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "Shutting down" in log.read_text(), "the server to start its shutdown")
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"{server.url}/save-transaction/AR1133", timeout=5)

        blocker.execute("ROLLBACK")
        blocker.close()
        for thread in threads:
            thread.join(timeout=60)
        assert server.process.wait(timeout=60) == 0, "a clean drain exits 0"

    print(f"in flight at SIGTERM: {IN_FLIGHT}, answered: {statuses}")
    assert statuses == [200] * IN_FLIGHT
    with app_server(env) as url:
        assert httpx.get(f"{url}/get-transaction/AR1133").json() == {"AR1133": 3 + IN_FLIGHT}

    lines = log.read_text().splitlines()
    requests = [json.loads(line) for line in lines if '"message":"request"' in line]
    records = [r for r in requests if r["route"] == "/save-transaction/{flight_route}"]
    assert len(records) == 3 + IN_FLIGHT, "one JSON line per request"
    assert [json.loads(line)["level"] for line in lines], "every line is JSON, the server's too"
