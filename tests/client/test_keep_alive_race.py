"""The keep-alive race, behind a proxy that adds 50 ms each way: a record sent after its
connection idled 4.85 to 5.05 s can cross the server's close (at 5.00 s) on the wire. The
client drops pooled connections at 4 s idle, so it never sends on one the server is closing:
no error reaches the caller, and no retry is needed to hide one. So does a bare httpx client
configured as docs/api.md says, with the idle limit that the server's `Keep-Alive: timeout=4`
names. A bare httpx client beside them (its pool keeps connections 5 s, no retries) shows that
the race is there to be lost."""

import random
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from kiusys_app.serve import HEADER_READ_TIMEOUT_MS
from kiusys_client import Client
from kiusys_client._protocol import KEEPALIVE_EXPIRY
from tests.client.conftest import Retries
from tests.support.latency_proxy import latency_proxy
from tests.support.processes import app_process

pytestmark = pytest.mark.slow

CALLERS = 40
ONE_WAY = 0.05
ROUTE = "AR1133"


def idle_then_record(record: Callable[[], object], idle: float, errors: list[str]) -> None:
    """One record to open the pooled connection, `idle` seconds, then one on it."""
    record()
    time.sleep(idle)
    try:
        record()
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")


def record_with(client: Client) -> Callable[[], object]:
    return lambda: client.record(ROUTE)


def post_with(client: httpx.Client) -> Callable[[], object]:
    return lambda: client.post(f"/v1/routes/{ROUTE}/transactions").raise_for_status()


def hinted_idle_limit(url: str) -> float:
    """The idle limit a client reads from the server's hint (`Keep-Alive: timeout=N`)."""
    hint = httpx.get(f"{url}/healthz").headers["Keep-Alive"]
    match = re.fullmatch(r"timeout=(\d+)", hint)
    assert match, hint
    return float(match[1])


def in_parallel(callers: list[tuple[Callable[[], object], float, list[str]]]) -> None:
    threads = [threading.Thread(target=idle_then_record, args=caller) for caller in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_the_pool_closes_before_the_server_does_by_more_than_a_round_trip() -> None:
    assert HEADER_READ_TIMEOUT_MS / 1000 - KEEPALIVE_EXPIRY >= 10 * 2 * ONE_WAY


def test_records_after_4_85_to_5_05_s_idle_behind_a_50_ms_path_see_no_error(
    tmp_path: Path, retries: Retries
) -> None:
    draw = random.Random(38)
    idles = [draw.uniform(4.85, 5.05) for _ in range(CALLERS)]
    with (
        app_process({"KIUSYS_SQLITE_PATH": str(tmp_path / "counts.sqlite3")}) as server,
        latency_proxy(*server.url.removeprefix("http://").split(":"), ONE_WAY) as address,
    ):
        url = f"http://{address}"
        hinted = httpx.Limits(keepalive_expiry=hinted_idle_limit(url))
        ours = [Client(url) for _ in idles]
        honouring = [httpx.Client(base_url=url, limits=hinted) for _ in idles]
        bare = [httpx.Client(base_url=url) for _ in idles]
        our_errors: list[str] = []
        honouring_errors: list[str] = []
        bare_errors: list[str] = []
        callers = [(record_with(c), idle, our_errors) for c, idle in zip(ours, idles, strict=True)]
        callers += [
            (post_with(c), idle, honouring_errors) for c, idle in zip(honouring, idles, strict=True)
        ]
        callers += [(post_with(c), idle, bare_errors) for c, idle in zip(bare, idles, strict=True)]
        in_parallel(callers)
        for client in [*ours, *honouring, *bare]:
            client.close()
    print(
        f"ours: {len(our_errors)} errors, {retries.seen} retries; httpx honouring the hint: "
        f"{len(honouring_errors)} errors; bare httpx: {len(bare_errors)} errors {bare_errors}"
    )
    assert len(bare_errors) > 0, "the race is there: a client that waits 5 s loses some"
    assert our_errors == []
    assert honouring_errors == []
    assert retries.seen == 0, "no record needed a retry to hide the race"
