"""The client's promise, against the real `kiusys-app` (2 workers) on DynamoDB (moto), behind
DynamoDB's conflict rules (the contention layer) and the fault proxy (throttling, cuts and 500s
before and after the write was applied, late answers), with the store's connections refused
for a while and a worker killed with SIGKILL mid-run.

Each `record` call either returns a count or raises after its deadline. Read from moto after
the run: nothing doubled, nothing lost that the client reported counted.
"""

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from kiusys_client import Client, DeadlineExceeded, RetryPolicy
from tests.client.conftest import Retries
from tests.support.aws import stored
from tests.support.contention_proxy import contention_proxy
from tests.support.fault_proxy import FaultProxy, fault_proxy
from tests.support.processes import AppServer, app_process, wait_for, workers_of

pytestmark = pytest.mark.slow

THREADS = 20
ROUTES = ("AR1133", "LA0001", "G31234")


@dataclass
class Run:
    """What the callers saw: each returned record's route and key, each raised one's."""

    returned: list[tuple[str, str]] = field(default_factory=list)
    raised: list[tuple[str, DeadlineExceeded]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def done(self) -> int:
        return len(self.returned) + len(self.raised)


def record_from_threads(url: str, calls: int, policy: RetryPolicy, run: Run) -> None:
    """`calls` records over THREADS threads, each with its own client, on ROUTES in turn."""

    def caller(number: int) -> None:
        with Client(url, policy=policy) as kiusys:
            for n in range(number, calls, THREADS):
                route = ROUTES[n % len(ROUTES)]
                try:
                    recorded = kiusys.record(route)
                except DeadlineExceeded as error:
                    with run.lock:
                        run.raised.append((route, error))
                else:
                    with run.lock:
                        run.returned.append((route, recorded.key))

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def faults_midway(server: AppServer, faults: FaultProxy, run: Run, calls: int) -> None:
    """The store's connections refused for 0.5 s at a quarter of the calls, and a worker killed
    at half of them."""
    wait_for(lambda: run.done() >= calls // 4, "a quarter of the calls", 300)
    faults.refusing(True)
    time.sleep(0.5)
    faults.refusing(False)
    wait_for(lambda: run.done() >= calls // 2, "half of the calls", 300)
    os.kill(min(workers_of(server.process)), signal.SIGKILL)


@contextmanager
def faulty_service(moto_url: str, seed: int, rate: float) -> Iterator[tuple[AppServer, FaultProxy]]:
    with (
        contention_proxy(moto_url) as contention,
        fault_proxy(contention.url, seed, rate) as faults,
    ):
        faults.faulty = False
        env = {"KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": faults.url}
        with app_process(env, workers=2) as server:
            faults.faulty = True
            yield server, faults


def test_2000_records_from_20_threads_through_faults_and_a_killed_worker_count_each_once(
    moto_tables: Any, moto_url: str, retries: Retries
) -> None:
    calls, run = 2000, Run()
    with faulty_service(moto_url, seed=38, rate=0.1) as (server, faults):
        chaos = threading.Thread(target=faults_midway, args=(server, faults, run, calls))
        chaos.start()
        record_from_threads(server.url, calls, RetryPolicy(), run)
        chaos.join()
    counts, keys = stored(moto_tables)
    print(f"faults {dict(faults.injected)}; {retries.seen} retries; stored {dict(counts)}")
    assert faults.injected["refused"] == 1
    assert sum(faults.injected.values()) > 50
    assert retries.seen > 0, "the faults reached the client, which retried"
    assert run.raised == [], "transient faults only: every call returned within its deadline"
    assert len(run.returned) == calls
    assert counts == Counter(route for route, _ in run.returned), "nothing doubled or lost"
    assert keys == {key: route for route, key in run.returned}


def test_calls_that_run_out_of_deadline_may_have_counted_and_count_once_when_resumed(
    moto_tables: Any, moto_url: str
) -> None:
    """A 1 s deadline against late answers (2.5 s) and a 30 % fault rate: some calls give up.
    Returned <= stored <= returned + raised, per route; each raised record resumed with its key
    is then counted exactly once."""
    calls, run = 400, Run()
    with faulty_service(moto_url, seed=7, rate=0.3) as (server, faults):
        record_from_threads(server.url, calls, RetryPolicy(deadline=1.0), run)
        counts, _ = stored(moto_tables)
        faults.faulty = False
        with Client(server.url) as kiusys:
            for route, error in run.raised:
                assert error.idempotency_key is not None
                kiusys.record(route, key=error.idempotency_key)
        resumed, keys = stored(moto_tables)
    returned = Counter(route for route, _ in run.returned)
    raised = Counter(route for route, _ in run.raised)
    print(f"faults {dict(faults.injected)}; {len(run.raised)} of {calls} raised")
    assert len(run.raised) > 0, "some calls ran out of their deadline"
    for route in ROUTES:
        assert returned[route] <= counts[route] <= returned[route] + raised[route], route
    assert resumed == returned + raised, "each resumed record counted once, whatever it did before"
    assert len(keys) == calls
