"""The fault campaign: 2 workers on moto, behind DynamoDB's conflict rules (the contention
layer) and a seeded draw of faults (throttling, cuts and 500s before and after the write was
applied, late answers), with connections refused for a while and a worker killed with SIGKILL
mid-run. Then, from moto's own state, per route:

- plain records acknowledged <= stored <= acknowledged + the plain answers that claimed nothing;
- every acknowledged key is stored, for its route, and after the clients retry the keys that
  were not acknowledged, the route's count is its plain records plus each key once;
- per route and UTC day (the service's clock passes midnight mid-run), records acknowledged on
  that day <= counted in it <= acknowledged + the answers that claimed nothing + the records in
  flight at midnight, and the days add up to the route's count;
- no answer is a 500, and every answer that is not 2xx is JSON;
- readiness is back once the faults stop, with both workers.

`make test` runs one short campaign; `make chaos` runs 5 seeds of 60 s each (KIUSYS_CHAOS_SEEDS,
KIUSYS_CHAOS_SECONDS).
"""

import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiusys_app.stores import day_of
from tests.app.test_usage_store import at
from tests.support.aws import stored
from tests.support.contention_proxy import contention_proxy
from tests.support.fault_proxy import fault_proxy
from tests.support.file_clock import CLOCK_FILE_SETTING, TARGET, FileClock
from tests.support.processes import AppServer, app_process, wait_for, workers_of

pytestmark = pytest.mark.slow

SEEDS = [int(seed) for seed in os.environ.get("KIUSYS_CHAOS_SEEDS", "1").split()]
SECONDS = float(os.environ.get("KIUSYS_CHAOS_SECONDS", "15"))
WORKERS = 2
CLIENTS = 12
ROUTES = ("AR1133", "LA0001", "G31234")
BEFORE_MIDNIGHT, AFTER_MIDNIGHT = at("2026-11-30T23:59:59"), at("2026-12-01T00:00:00")


@dataclass(frozen=True)
class Sent:
    route: str
    key: str | None
    status: int  # 0: the connection dropped with no answer
    json_error: bool  # not 2xx, and a JSON body
    day: str | None = None  # the service's day when it was sent and answered; None: it changed

    @property
    def acknowledged(self) -> bool:
        return self.status in (200, 201)


def send(http: httpx.Client, route: str, key: str | None, clock: FileClock | None = None) -> Sent:
    headers = {"Idempotency-Key": key} if key else {}
    sent_on = day_of(clock()) if clock else None
    try:
        response = http.post(f"/v1/routes/{route}/transactions", headers=headers)
    except httpx.TransportError:
        status, json_error = 0, False
    else:
        status, json_error = response.status_code, False
        if status >= 300:
            json_error = response.headers.get("content-type") == "application/json"
            response.json()  # raises unless it is JSON
    day = sent_on if clock and day_of(clock()) == sent_on else None
    return Sent(route, key, status, json_error, day)


def clients(url: str, seed: int, until: float, clock: FileClock) -> list[Sent]:
    """CLIENTS threads, each sending plain and keyed records to random routes until `until`."""
    sent: list[Sent] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        plan = random.Random(f"{seed}-{number}")
        with httpx.Client(base_url=url, timeout=30.0) as http:
            for n in range(10**6):
                if time.monotonic() > until:
                    return
                key = f"{seed}-{number}-{n}" if plan.random() < 0.5 else None
                outcome = send(http, plan.choice(ROUTES), key, clock)
                with lock:
                    sent.append(outcome)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent


