"""Request ids, one JSON log line per request, and Prometheus metrics by route template."""

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, generate_latest

from kiusys_app.api.errors import MISCONFIGURED_DETAIL, TRANSIENT_DETAIL
from kiusys_app.clients import ANONYMOUS
from kiusys_app.logs import TickBatchingHandler
from kiusys_app.stores import StoreError, StoreErrorKind
from tests.support.app import metric

RECORD = "/save-transaction/{flight_route}"


def logged(output: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.getvalue().splitlines()]


def test_a_sane_request_id_is_echoed(client: TestClient) -> None:
    response = client.post("/save-transaction/AR1133", headers={"X-Request-ID": "req-42.a:b"})
    assert response.headers["X-Request-ID"] == "req-42.a:b"


@pytest.mark.parametrize("given", [None, "", "has spaces", "x" * 129, "semi;colon"])
def test_a_missing_or_odd_request_id_is_replaced(client: TestClient, given: str | None) -> None:
    headers = {} if given is None else {"X-Request-ID": given}
    echoed = client.get("/healthz", headers=headers).headers["X-Request-ID"]
    again = client.get("/healthz", headers=headers).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", echoed), echoed
    assert again != echoed, "a new id for each request"


def test_one_json_line_per_request(client: TestClient, log_output: io.StringIO) -> None:
    started = time.perf_counter()
    client.post("/save-transaction/ar1133", headers={"X-Request-ID": "abc-1"})
    client.get("/v1/routes/AR-1133/transactions", headers={"X-Request-ID": "abc-2"})
    client.get("/no/such/path", headers={"X-Request-ID": "abc-3"})
    elapsed_ms = (time.perf_counter() - started) * 1000
    requests = [line for line in logged(log_output) if line["message"] == "request"]
    assert [(r["request_id"], r["method"], r["route"], r["status"]) for r in requests] == [
        ("abc-1", "POST", RECORD, 200),
        ("abc-2", "GET", "/v1/routes/{route}/transactions", 422),
        ("abc-3", "GET", "<unmatched>", 404),
    ]
    for line in requests:
        assert {"time", "level", "duration_ms"} <= set(line)
    # Each line's duration is its own request's, within the time the three took together.
    durations = [line["duration_ms"] for line in requests]
    assert all(duration > 0 for duration in durations)
    assert sum(durations) <= elapsed_ms


def test_metrics_count_by_route_template_never_by_path(client: TestClient) -> None:
    labels = {"route": RECORD, "method": "POST", "status": "200"}
    before = metric("kiusys_http_requests_total", **labels, client=ANONYMOUS)
    recorded_before = metric("kiusys_transactions_recorded_total")
    replays_before = metric("kiusys_idempotent_replays_total")
    client.post("/save-transaction/AR1133", headers={"Idempotency-Key": "k-1"})
    client.post("/save-transaction/LA0001")
    client.post("/save-transaction/AR1133", headers={"Idempotency-Key": "k-1"})
    assert metric("kiusys_http_requests_total", **labels, client=ANONYMOUS) == before + 3
    assert metric("kiusys_http_request_duration_seconds_count", **labels) >= 3
    assert metric("kiusys_transactions_recorded_total") == recorded_before + 2
    assert metric("kiusys_idempotent_replays_total") == replays_before + 1
    exposition = generate_latest(REGISTRY).decode()
    assert "kiusys_http_requests_total{" in exposition
    assert "AR1133" not in exposition
    assert "LA0001" not in exposition


def test_the_store_errors_help_names_every_kind_it_counts() -> None:
    exposition = generate_latest(REGISTRY).decode()
    (help_line,) = re.findall(r"^# HELP kiusys_store_errors_total (.*)$", exposition, re.MULTILINE)
    for kind in [*StoreErrorKind, "conflict_retried"]:
        assert kind in help_line


