"""Per-day counts through the real `kiusys-app`, on both stores, on a file clock that every
worker reads: records across a midnight and a month end, 3 workers under 600 concurrent records
while the clock passes midnight, and two regions whose days add up both regions' records."""

import json
import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiusys_app.api.errors import TRANSIENT_DETAIL
from kiusys_app.stores.dynamodb.store import KEY_ATTR, ROUTE_ATTR
from kiusys_client import Client
from tests.app.test_regions import HOME, OTHER, REGIONS, service_env
from tests.app.test_usage_store import at
from tests.support.aws import FAKE_CREDENTIALS, KEYS_TABLE, TABLE, dynamodb, fresh_tables
from tests.support.file_clock import CLOCK_FILE_SETTING, TARGET, FileClock
from tests.support.processes import KIUSYS_APP, app_process, app_server, free_port
from tests.support.replicator import Replicator

pytestmark = pytest.mark.slow

EVERY_DAY = "from=2026-01-01&to=2026-12-31"
CSV = {"Accept": "text/csv"}
# The service with a store that fails a usage call half-way (served, never imported here).
CUT_TARGET = "tests.support.cut_usage_app:app"


@pytest.fixture
def clock(tmp_path: Path) -> FileClock:
    clock = FileClock(tmp_path / "clock")
    clock.set(at("2026-11-30T23:59:50"))
    return clock


