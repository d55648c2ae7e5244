"""The worker's watchdog (`kiusys_app.orphan_watch`), run as the worker starts it, on stand-in
processes: it ends the worker a drain after the supervisor is gone, and never before."""

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

DRAIN = 1.0
Process = subprocess.Popen[bytes]


@contextmanager
def sleeper() -> Iterator[Process]:
    process = subprocess.Popen(["sleep", "60"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def watchdog(supervisor: int, worker: int) -> Process:
    return subprocess.Popen(
        [sys.executable, "-m", "kiusys_app.orphan_watch", str(supervisor), str(worker), str(DRAIN)]
    )


@contextmanager
def watched() -> Iterator[tuple[Process, Process, Process]]:
    """A supervisor and a worker, and the worker's watchdog, given time to start watching."""
    with sleeper() as supervisor, sleeper() as worker:
        watch = watchdog(supervisor.pid, worker.pid)
        time.sleep(0.5)
        yield supervisor, worker, watch


def test_a_worker_whose_supervisor_ends_is_killed_after_the_drain_not_before() -> None:
    with watched() as (supervisor, worker, watch):
        supervisor.kill()
        supervisor.wait()
        ended = time.monotonic()
        time.sleep(DRAIN / 2)
        assert worker.poll() is None, "killed before its drain"
        assert worker.wait(timeout=10) == -9
        assert DRAIN <= time.monotonic() - ended < DRAIN + 2
        assert watch.wait(timeout=5) == 0


def test_a_worker_that_ends_within_its_drain_ends_the_watchdog_too() -> None:
    with watched() as (supervisor, worker, watch):
        supervisor.kill()
        worker.terminate()
        assert worker.wait(timeout=5) == -15
        assert watch.wait(timeout=5) == 0


def test_a_worker_whose_supervisor_is_already_gone_still_has_its_drain() -> None:
    with sleeper() as supervisor, sleeper() as worker:
        supervisor.kill()
        supervisor.wait()
        started = time.monotonic()
        watch = watchdog(supervisor.pid, worker.pid)
        assert worker.wait(timeout=10) == -9
        assert time.monotonic() - started >= DRAIN
        assert watch.wait(timeout=5) == 0


def test_the_watchdog_ends_with_its_worker_while_the_supervisor_lives() -> None:
    with watched() as (supervisor, worker, watch):
        worker.kill()
        worker.wait()
        assert watch.wait(timeout=5) == 0
        assert supervisor.poll() is None
