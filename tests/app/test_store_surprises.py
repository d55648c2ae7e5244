"""The real `kiusys-app` when DynamoDB answers what the service has never seen: a proxy in front
of moto answers chosen calls itself, and the test reads the answers and the server's output."""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from kiusys_app.api.errors import MISCONFIGURED_DETAIL, TRANSIENT_DETAIL
from kiusys_app.api.routes.health import LIVENESS_PATH, READINESS_PATH
from tests.support.aws import stored
from tests.support.processes import app_process
from tests.support.proxy_server import Served, proxy_server

pytestmark = pytest.mark.slow

RECORD = "/v1/routes/AR1133/transactions"
JSON_PROTOCOL = "application/x-amz-json-1.0"

# The proxy's own answer to a request, given its action and the actions before it; None sends
# it on to moto.
Answer = Callable[[str, list[str]], Awaitable[web.Response | None]]


def dynamodb_error(code: str) -> web.Response:
    error = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code}
    return web.json_response(error, status=400, content_type=JSON_PROTOCOL)


@contextmanager
def store_proxy(target: str, answer: Answer) -> Iterator[tuple[str, list[str]]]:
    """A proxy to `target` where `answer` may answer a request itself (unapplied); yields its
    URL and the actions it saw, in order, those it answered itself marked with a `!`."""
    actions: list[str] = []

    async def forward(request: web.Request, served: Served) -> web.Response:
        action = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        own = await answer(action, actions)
        actions.append(action if own is None else f"{action}!")
        return own or await served.forward(request, await request.read())

    with proxy_server(target, forward) as served:
        yield served.url, actions


def timed_keyed_record(url: str, key: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = httpx.post(f"{url}{RECORD}", headers={"Idempotency-Key": key}, timeout=10)
    return answer, time.monotonic() - started


def test_an_unknown_error_on_the_count_read_is_a_500_at_once_and_the_writer_lives_on(
    moto_tables: Any, moto_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"

    async def first_count_read_after_a_transaction(
        action: str, seen: list[str]
    ) -> web.Response | None:
        if action == "GetItem" and seen[-1:] == ["TransactWriteItems"] and "GetItem!" not in seen:
            return dynamodb_error("SomeNewException")
        return None

    with store_proxy(moto_url, first_count_read_after_a_transaction) as (url, seen):
        env = {"KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": url}
        with app_process(env, log=log) as server:
            first, first_took = timed_keyed_record(server.url, "first")
            second, second_took = timed_keyed_record(server.url, "second")
    assert "GetItem!" in seen, "the fault was met"
    assert (first.status_code, first.json()["detail"]) == (500, "internal error")
    assert first_took < 1.0
    assert (second.status_code, second.json()["transactions"]) == (201, 2)
    assert second_took < 1.0, "the route's writer still writes"
    counts, keys = stored(moto_tables)
    assert (counts["AR1133"], sorted(keys)) == (2, ["first", "second"])
    lines = log.read_text().splitlines()
    assert all(line.startswith("{") for line in lines), "every line is JSON"
    (bug,) = [json.loads(line) for line in lines if "SomeNewException" in line]
    assert bug["request_id"] == first.headers["X-Request-ID"]


def test_a_cold_pod_whose_store_times_out_and_then_refuses_a_write_is_never_ready(
    moto_tables: Any, moto_url: str
) -> None:
    """Every call 1.6 s late for the first 2.5 s (past readiness's 1 s budget), and PutItem
    refused throughout: nothing is ever proven, so no probe gets a 200."""
    slow_until = [float("inf")]

    async def slow_then_refusing(action: str, seen: list[str]) -> web.Response | None:
        if time.monotonic() < slow_until[0]:
            await asyncio.sleep(1.6)
        return dynamodb_error("AccessDeniedException") if action == "PutItem" else None

    with store_proxy(moto_url, slow_then_refusing) as (url, seen):
        env = {"KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": url}
        with app_process(env, ready_path=LIVENESS_PATH) as server:
            slow_until[0] = time.monotonic() + 2.5
            answers = []
            while time.monotonic() < slow_until[0] + 3:
                answers.append(httpx.get(f"{server.url}{READINESS_PATH}", timeout=5))
                time.sleep(0.3)
    details = [(answer.status_code, answer.json().get("detail")) for answer in answers]
    assert set(details) == {(503, TRANSIENT_DETAIL), (503, MISCONFIGURED_DETAIL)}, details
    assert details[0] == (503, TRANSIENT_DETAIL), "timed out before anything was proven"
    assert "PutItem!" in seen