def store_env(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    if store_kind == "sqlite":
        return {"KIUSYS_STORE": "sqlite", "KIUSYS_SQLITE_PATH": str(tmp_path / "c.sqlite3")}
    request.getfixturevalue("aws")
    return service_env(request.getfixturevalue("moto_url"), HOME, ())


@pytest.fixture
def service(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest, clock: FileClock
) -> Iterator[str]:
    env = {**store_env(store_kind, tmp_path, request), CLOCK_FILE_SETTING: str(clock.path)}
    with app_server(env, workers=3, target=TARGET) as url:
        yield url


def post(url: str, route: str, key: str | None = None) -> int:
    headers = {"Idempotency-Key": key} if key else {}
    return httpx.post(f"{url}/v1/routes/{route}/transactions", headers=headers).status_code


def usage(url: str, query: str) -> Any:
    answer = httpx.get(f"{url}/v1/usage?{query}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def assert_days_add_up(url: str, routes: list[str]) -> None:
    for route in routes:
        days = usage(url, f"route={route}&{EVERY_DAY}")["total"]
        assert days == httpx.get(f"{url}/v1/routes/{route}/transactions").json()["transactions"]


# Each day's records: route, idempotency key, and the answer (a retried key's is a replay).
DAYS_RECORDS = [
    ("AR1133", None, 201),
    ("AR1133", "order-{day}", 201),
    ("AR1133", "order-{day}", 200),
    ("AR0001", None, 201),
    ("AR1133", None, 201),
    ("AR0001", None, 201),
    ("LA0001", "order-la-{day}", 201),
]


def test_each_day_counts_what_was_acknowledged_on_it(service: str, clock: FileClock) -> None:
    for day, moment in (("2026-11-30", "T23:59:59"), ("2026-12-01", "T00:00:00")):
        clock.set(at(f"{day}{moment}"))
        for route, key, status in DAYS_RECORDS:
            assert post(service, route, key and key.format(day=day)) == status
    assert post(service, "AR1133", "order-2026-11-30") == 200, "yesterday's key: a replay"
    answer = usage(service, "airline=AR&from=2026-11-01&to=2026-12-31")
    assert answer["routes"] == {
        "AR0001": {"2026-11-30": 2, "2026-12-01": 2},
        "AR1133": {"2026-11-30": 3, "2026-12-01": 3},
    }
    assert answer["total"] == 10
    with Client(service) as kiusys:  # the official client reads the same
        read = kiusys.usage("2026-11-01", "2026-12-31", airline="AR")
    assert (read.routes, read.total) == (answer["routes"], 10)
    la = usage(service, "route=LA0001&from=2026-11-01&to=2026-12-31")["routes"]
    assert la == {"LA0001": {"2026-11-30": 1, "2026-12-01": 1}}
    november = usage(service, "airline=AR&from=2026-11-01&to=2026-11-30&granularity=month")
    assert november["routes"] == {"AR0001": {"2026-11": 2}, "AR1133": {"2026-11": 3}}
    assert_days_add_up(service, ["AR1133", "AR0001", "LA0001"])


SENDERS = 30
RECORDS_PER_SENDER = 20


def test_600_records_on_3_workers_while_the_clock_passes_midnight(
    service: str, clock: FileClock
) -> None:
    clock.set(at("2026-11-30T23:59:59"))
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def sender(number: int) -> None:
        with httpx.Client(base_url=service, timeout=30.0) as http:
            for n in range(RECORDS_PER_SENDER):
                key = uuid.uuid4().hex if (number + n) % 4 == 0 else None
                headers = {"Idempotency-Key": key} if key else {}
                status = http.post("/v1/routes/AR1133/transactions", headers=headers).status_code
                with lock:
                    statuses[status] += 1

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    while sum(statuses.values()) < SENDERS * RECORDS_PER_SENDER // 2:
        threading.Event().wait(0.005)
    clock.set(at("2026-12-01T00:00:00"))
    for thread in threads:
        thread.join()
    assert statuses[201] == SENDERS * RECORDS_PER_SENDER, statuses
    days = usage(service, f"route=AR1133&{EVERY_DAY}")["routes"]["AR1133"]
    print(f"days={days}")
    assert sum(days.values()) == 600
    assert set(days) == {"2026-11-30", "2026-12-01"}
    assert httpx.get(f"{service}/v1/routes/AR1133/transactions").json()["transactions"] == 600


@pytest.mark.parametrize("store_kind", ["dynamodb"])
def test_two_regions_days_add_up_both_regions_records(
    store_kind: str, aws: Any, moto_url: str, tmp_path: Path
) -> None:
    fresh_tables(dynamodb(moto_url, region=OTHER))
    replicator = Replicator(moto_url, REGIONS, {TABLE: ROUTE_ATTR, KEYS_TABLE: KEY_ATTR})
    clock = FileClock(tmp_path / "clock")
    clock.set(at("2026-11-30T23:00:00"))
    acknowledged: Counter[str] = Counter()
    with ExitStack() as stack:
        urls = [
            stack.enter_context(
                app_server(
                    {**service_env(moto_url, region, REGIONS), CLOCK_FILE_SETTING: str(clock.path)},
                    target=TARGET,
                )
            )
            for region in REGIONS
        ]
        with replicator.running():
            for day in ("2026-11-30", "2026-12-01", "2026-12-02"):
                clock.set(at(f"{day}T12:00:00"))

                def region_sends(url: str, records: int) -> None:
                    for n in range(records):
                        assert post(url, "AR1133", uuid.uuid4().hex if n % 2 else None) == 201

                threads = [
                    threading.Thread(target=region_sends, args=(url, 20 + 10 * n))
                    for n, url in enumerate(urls)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                acknowledged[day] += 20 + 30
        answers = [usage(url, f"route=AR1133&{EVERY_DAY}")["routes"]["AR1133"] for url in urls]
    print(f"acknowledged={dict(acknowledged)} answers={answers} lost={replicator.lost}")
    assert answers == [dict(acknowledged)] * 2
    assert replicator.lost == 0


def streamed_lines(http: httpx.Client, path: str) -> tuple[list[str], bool]:
    """The lines of a streamed CSV answer, and whether it ended before its last chunk."""
    lines: list[str] = []
    try:
        with http.stream("GET", path, headers=CSV) as answer:
            assert answer.status_code == 200
            lines.extend(answer.iter_lines())
    except httpx.RemoteProtocolError:
        return lines, True
    return lines, False


def test_a_store_failure_half_way_cuts_the_csv_and_is_a_json_503_before_it(tmp_path: Path) -> None:
    env = {"KIUSYS_STORE": "sqlite", "KIUSYS_SQLITE_PATH": str(tmp_path / "c.sqlite3")}
    log = tmp_path / "server.log"
    with (
        app_process(env, target=CUT_TARGET, log=log) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        for n in range(60):
            assert http.post(f"/v1/routes/AR{n:04d}/transactions").status_code == 201
        rows, cut = streamed_lines(http, f"/v1/usage?airline=AR&{EVERY_DAY}")
        assert cut, "the answer ends before its last chunk"
        assert rows[0] == "route,period,transactions"
        assert 1 < len(rows) <= 51, "the first 50 routes' rows, and no more"
        whole = http.get(f"/v1/usage?airline=AR&{EVERY_DAY}")
        assert (whole.status_code, whole.json()) == (503, {"detail": TRANSIENT_DETAIL})
        assert http.get("/v1/routes/AR0001/transactions").status_code == 200, "still serving"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    warnings = [line["message"] for line in lines if line["level"] == "warning"]
    assert warnings[-2:] == ["usage answer cut short", "store unavailable"]
    assert not [line for line in lines if "exception" in line], "no traceback"


# The invoice run: `kiusys-app usage`, on the store the settings name.


def invoice(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KIUSYS_APP, "usage", *args],
        env={"PATH": "", **FAKE_CREDENTIALS, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_invoice_run_writes_the_months_csv_as_the_api_answers_it(
    service: str, clock: FileClock, store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    for moment in ("2026-10-31T23:59:59", "2026-11-01T00:00:00", "2026-11-30T23:59:59"):
        clock.set(at(moment))
        for route in ("AR1133", "AR0001", "AR1133", "LA0001"):
            assert post(service, route) == 201
    clock.set(at("2026-12-01T00:00:00"))
    assert post(service, "AR1133") == 201
    env = store_env(store_kind, tmp_path, request)
    output = tmp_path / "AR-2026-11.csv"
    made = invoice(env, "--airline", "ar", "--month", "2026-11", "--output", str(output))
    assert made.returncode == 0, made.stderr
    november = httpx.get(
        f"{service}/v1/usage?airline=AR&from=2026-11-01&to=2026-11-30", headers=CSV
    ).text
    assert made.stdout == ""
    assert output.read_bytes().decode() == november
    assert november.splitlines() == [
        "route,period,transactions",
        "AR0001,2026-11-01,1",
        "AR0001,2026-11-30,1",
        "AR1133,2026-11-01,2",
        "AR1133,2026-11-30,2",
    ]
    by_month = invoice(env, "--airline", "AR", "--month", "2026-11", "--granularity", "month")
    assert by_month.stdout.splitlines()[1:] == ["AR0001,2026-11,2", "AR1133,2026-11,4"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--airline", "AR", "--month", "2026-13"], "invalid argument: a month is YYYY-MM"),
        (["--airline", "A", "--month", "2026-11"], "invalid argument: an airline is"),
        (["--airline", "AR", "--from", "2026-11-01"], "invalid argument: --from needs --to"),
        (["--airline", "AR", "--from", "2026-11-30", "--to", "2026-11-01"], "is after to"),
        (["--airline", "AR", "--from", "2025-01-01", "--to", "2026-11-01"], "at most 366"),
    ],
)
def test_a_bad_argument_is_one_json_line_and_exit_3(
    tmp_path: Path, args: list[str], says: str
) -> None:
    database = tmp_path / "c.sqlite3"
    made = invoice({"KIUSYS_STORE": "sqlite", "KIUSYS_SQLITE_PATH": str(database)}, *args)
    assert made.returncode == 3
    (line,) = made.stderr.splitlines()
    assert says in json.loads(line)["message"]
    assert made.stdout == ""
    assert not database.exists()


def test_an_invoice_run_never_makes_an_empty_store_and_a_failed_store_writes_nothing(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere" / "c.sqlite3"
    made = invoice(
        {"KIUSYS_STORE": "sqlite", "KIUSYS_SQLITE_PATH": str(missing)},
        *("--airline", "AR", "--month", "2026-11"),
    )
    assert (made.returncode, made.stdout) == (3, "")
    assert "no such file" in json.loads(made.stderr)["message"]
    assert not missing.parent.exists()
    output = tmp_path / "AR-2026-11.csv"
    refused = invoice(
        {
            **FAKE_CREDENTIALS,
            "KIUSYS_STORE": "dynamodb",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        },
        *("--airline", "AR", "--month", "2026-11", "--output", str(output)),
    )
    assert (refused.returncode, refused.stdout) == (1, "")
    errors = [json.loads(line) for line in refused.stderr.splitlines()]
    assert errors[-1]["level"] == "error"
    assert errors[-1]["message"].startswith("usage not read: ")
    assert not [line for line in errors if "exception" in line], "no traceback"
    assert list(tmp_path.iterdir()) == [], "no file, whole or part"
