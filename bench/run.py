"""`make bench`: each case beside a bare FastAPI endpoint, measured with wrk in one run.

The service runs with every per-request feature on (an API key on each call, the JSON access
log, metrics, the request limits). DynamoDB cases call an instant DynamoDB stand-in, so they
measure the service's own cost, not an emulator's; a moto pass afterwards checks exactness
under 3 workers, for ours and for the seed's query+put. Ablation cases take one feature out.
The contention cases send 400 records to one route and to 400 routes through the contention
layer (DynamoDB's transaction conflicts, which moto lacks) and compare their rates; the item
limit cases send 1,000 plain records to one route and to 1,000 routes behind a per-item write
limit of 200 a second (a partition's limit, which moto lacks, scaled to this machine).

Usage: python -m bench.run   (BENCH_DURATION seconds per run, BENCH_RUNS runs per case)
Writes a Markdown table to stdout and JSON to .bench/results.json.
"""

import asyncio
import json
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from kiusys_app.stores.sqlite import SQLiteStore
from tests.support.aws import FAKE_CREDENTIALS, create_tables, dynamodb
from tests.support.contention_proxy import contention_proxy
from tests.support.item_limit_proxy import item_limit_proxy
from tests.support.processes import (
    KIUSYS_APP,
    REPO_ROOT,
    dynamodb_standin,
    free_port,
    moto_server,
    running,
)