@pytest.mark.parametrize(
    ("kind", "level", "message", "detail", "retry_after"),
    [
        (StoreErrorKind.THROTTLED, "warning", "store throttled", TRANSIENT_DETAIL, "1"),
        (
            StoreErrorKind.MISCONFIGURED,
            "error",
            "store misconfigured: injected",
            MISCONFIGURED_DETAIL,
            None,
        ),
    ],
)
def test_store_errors_are_answered_and_logged_with_the_request_id(
    client: TestClient,
    log_output: io.StringIO,
    store_kind: str,
    kind: StoreErrorKind,
    level: str,
    message: str,
    detail: str,
    retry_after: str | None,
) -> None:
    class Broken:
        async def get(self, route: str) -> int:
            raise StoreError(kind, "injected", table="flights-db", operation="GetItem")

    original = client.app.state.store  # type: ignore[attr-defined]
    client.app.state.store = Broken()  # type: ignore[attr-defined]
    before = metric("kiusys_store_errors_total", kind=kind.value)
    try:
        response = client.get("/get-transaction/AR1133", headers={"X-Request-ID": "err-1"})
    finally:
        client.app.state.store = original  # type: ignore[attr-defined]
    assert (response.status_code, response.json()) == (503, {"detail": detail})
    assert response.headers.get("Retry-After") == retry_after
    assert metric("kiusys_store_errors_total", kind=kind.value) == before + 1
    (error,) = [line for line in logged(log_output) if line["level"] == level]
    assert error["message"] == message
    assert error["request_id"] == "err-1"
    fields = {name: error[name] for name in ("store", "error", "table", "operation")}
    assert fields == {
        "store": kind.value,
        "error": "injected",
        "table": "flights-db",
        "operation": "GetItem",
    }


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/", "/"),
        ("/openapi.json", "/openapi.json"),
        ("/docs-assets/swagger-ui.css", "/docs-assets/{path}"),
        ("/docs-assets/swagger-init.js", "/docs-assets/swagger-init.js"),
    ],
)
def test_the_docs_paths_have_their_route_labels(client: TestClient, path: str, label: str) -> None:
    before = metric(
        "kiusys_http_requests_total", route=label, method="GET", status="200", client=ANONYMOUS
    )
    assert client.get(path).status_code == 200
    after = metric(
        "kiusys_http_requests_total", route=label, method="GET", status="200", client=ANONYMOUS
    )
    assert after == before + 1


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def batching_logger(stream: CountingStream) -> logging.Logger:
    handler = TickBatchingHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.Logger("batching-test")
    logger.addHandler(handler)
    return logger


@pytest.mark.anyio
async def test_lines_of_one_loop_iteration_are_written_in_one_write_before_the_loop_waits() -> None:
    stream = CountingStream()
    logger = batching_logger(stream)
    for n in range(50):
        logger.warning("line %d", n)
    assert stream.getvalue() == "", "written at the end of the iteration"
    await asyncio.sleep(0)
    assert stream.getvalue().splitlines() == [f"line {n}" for n in range(50)]
    assert stream.writes == 1
    logger.warning("next")
    await asyncio.sleep(0)
    assert stream.getvalue().splitlines()[-1] == "next"
    assert stream.writes == 2


def test_off_the_loop_a_line_is_written_at_once_after_what_was_pending() -> None:
    stream = CountingStream()
    logger = batching_logger(stream)

    async def log_and_stop() -> None:
        logger.warning("from the loop")  # pending: the loop ends before the iteration does

    asyncio.run(log_and_stop())
    logger.warning("from a thread")
    assert stream.getvalue().splitlines() == ["from the loop", "from a thread"]


@pytest.mark.anyio
async def test_a_line_for_a_closed_stream_is_dropped_and_never_raises_into_the_loop() -> None:
    stream = CountingStream()
    logger = batching_logger(stream)
    stream.close()
    failures: list[object] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: failures.append(context))
    logger.warning("nowhere to go")
    await asyncio.sleep(0)
    assert failures == []
    assert stream.closed


LOST_TASK = """
import asyncio, gc, logging
from kiusys_app.logs import configure_logging

configure_logging()
logging.getLogger("some.library").warning("a library's warning")

async def main():
    async def fails():
        raise RuntimeError("nobody awaits this")
    asyncio.get_running_loop().create_task(fails())
    await asyncio.sleep(0.05)
    gc.collect()

asyncio.run(main())
gc.collect()
"""


def test_asyncio_and_library_lines_are_json_too() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOST_TASK], capture_output=True, text=True, timeout=30, check=True
    )
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(line["logger"], line["message"].partition("\n")[0]) for line in lines] == [
        ("some.library", "a library's warning"),
        ("asyncio", "Task exception was never retrieved"),
    ]
    assert "nobody awaits this" in lines[1]["exception"]
