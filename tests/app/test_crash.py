"""kill -9 mid-load. The real `kiusys-app` with 3 workers on SQLite loses its whole process group
while records (half of them with keys) are in flight: after a restart no acknowledged record is
lost, nothing is counted that was not sent, and re-sending the unanswered keyed records makes
the count exact. Or it loses one worker: a new one takes its place, the others keep serving,
and the counts stay exact."""

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import (
    KIUSYS_APP,
    REPO_ROOT,
    app_process,
    app_server,
    free_port,
    wait_for,
    wait_until_up,
    workers_of,
)

pytestmark = pytest.mark.slow

PLAIN_ROUTE = "AR1133"  # records without a key
KEYED_ROUTE = "LA0001"  # records with a key each
CLIENTS = 16
LOAD_SECONDS = 1.5


class Tally:
    """What the clients sent and which of those were answered, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.plain_sent = 0
        self.plain_acked = 0
        self.keyed: dict[str, bool] = {}  # key -> acknowledged
        self.refused = 0  # answers that were not 2xx


def load(url: str, client: int, tally: Tally, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=10) as http:
        n = 0
        while not stop.is_set():
            n += 1
            keyed = n % 2 == 0
            key = f"client-{client}-{n}"
            with tally.lock:
                if keyed:
                    tally.keyed[key] = False
                else:
                    tally.plain_sent += 1
            route = KEYED_ROUTE if keyed else PLAIN_ROUTE
            headers = {"Idempotency-Key": key} if keyed else {}
            try:
                answered = http.post(f"/v1/routes/{route}/transactions", headers=headers)
            except httpx.HTTPError:
                continue
            with tally.lock:
                if not answered.is_success:
                    tally.refused += 1
                elif keyed:
                    tally.keyed[key] = True
                else:
                    tally.plain_acked += 1


def count(url: str, route: str) -> int:
    return int(httpx.get(f"{url}/v1/routes/{route}/transactions").json()["transactions"])


def test_kill_9_mid_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    env = {"KIUSYS_STORE": "sqlite", "KIUSYS_SQLITE_PATH": str(tmp_path / "crash.sqlite3")}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [KIUSYS_APP, "--host", "127.0.0.1", "--metrics-port", str(free_port())]
    server = subprocess.Popen(
        [*args, "--port", str(port), "--workers", "3"],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so that one kill takes every worker
    )
    tally = Tally()
    stop = threading.Event()
    try:
        wait_until_up(f"{url}/readyz", server)
        clients = [
            threading.Thread(target=load, args=(url, n, tally, stop)) for n in range(CLIENTS)
        ]
        for thread in clients:
            thread.start()
        time.sleep(LOAD_SECONDS)
        os.killpg(server.pid, signal.SIGKILL)
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
    finally:
        stop.set()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()

    keyed_acked = sum(tally.keyed.values())
    unanswered = [key for key, acked in tally.keyed.items() if not acked]
    print(
        f"plain: sent {tally.plain_sent}, acked {tally.plain_acked}; "
        f"keyed: sent {len(tally.keyed)}, acked {keyed_acked}"
    )
    assert tally.plain_acked > 20, "the kill came mid-load"
    assert keyed_acked > 20, "the kill came mid-load"

    with app_server(env) as restarted:
        plain = count(restarted, PLAIN_ROUTE)
        keyed = count(restarted, KEYED_ROUTE)
        assert tally.plain_acked <= plain <= tally.plain_sent
        assert keyed_acked <= keyed <= len(tally.keyed)
        with httpx.Client(base_url=restarted, timeout=30) as http:
            for key in unanswered:
                resent = http.post(
                    f"/v1/routes/{KEYED_ROUTE}/transactions", headers={"Idempotency-Key": key}
                )
                assert resent.status_code in (200, 201)
        assert count(restarted, KEYED_ROUTE) == len(tally.keyed)
        assert count(restarted, PLAIN_ROUTE) == plain, "re-sending keyed records adds no plain"


def test_a_worker_killed_mid_load_is_replaced_and_the_others_keep_serving(tmp_path: Path) -> None:
    env = {"KIUSYS_STORE": "sqlite", "KIUSYS_SQLITE_PATH": str(tmp_path / "respawn.sqlite3")}
    with app_process(env, workers=3, log=tmp_path / "server.log") as server:
        tally = Tally()
        stop = threading.Event()
        clients = [
            threading.Thread(target=load, args=(server.url, n, tally, stop)) for n in range(20)
        ]
        for thread in clients:
            thread.start()
        try:
            time.sleep(LOAD_SECONDS)
            before = workers_of(server.process)
            assert len(before) == 3
            killed = min(before)
            os.kill(killed, signal.SIGKILL)
            after = wait_for(
                lambda: (now := workers_of(server.process)) - before and len(now) == 3 and now,
                "a new worker in the killed one's place",
                timeout=15,
            )
            time.sleep(LOAD_SECONDS)  # the new worker serves too
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=60)
        assert server.process.poll() is None, "the server keeps running"
        assert before - after == {killed}
        assert len(after - before) == 1
        with tally.lock:
            answered = tally.plain_acked + sum(tally.keyed.values())
            sent = tally.plain_sent + len(tally.keyed)
        print(f"sent {sent}, answered 2xx {answered}, killed worker {killed}")
        assert tally.refused == 0, "every answer is 2xx"
        # Only the calls in flight on the killed worker, one per client at most, got no answer.
        assert sent - answered <= 20
        plain = count(server.url, PLAIN_ROUTE)
        keyed = count(server.url, KEYED_ROUTE)
        assert tally.plain_acked <= plain <= tally.plain_sent
        assert sum(tally.keyed.values()) <= keyed <= len(tally.keyed)
    log = (tmp_path / "server.log").read_text()
    assert "Respawning worker" in log


def test_a_worker_that_dies_again_at_once_ends_the_server_instead_of_looping(
    tmp_path: Path,
) -> None:
    env = {"KIUSYS_STORE": "sqlite", "KIUSYS_SQLITE_PATH": str(tmp_path / "loop.sqlite3")}
    with app_process(env, workers=2, log=tmp_path / "server.log") as server:
        before = workers_of(server.process)
        os.kill(min(before), signal.SIGKILL)
        (respawned,) = wait_for(lambda: workers_of(server.process) - before, "a new worker")
        os.kill(respawned, signal.SIGKILL)  # within granian's 5.5 s crash-loop window
        status = server.process.wait(timeout=30)
    print(f"exit status {status}")
    assert status != 0, "a crash loop is a failure the kubelet sees and backs off from"
    assert "Worker crash loop detected" in (tmp_path / "server.log").read_text()
