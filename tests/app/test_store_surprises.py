"""The real `kiusys-app` when DynamoDB answers what the service has never seen: a proxy in front
of moto answers chosen calls itself, and the test reads the answers and the server's output."""

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.support.aws import stored
from tests.support.processes import app_process
from tests.support.proxy_server import Served, proxy_server

pytestmark = pytest.mark.slow

RECORD = "/v1/routes/AR1133/transactions"
UNKNOWN = {"__type": "com.amazonaws.dynamodb.v20120810#SomeNewException", "message": "new"}

# Whether the proxy answers a request itself, given its action and the actions before it.
Rule = Callable[[str, list[str]], bool]


@contextmanager
def answering(target: str, rule: Rule, error: dict[str, str]) -> Iterator[list[str]]:
    """A proxy to `target` that answers `error` (HTTP 400, unapplied) wherever `rule` says;
    yields the proxy's URL and then the actions it saw, in order."""
    actions: list[str] = []

    async def forward(request: web.Request, served: Served) -> web.Response:
        action = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        if rule(action, actions):
            actions.append(f"{action}!")
            return web.json_response(error, status=400, content_type="application/x-amz-json-1.0")
        actions.append(action)
        return await served.forward(request, await request.read())

    with proxy_server(target, forward) as served:
        actions.insert(0, served.url)
        yield actions


def first_count_read_after_a_transaction(action: str, actions: list[str]) -> bool:
    answered_before = any(seen.endswith("!") for seen in actions)
    return action == "GetItem" and actions[-1:] == ["TransactWriteItems"] and not answered_before


def timed_keyed_record(url: str, key: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = httpx.post(f"{url}{RECORD}", headers={"Idempotency-Key": key}, timeout=10)
    return answer, time.monotonic() - started


def test_an_unknown_error_on_the_count_read_is_a_500_at_once_and_the_writer_lives_on(
    moto_tables: Any, moto_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    with answering(moto_url, first_count_read_after_a_transaction, UNKNOWN) as seen:
        url = seen.pop(0)
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