def faults_over_time(
    server: AppServer, faults: Any, seed: int, until: float, clock: FileClock
) -> None:
    """Connections refused for 0.5 s, one worker killed, and midnight, at seeded moments."""
    plan = random.Random(seed)
    started = time.monotonic()
    moments = sorted(
        [
            ("refuse", plan.uniform(0.2, 0.5)),
            ("kill", plan.uniform(0.3, 0.7)),
            ("midnight", plan.uniform(0.3, 0.7)),
        ],
        key=lambda m: m[1],
    )
    for what, share in moments:
        time.sleep(max(0.0, started + share * (until - started) - time.monotonic()))
        if what == "refuse":
            faults.refusing(True)
            time.sleep(0.5)
            faults.refusing(False)
        elif what == "midnight":
            clock.set(AFTER_MIDNIGHT)
        else:
            os.kill(min(workers_of(server.process)), signal.SIGKILL)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_fault_campaign_loses_nothing_doubles_nothing_and_answers_no_500(
    seed: int, moto_tables: Any, moto_url: str, tmp_path: Path
) -> None:
    aws = moto_tables
    clock = FileClock(tmp_path / "clock")
    clock.set(BEFORE_MIDNIGHT)
    with (
        contention_proxy(moto_url) as contention,
        fault_proxy(contention.url, seed) as faults,
    ):
        faults.faulty = False
        env = {
            "KIUSYS_STORE": "dynamodb",
            "AWS_ENDPOINT_URL": faults.url,
            CLOCK_FILE_SETTING: str(clock.path),
        }
        with app_process(env, workers=WORKERS, target=TARGET) as server:
            faults.faulty = True
            until = time.monotonic() + SECONDS
            chaos = threading.Thread(
                target=faults_over_time, args=(server, faults, seed, until, clock)
            )
            chaos.start()
            sent = clients(server.url, seed, until, clock)
            chaos.join()
            faults.faulty = False
            wait_for(lambda: len(workers_of(server.process)) == WORKERS, "the worker's respawn")
            wait_for(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, "readiness", 15)
            counts, keys = stored(aws)
            days = days_of(server.url)
            retried = retry_unacknowledged_keys(server.url, sent)
            counts_after, keys_after = stored(aws)
    statuses = Counter(outcome.status for outcome in sent)
    print(
        f"seed {seed}: {len(sent)} records, statuses {dict(statuses)}; faults "
        f"{dict(faults.injected)}; conflicts {dict(contention.refused)}; {len(retried)} keys retried"
    )
    assert faults.injected["refused"] == 1
    assert sum(faults.injected.values()) > 10
    assert 500 not in statuses
    assert all(o.json_error for o in sent if o.status >= 300), "every refusal is JSON"
    assert statuses.keys() <= {201, 503, 0}, "a record, a refusal to retry, or a killed worker"
    assert all(o.acknowledged for o in retried), "every key is acknowledged once retried"
    for route in ROUTES:
        plain = [o for o in sent if o.route == route and o.key is None]
        acknowledged = sum(o.acknowledged for o in plain)
        unclaimed = len(plain) - acknowledged
        route_keys = [key for key, at in keys.items() if at == route]
        stored_plain = counts.get(route, 0) - len(route_keys)
        assert acknowledged <= stored_plain <= acknowledged + unclaimed, route
        keyed = [o for o in sent if o.route == route and o.key]
        acknowledged_keys = {o.key for o in keyed if o.acknowledged}
        assert acknowledged_keys <= set(route_keys), f"{route}: acknowledged keys are stored"
        all_keys = {o.key for o in keyed}
        assert {key for key, at in keys_after.items() if at == route} == all_keys
        assert counts_after.get(route, 0) == stored_plain + len(all_keys), "each key once"
        assert sum(days[route].values()) == counts.get(route, 0), f"{route}: days add up"
        in_flight_at_midnight = sum(o.day is None for o in sent if o.route == route)
        for day in (day_of(BEFORE_MIDNIGHT), day_of(AFTER_MIDNIGHT)):
            on_day = [o for o in sent if o.route == route and o.day == day]
            acknowledged_on_day = sum(o.acknowledged for o in on_day)
            unclaimed_on_day = len(on_day) - acknowledged_on_day
            counted = days[route].get(day, 0)
            assert (
                acknowledged_on_day
                <= counted
                <= acknowledged_on_day + unclaimed_on_day + in_flight_at_midnight
            ), (route, day)


def days_of(url: str) -> dict[str, dict[str, int]]:
    """Each route's counts per day, as the usage call answers them."""
    query = "&".join(f"route={route}" for route in ROUTES)
    answer = httpx.get(f"{url}/v1/usage?{query}&from=2026-11-30&to=2026-12-01")
    assert answer.status_code == 200, answer.text
    routes: dict[str, dict[str, int]] = answer.json()["routes"]
    return routes


def retry_unacknowledged_keys(url: str, sent: list[Sent]) -> list[Sent]:
    """What a client does after the faults: send each keyed record that was not acknowledged
    again, with its key, until it is."""
    retried = []
    with httpx.Client(base_url=url, timeout=30.0) as http:
        for outcome in sent:
            if outcome.key is None or outcome.acknowledged:
                continue
            again = send(http, outcome.route, outcome.key)
            for _ in range(20):
                if again.acknowledged:
                    break
                time.sleep(0.2)
                again = send(http, outcome.route, outcome.key)
            retried.append(again)
    return retried