CONNECTIONS = 32
BARE = "bare FastAPI (no work), on uvicorn"
BARE_APP = "bench.bare_app:app"
# The same endpoint under another name, so that `serving` gives it kiusys-app's server.
BARE_ON_OURS = "bench.bare_app:same_app"
SEED_APP = "bench.seed_app:app"
UVICORN_APPS = (BARE_APP, SEED_APP)
DURATION = int(os.environ.get("BENCH_DURATION", "5"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WARM_UP = 2
DISTINCT_ROUTES = 100_000
BENCH_DIR = Path(__file__).resolve().parent
OUTPUT = REPO_ROOT / ".bench"
API_KEY = "bench-key-0123456789abcdef"
# The service's settings for every case, and what wrk then sends.
WITH_KEYS = {"KIUSYS_API_KEYS": API_KEY}
WRK_KEY = {"API_KEY": API_KEY}
ABLATIONS = ("access-log", "metrics", "api-key", "limits")


@dataclass
class WrkRun:
    requests: int
    non_2xx: int
    socket_errors: int
    rps: float
    p50_ms: float
    p99_ms: float


@dataclass
class Case:
    name: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    ratio: float | None = None
    cpu_ratio: float | None = None
    # From the exactness pass after the timed runs: a fixed number of records, each awaited.
    sent: int | None = None
    acknowledged: int | None = None
    counted: int | None = None
    cpu_us_per_request: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool | None:
        return None if self.counted is None else self.counted == self.acknowledged


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency(output: str, percentile: str) -> float:
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    assert match, output
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def wrk(
    url: str,
    duration: int,
    script: str = "post.lua",
    env: Mapping[str, str] | None = None,
    connections: int = CONNECTIONS,
) -> WrkRun:
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(BENCH_DIR / script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    out = result.stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkRun(
        requests=requests,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_latency(out, "50"),
        p99_ms=_latency(out, "99"),
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (the workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


@dataclass
class Target:
    """One case's server and what wrk sends it."""

    name: str
    url: str
    pid: int
    script: str = "post.lua"
    env: Mapping[str, str] = field(default_factory=lambda: WRK_KEY)


def measure_side_by_side(targets: list[Target]) -> list[Case]:
    """Every server is up at once; each round runs wrk against each in turn, so that a slow
    spell of this shared machine touches every case alike. A warm-up each, then RUNS rounds;
    the median run by rps gives the figures, CPU per request is the median of the runs'."""
    failures = {t.name: _failures(_warm(t)) for t in targets}
    runs: dict[str, list[tuple[WrkRun, float]]] = {t.name: [] for t in targets}
    for round_number in range(RUNS):
        print(f"  round {round_number + 1} of {RUNS}", file=sys.stderr)
        for target in targets:
            cpu_before = cpu_seconds(target.pid)
            run = wrk(target.url, DURATION, target.script, target.env)
            cpu = cpu_seconds(target.pid) - cpu_before
            runs[target.name].append((run, cpu / run.requests * 1e6 if run.requests else 0.0))
    cases = []
    for target in targets:
        measured = runs[target.name]
        median, _ = sorted(measured, key=lambda pair: pair[0].rps)[len(measured) // 2]
        case = Case(
            name=target.name,
            rps=round(statistics.median(run.rps for run, _ in measured), 1),
            p50_ms=median.p50_ms,
            p99_ms=median.p99_ms,
            cpu_us_per_request=round(statistics.median(cpu for _, cpu in measured), 1),
        )
        errors = failures[target.name] + sum(_failures(run) for run, _ in measured)
        if errors:
            case.notes.append(f"{errors} non-2xx or socket errors")
        print(f"  {case.name}: {case.rps} rps, {case.cpu_us_per_request} µs/req", file=sys.stderr)
        cases.append(case)
    return cases


def _warm(target: Target) -> WrkRun:
    return wrk(target.url, WARM_UP, target.script, target.env)


def _failures(run: WrkRun) -> int:
    return run.non_2xx + run.socket_errors


EXACT_CLIENTS = 32
EXACT_RECORDS_PER_CLIENT = 25


def exactness_pass(case: Case, url: str, paths: list[str], total: Callable[[], int]) -> None:
    """Send a fixed number of records and await every answer, then compare with the store.

    wrk stops with requests still in flight, which the server may count but wrk never sees
    answered, so its totals cannot be compared with the store; this pass can.
    """
    before = settled(total)
    acknowledged = 0
    lock = threading.Lock()

    def client(offset: int) -> None:
        nonlocal acknowledged
        with httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": API_KEY}) as http:
            for n in range(EXACT_RECORDS_PER_CLIENT):
                path = paths[(offset * EXACT_RECORDS_PER_CLIENT + n) % len(paths)]
                if http.post(path).is_success:
                    with lock:
                        acknowledged += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(EXACT_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    case.sent = EXACT_CLIENTS * EXACT_RECORDS_PER_CLIENT
    case.acknowledged = acknowledged
    case.counted = settled(total) - before
    if case.counted < acknowledged:
        case.notes.append(f"{acknowledged - case.counted} acknowledged records lost")


def settled(total: Callable[[], int]) -> int:
    """The total once it stops moving: the server may still be working off wrk's last requests."""
    previous = total()
    while True:
        time.sleep(0.5)
        current = total()
        if current == previous:
            return current
        previous = current


@contextmanager
def serving(app: str, env: Mapping[str, str], workers: int = 1) -> Iterator[tuple[str, int]]:
    """`app` served as the seed served it (uvicorn) when it is not ours; ours, and the ablated
    variants of ours, by `kiusys-app`, as production serves them."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if app in UVICORN_APPS:
        args = [
            sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    else:
        args = [
            KIUSYS_APP, "--target", app, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--metrics-port", str(free_port()),
        ]  # fmt: skip
    ready = f"{url}/openapi.json"
    with running(args, ready, env, log=OUTPUT / "servers.log") as process:
        yield url, process.pid


def route_name(n: int) -> str:
    """The n-th of the distinct routes, as distinct_routes.lua spells it: AAA0000, AAA0001, …"""
    block = n // 10000
    letters = "".join(chr(65 + block // 26**i % 26) for i in (2, 1, 0))
    return f"{letters}{n % 10000:04d}"


def many_routes_database(workdir: Path) -> Path:
    """A store that already holds DISTINCT_ROUTES routes."""
    many = workdir / "many.sqlite3"
    asyncio.run(SQLiteStore(many).aclose())
    with sqlite3.connect(many) as conn:
        conn.executemany(
            "INSERT INTO counters (route, record) VALUES (?, 0)",
            ((route_name(n),) for n in range(DISTINCT_ROUTES)),
        )
    return many


def all_routes(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        return int(conn.execute("SELECT SUM(record) FROM counters").fetchone()[0])


def hot_route(url: str) -> int:
    answer = httpx.get(f"{url}/get-transaction/AR1133", headers={"X-API-Key": API_KEY})
    return int(answer.json()["AR1133"])


RECORD = "record (SQLite, 1 route)"
SPREAD = f"record (SQLite, {DISTINCT_ROUTES:,} routes)"


def timed_cases(workdir: Path, standin: str) -> list[Case]:
    """Every timed case side by side; the SQLite record servers also get an exactness pass."""
    sqlite = {"KIUSYS_STORE": "sqlite", "KIUSYS_SQLITE_PATH": str(workdir / "one.sqlite3")}
    sqlite |= WITH_KEYS
    many = many_routes_database(workdir)
    spread_env = {**sqlite, "KIUSYS_SQLITE_PATH": str(many)}
    dynamodb = {"KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": standin, **WITH_KEYS}
    servers: list[tuple[str, str, Mapping[str, str], str, str, Mapping[str, str]]] = [
        (BARE, BARE_APP, {}, "/noop/AR1133", "post.lua", {}),
        (
            "bare FastAPI (no work), on kiusys-app's server",
            BARE_ON_OURS,
            {},
            "/noop/AR1133",
            "post.lua",
            {},
        ),
        (RECORD, "kiusys_app.main:app", sqlite, "/save-transaction/AR1133", "post.lua", WRK_KEY),
        (
            "check (SQLite)",
            "kiusys_app.main:app",
            {**sqlite, "KIUSYS_SQLITE_PATH": str(workdir / "check.sqlite3")},
            "/v1/routes/AR1133/transactions",
            "get.lua",
            WRK_KEY,
        ),
        (
            SPREAD,
            "kiusys_app.main:app",
            spread_env,
            "",
            "distinct_routes.lua",
            {**WRK_KEY, "ROUTES": str(DISTINCT_ROUTES)},
        ),
        *(
            (
                f"{RECORD}, without {feature}",
                "bench.ablated_app:app",
                {**sqlite, "KIUSYS_SQLITE_PATH": str(workdir / f"{feature}.sqlite3")}
                | {"BENCH_WITHOUT": feature},
                "/save-transaction/AR1133",
                "post.lua",
                WRK_KEY,
            )
            for feature in ABLATIONS
        ),
        *(
            (
                f"record (DynamoDB stand-in, {label})",
                app,
                dynamodb,
                "/save-transaction/AR1133",
                "post.lua",
                WRK_KEY,
            )
            for label, app in DYNAMODB_APPS
        ),
    ]
    with ExitStack() as stack:
        targets = []
        urls = {}
        for name, app, env, path, script, wrk_env in servers:
            url, pid = stack.enter_context(serving(app, env))
            urls[name] = url
            targets.append(Target(name, f"{url}{path}", pid, script, wrk_env))
        cases = measure_side_by_side(targets)
        by_name = {case.name: case for case in cases}
        exactness_pass(
            by_name[RECORD],
            urls[RECORD],
            ["/save-transaction/AR1133"],
            partial(hot_route, urls[RECORD]),
        )
        paths = [f"/save-transaction/{route_name(n)}" for n in range(0, DISTINCT_ROUTES, 97)]
        exactness_pass(by_name[SPREAD], urls[SPREAD], paths, partial(all_routes, many))
    with sqlite3.connect(many) as conn:
        routes = conn.execute("SELECT COUNT(*) FROM counters").fetchone()[0]
    if routes != DISTINCT_ROUTES:
        by_name[SPREAD].notes.append(f"{routes} routes in the table, not {DISTINCT_ROUTES}")
    return cases


DYNAMODB_APPS = (("ours", "kiusys_app.main:app"), ("seed's query+put", SEED_APP))


def moto_exactness() -> list[Case]:
    """Ours and the seed's with 3 workers on moto, served single-threaded: an exact oracle."""
    cases = []
    for label, app in DYNAMODB_APPS:
        with moto_server() as emulator:
            client = dynamodb(emulator.url)
            create_tables(client)
            env = {"KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": emulator.url, **WITH_KEYS}
            case = Case(f"exactness (DynamoDB on moto, {label}, 3 workers)")
            with serving(app, env, workers=3) as (url, _):
                exactness_pass(case, url, ["/save-transaction/AR1133"], partial(hot_item, client))
            cases.append(case)
    return cases


CONTENDED_CLIENTS = 50
CONTENDED_RECORDS = 400
CONTENDED_ROUNDS = 3


def contention_cases() -> list[Case]:
    """400 records from 50 clients, 3 workers on moto behind DynamoDB's conflict rules (each
    transaction in flight 10 ms): all on one route, and spread over 400 routes, in alternate
    rounds on empty tables; keyed, then plain. Each hot case's notes give its rate over the
    spread one's."""
    cases = []
    with moto_server() as emulator, contention_proxy(emulator.url, hold=0.01) as proxy:
        client = dynamodb(emulator.url)
        create_tables(client)
        for kind in ("keyed", "plain"):
            cases += hot_and_spread(
                client,
                proxy.url,
                kind,
                CONTENDED_RECORDS,
                CONTENDED_RECORDS,
                "contention layer",
            )
            cases[-2].notes.append(f"conflicts refused so far: {dict(proxy.refused)}")
    return cases


# The per-item write limit of `make bench`: under what this machine's moto can take, so that one
# route can exceed it (DynamoDB's is 1,000 write units a second).
BENCH_ITEM_WRITES_PER_SECOND = 200
LIMITED_RECORDS = 1000


def item_limit_cases() -> list[Case]:
    """1,000 plain records from 50 clients, 3 workers on moto behind a per-item limit of 200
    writes a second: all on one route, and spread over 1,000 routes. (No transactions: the
    conflict rules would not act.)"""
    with (
        moto_server() as emulator,
        item_limit_proxy(emulator.url, BENCH_ITEM_WRITES_PER_SECOND) as limit,
    ):
        client = dynamodb(emulator.url)
        create_tables(client)
        cases = hot_and_spread(
            client,
            limit.url,
            "plain",
            LIMITED_RECORDS,
            LIMITED_RECORDS,
            f"per-item limit {BENCH_ITEM_WRITES_PER_SECOND}/s",
        )
        cases[0].notes.append(f"throttled by the limit: {dict(limit.refused)}")
    return cases


def hot_and_spread(
    client: Any, endpoint: str, kind: str, records: int, routes: int, layer: str
) -> list[Case]:
    """`records` records of `kind` (keyed or plain) through `endpoint`, 3 workers: all on one
    route, and over `routes` routes, in alternate rounds on moto's tables (`client`) emptied."""
    hot = Case(f"{records} {kind} records, 1 route ({layer})")
    spread = Case(f"{records} {kind} records, {routes} routes ({layer})")
    rates: dict[str, list[float]] = {hot.name: [], spread.name: []}
    env = {"KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": endpoint, **WITH_KEYS}
    with serving("kiusys_app.main:app", env, workers=3) as (url, _):
        for round_ in range(CONTENDED_ROUNDS):
            for case, spread_over in ((hot, 1), (spread, routes)):
                paths = [
                    f"/v1/routes/{route_name(round_ * records + n % spread_over)}/transactions"
                    for n in range(records)
                ]
                fresh_tables(client)  # moto copies a whole table per action
                rates[case.name].append(burst(case, url, paths, kind == "keyed", client))
    for case in (hot, spread):
        case.rps = statistics.median(rates[case.name])
        case.notes.append(f"not acknowledged: {(case.sent or 0) - (case.acknowledged or 0)}")
    assert hot.rps is not None
    assert spread.rps is not None
    hot.notes.append(f"{hot.rps / spread.rps:.2f} x the spread rate")
    return [hot, spread]


def burst(case: Case, url: str, paths: list[str], keyed: bool, client: Any) -> float:
    """Send each of `paths` once from CONTENDED_CLIENTS threads, a key of its own on each when
    `keyed`; records per second. Adds the round to the case's exactness counts."""
    before = all_items(client)
    acknowledged = 0
    lock = threading.Lock()
    share = len(paths) // CONTENDED_CLIENTS
    barrier = threading.Barrier(CONTENDED_CLIENTS + 1)

    def sender(offset: int) -> None:
        nonlocal acknowledged
        with httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": API_KEY}) as http:
            barrier.wait()
            for path in paths[offset * share : (offset + 1) * share]:
                headers = {"Idempotency-Key": uuid.uuid4().hex} if keyed else {}
                if http.post(path, headers=headers).is_success:
                    with lock:
                        acknowledged += 1

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(CONTENDED_CLIENTS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    case.sent = (case.sent or 0) + len(paths)
    case.acknowledged = (case.acknowledged or 0) + acknowledged
    case.counted = (case.counted or 0) + all_items(client) - before
    return len(paths) / elapsed


def fresh_tables(client: Any) -> None:
    """Empty tables: moto deep-copies each table a transaction touches, once per action, so
    its transactions slow down as the tables fill, whatever the service does."""
    for name in ("flights-db", "flights-db-idempotency"):
        client.delete_table(TableName=name)
    create_tables(client)


def all_items(client: Any) -> int:
    """The sum of every route's count."""
    pages = client.get_paginator("scan").paginate(TableName="flights-db", ConsistentRead=True)
    return sum(int(item["record"]["N"]) for page in pages for item in page["Items"])


def hot_item(client: Any) -> int:
    key = {"flight-route": {"S": "AR1133"}}
    item = client.get_item(TableName="flights-db", Key=key, ConsistentRead=True)
    return int(item.get("Item", {}).get("record", {}).get("N", 0))


def machine() -> dict[str, object]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "connections": CONNECTIONS,
        "duration_s": DURATION,
        "runs": RUNS,
    }


def _cell(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def table(cases: list[Case]) -> str:
    lines = [
        "| case | rps | x bare rps | p50 ms | p99 ms | CPU µs/req | x bare CPU | exactness: sent / acked / counted | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for c in cases:
        exact = "" if c.counted is None else f"{c.sent} / {c.acknowledged} / {c.counted}"
        if c.exact is not None:
            exact += " exact" if c.exact else " NOT exact"
        cells = [
            c.name,
            _cell(c.rps, ",.0f"),
            _cell(c.ratio, ".2f"),
            _cell(c.p50_ms, ".2f"),
            _cell(c.p99_ms, ".2f"),
            _cell(c.cpu_us_per_request, ",.0f"),
            _cell(c.cpu_ratio, ".1f"),
            exact,
            "; ".join(c.notes),
        ]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    # Only emulators are ever called: fake credentials, for this process and the servers.
    os.environ.update(FAKE_CREDENTIALS)
    OUTPUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, dynamodb_standin() as standin:
        timed = timed_cases(Path(tmp), standin)
    cases = [*timed, *moto_exactness(), *contention_cases(), *item_limit_cases()]
    bare = cases[0]
    assert bare.rps
    assert bare.cpu_us_per_request
    for case in cases:
        if case.rps is not None:
            case.ratio = round(case.rps / bare.rps, 3)
        if case.cpu_us_per_request is not None:
            case.cpu_ratio = round(case.cpu_us_per_request / bare.cpu_us_per_request, 2)
    report = {"machine": machine(), "cases": [{**asdict(c), "exact": c.exact} for c in cases]}
    (OUTPUT / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"Machine: {report['machine']}\n")
    print(table(cases))
    print(f"\nJSON: {OUTPUT / 'results.json'}")
    inexact = [c.name for c in cases if c.exact is False and "seed" not in c.name]
    if inexact:
        sys.exit(f"counts differ from acknowledged records in: {', '.join(inexact)}")


if __name__ == "__main__":
    main()
