"""A store that every pod shares has a bad half minute: the real `kiusys-app`, 2 workers, behind
a proxy that throttles every DynamoDB call for 30 s. Readiness stays 200 on every probe (the
load balancer keeps every pod), the calls answer 503 with Retry-After, and afterwards everything
recovers with no restart. The blip begins once each worker has proven itself: until then a
worker is not ready, whatever the reason (tests/app/test_store_surprises.py)."""

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiusys_app.api.errors import TRANSIENT_DETAIL
from kiusys_app.api.routes.health import PROVEN_MESSAGE
from tests.support.aws import FAKE_CREDENTIALS
from tests.support.delaying_proxy import delaying_proxy
from tests.support.processes import app_process, wait_for, workers_of

pytestmark = pytest.mark.slow

BLIP_SECONDS = 30
ROUTE = "AR1133"
RECORD = f"/v1/routes/{ROUTE}/transactions"


def test_a_30_s_throttling_blip_keeps_every_probe_ready_and_recovers(
    moto_tables: Any, moto_url: str, tmp_path: Path
) -> None:
    with delaying_proxy(moto_url, "none", 0) as proxy:
        env = {**FAKE_CREDENTIALS, "KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": proxy.url}
        log = tmp_path / "server.log"
        with app_process(env, workers=2, log=log) as server, ThreadPoolExecutor(2) as probes:

            def both_proven() -> bool:
                """Two probes at once, on new connections, so that each worker gets asked."""
                list(probes.map(lambda _: httpx.get(f"{server.url}/readyz"), range(2)))
                return log.read_text().count(PROVEN_MESSAGE) == 2

            wait_for(both_proven, "each worker's first proof", 15, interval=0.2)
            workers = workers_of(server.process)
            assert httpx.post(f"{server.url}{RECORD}").json()["transactions"] == 1
            proxy.refusing = "ThrottlingException"
            probes, slowest, records = [], 0.0, []
            ends = time.monotonic() + BLIP_SECONDS
            while time.monotonic() < ends:
                started = time.monotonic()
                probes.append(httpx.get(f"{server.url}/readyz").status_code)  # a new connection
                slowest = max(slowest, time.monotonic() - started)
                if len(probes) % 10 == 0:
                    records.append(httpx.post(f"{server.url}{RECORD}", timeout=10))
                time.sleep(0.1)
            # A record's calls (its write, and a worker's first read of the route's day) name
            # the route; the probes' calls name a key that never exists.
            throttled = sum(ROUTE.encode() in body for body in proxy.refused)
            proxy.refusing = None
            print(f"{len(probes)} probes, slowest {slowest:.2f} s; {len(records)} records,")
            print(f"{throttled} of their calls throttled")
            assert probes == [200] * len(probes), "no probe takes a pod out"
            assert slowest < 2, "under the kubelet's probe timeout"
            assert records, "records were tried during the blip"
            for answer in records:
                assert (answer.status_code, answer.json()) == (503, {"detail": TRANSIENT_DETAIL})
                assert int(answer.headers["Retry-After"]) >= 1
            assert throttled > len(records), "each record asked the store, and was retried"
            assert httpx.post(f"{server.url}{RECORD}").json()["transactions"] == 2
            assert httpx.get(f"{server.url}/readyz").status_code == 200
            assert workers_of(server.process) == workers, "no worker was restarted"
