"""One error contract: every answer that is not 2xx is JSON with the request id; store errors
by kind; readiness that means "can serve every call"; request limits; HEAD; Swagger offline.

The store faults come from real HTTP peers: the DynamoDB stand-in answering as DynamoDB's error
protocol does (or as a proxy's HTML page), and moto with a table missing.
"""

import asyncio
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from kiusys_app.api.docs import CONTENT_SECURITY_POLICY
from kiusys_app.api.errors import (
    MAX_ECHOED_INPUT,
    MAX_ERRORS_LISTED,
    MISCONFIGURED_DETAIL,
    OUTCOME_UNKNOWN_DETAIL,
    TRANSIENT_DETAIL,
)
from kiusys_app.api.limits import MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_URL_BYTES
from kiusys_app.api.routes.health import (
    READINESS_REUSE_SECONDS,
    WRITE_PROOF_SECONDS,
    Readiness,
)
from kiusys_app.stores import StoreError, StoreErrorKind
from kiusys_app.stores.dynamodb.store import CALL_BUDGET_SECONDS
from tests.support.aws import KEYS_TABLE, TABLE, create_tables, dynamodb
from tests.support.processes import AppServer, app_process, dynamodb_standin, wait_for

RECORD = "/v1/routes/AR1133/transactions"


class Served:
    """The service (`kiusys-app`) on DynamoDB at the stand-in, and what it wrote to stderr."""

    def __init__(self, server: AppServer, standin: str, log: Path) -> None:
        self.url = server.url
        self.standin = standin
        self.log = log
        self._seen = 0

    def answer(self, answer: dict[str, Any]) -> None:
        httpx.put(f"{self.standin}/_standin/answer", json=answer).raise_for_status()

    def new_lines(self, level: str | None = None, count: int = 0) -> list[dict[str, Any]]:
        """The complete stderr lines since the last call, each one JSON object; first waits
        until `count` of them have `level` (the server writes its lines at the end of its loop
        iteration, just after the answer went out)."""

        def arrived() -> tuple[list[dict[str, Any]]] | None:
            text = self.log.read_text()
            lines = text[: text.rfind("\n") + 1].splitlines()[self._seen :]
            parsed = [json.loads(line) for line in lines]
            enough = sum(line["level"] == level for line in parsed) >= count
            return (parsed,) if enough else None

        (lines,) = wait_for(arrived, f"{count} {level} log lines", 10)
        self._seen += len(lines)
        return lines


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("served") / "stderr.log"
    with dynamodb_standin() as standin:
        env = {"KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": standin}
        with app_process(env, log=log) as server:
            yield Served(server, standin, log)


def next_readiness(url: str, status: int) -> httpx.Response:
    """The first `/readyz` answer with `status`: probes within a second of a store round share
    its answer, so a change shows within about a second."""

    def probe() -> httpx.Response | None:
        answer = httpx.get(f"{url}/readyz")
        return answer if answer.status_code == status else None

    return wait_for(probe, f"/readyz to answer {status}", 5, 0.1)


@pytest.fixture
def stand_in(served: Served) -> Iterator[Served]:
    """The served app, ready, with a fresh log position; the stand-in answers success after.
    The route's day is known (a record was counted), so a record's next call is its write."""
    next_readiness(served.url, 200)
    assert httpx.post(f"{served.url}{RECORD}").status_code == 201
    served.new_lines()
    yield served
    served.answer({})


MISCONFIGURED = {
    "access-denied": {"status": 400, "error": "AccessDeniedException"},
    "no-table": {"status": 400, "error": "ResourceNotFoundException"},
    "proxy-404": {"status": 404, "content_type": "text/html", "body": "<h1>Not Found</h1>"},
    "proxy-501": {"status": 501, "content_type": "text/html", "body": "<h1>Not Impl.</h1>"},
    "html-200": {"status": 200, "content_type": "text/html", "body": "<h1>Welcome</h1>"},
}


@pytest.mark.slow
@pytest.mark.parametrize("answer", MISCONFIGURED.values(), ids=MISCONFIGURED.keys())
@pytest.mark.parametrize("headers", [{}, {"Idempotency-Key": "order-1"}], ids=["plain", "keyed"])
def test_a_misconfigured_store_is_503_without_retry_after_and_not_ready(
    stand_in: Served, answer: dict[str, Any], headers: dict[str, str]
) -> None:
    stand_in.answer(answer)
    response = httpx.post(f"{stand_in.url}{RECORD}", headers=headers)
    assert response.status_code == 503
    assert response.json() == {"detail": MISCONFIGURED_DETAIL}
    assert "Retry-After" not in response.headers, "a retry cannot help"
    assert response.headers["X-Request-ID"]
    ready = next_readiness(stand_in.url, 503)
    assert ready.json() == {"detail": MISCONFIGURED_DETAIL}
    assert TABLE not in response.text + ready.text

    lines = stand_in.new_lines("error", 2)
    (logged, _) = [line for line in lines if line["level"] == "error"]  # the record, readiness
    assert logged["request_id"] == response.headers["X-Request-ID"]
    assert logged["store"] == "misconfigured"
    assert logged["table"].startswith(TABLE)
    assert logged["operation"] in {"UpdateItem", "TransactWriteItems"}
    assert "exception" not in logged


@pytest.mark.slow
def test_a_transient_store_error_is_503_with_retry_after_when_the_budget_is_spent(
    stand_in: Served,
) -> None:
    stand_in.answer({"status": 500, "error": "InternalServerError"})
    started = time.monotonic()
    response = httpx.get(f"{stand_in.url}{RECORD}", timeout=30)
    elapsed = time.monotonic() - started
    assert (response.status_code, response.json()) == (503, {"detail": TRANSIENT_DETAIL})
    assert response.headers["Retry-After"] == "1"
    assert CALL_BUDGET_SECONDS - 1 < elapsed < CALL_BUDGET_SECONDS + 1, "a read is retried"
    (logged,) = [line for line in stand_in.new_lines("warning", 1) if line["level"] == "warning"]
    assert logged["store"] == "unavailable"


@pytest.mark.slow
def test_a_plain_record_answered_500_is_outcome_unknown_at_once(stand_in: Served) -> None:
    stand_in.answer({"status": 500, "error": "InternalServerError"})
    response = httpx.post(f"{stand_in.url}{RECORD}")
    assert (response.status_code, response.json()) == (503, {"detail": OUTCOME_UNKNOWN_DETAIL})
    assert "Retry-After" not in response.headers
    (logged,) = [line for line in stand_in.new_lines("warning", 1) if line["level"] == "warning"]
    assert (logged["store"], logged["operation"]) == ("outcome_unknown", "UpdateItem")


@pytest.mark.slow
def test_a_bug_is_a_json_500_with_the_request_id_and_one_log_line(stand_in: Served) -> None:
    stand_in.answer({"status": 400, "error": "SomethingNobodyExpectedException"})
    response = httpx.post(f"{stand_in.url}{RECORD}", headers={"X-Request-ID": "bug-1"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error", "request_id": "bug-1"}
    assert response.headers["X-Request-ID"] == "bug-1"
    lines = stand_in.new_lines("error", 1)  # each one JSON: no plain-text traceback on stderr
    (logged,) = [line for line in lines if line["level"] == "error"]
    assert logged["request_id"] == "bug-1"
    assert "Traceback" in logged["exception"]
    assert "SomethingNobodyExpectedException" in logged["exception"]


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/healthz", "/readyz", RECORD, "/"])
def test_head_works_wherever_get_does(stand_in: Served, path: str) -> None:
    got = httpx.get(f"{stand_in.url}{path}")
    head = httpx.head(f"{stand_in.url}{path}")
    assert (got.status_code, head.status_code) == (200, 200)
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]


@pytest.mark.slow
def test_a_10_mb_header_is_431_before_any_store_call(stand_in: Served) -> None:
    stand_in.answer({"status": 400, "error": "SomethingNobodyExpectedException"})
    response = httpx.post(f"{stand_in.url}{RECORD}", headers={"X-Padding": "a" * 10_000_000})
    # Had the store been called, its answer would have made this a 500. This size is past the
    # server's buffer: its own 431, with no body (see docs/api.md, "Limits").
    assert (response.status_code, response.content) == (431, b"")


@pytest.mark.slow
def test_a_missing_idempotency_table_makes_readiness_false(moto_url: str, tmp_path: Path) -> None:
    httpx.post(f"{moto_url}/moto-api/reset").raise_for_status()
    client = dynamodb(moto_url)
    create_tables(client)
    client.delete_table(TableName="flights-db-idempotency")
    env = {"KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": moto_url}
    with app_process(env, log=tmp_path / "stderr.log", ready_path="/healthz") as server:
        ready = httpx.get(f"{server.url}/readyz")
        keyed = httpx.post(f"{server.url}{RECORD}", headers={"Idempotency-Key": "k-1"})
        plain = httpx.post(f"{server.url}{RECORD}")
    assert ready.status_code == 503
    assert (keyed.status_code, keyed.json()) == (503, {"detail": MISCONFIGURED_DETAIL})
    assert "Retry-After" not in keyed.headers
    assert plain.status_code == 201, "calls that do not need the missing table still work"


# In-process: the ASGI app is enough for what the server does not take part in.


def test_readiness_is_503_with_a_generic_reason_when_a_table_fails(
    client: TestClient, store_kind: str, tmp_path: Path
) -> None:
    now = [0.0]
    state = client.app.state  # type: ignore[attr-defined]
    state.readiness = Readiness(state.store.ping, clock=lambda: now[0])
    assert client.get("/readyz").status_code == 200
    if store_kind == "sqlite":
        with closing(sqlite3.connect(tmp_path / "counts.sqlite3")) as conn:
            conn.execute("DROP TABLE idempotency_keys")
    else:
        dynamodb().delete_table(TableName=KEYS_TABLE)
    now[0] += READINESS_REUSE_SECONDS - 0.01
    assert client.get("/readyz").status_code == 200, "the last second's answer is reused"
    now[0] += 0.01
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (503, {"detail": MISCONFIGURED_DETAIL})
    assert "idempotency" not in response.text, "the reason names no table"
    assert client.get("/healthz").status_code == 200, "liveness never asks the store"


@pytest.mark.parametrize("size", [MAX_HEADER_BYTES - 200, MAX_HEADER_BYTES + 1])
def test_headers_over_16_kib_are_431_and_count_nothing(
    client: TestClient, snapshot: Any, size: int
) -> None:
    before = snapshot()
    response = client.post(RECORD, headers={"X-Padding": "a" * size})
    if size <= MAX_HEADER_BYTES - 200:
        assert response.status_code == 201
        return
    assert response.status_code == 431
    assert response.headers["X-Request-ID"]
    assert snapshot() == before


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_1_kib_is_413_and_counts_nothing(
    client: TestClient, snapshot: Any, chunked: bool
) -> None:
    before = snapshot()
    body = b"x" * (MAX_BODY_BYTES + 1)
    content: Any = iter([body[:600], body[600:]]) if chunked else body
    response = client.post(RECORD, content=content)
    assert response.status_code == 413
    assert response.json()["detail"].endswith(f"a body over {MAX_BODY_BYTES} bytes")
    assert snapshot() == before


def test_a_small_body_is_ignored(client: TestClient) -> None:
    response = client.post(RECORD, content=b"x" * MAX_BODY_BYTES)
    assert (response.status_code, response.json()["transactions"]) == (201, 1)


@pytest.mark.parametrize("key", ["", "ключ", "k" * 256, "tab\there"])
def test_a_bad_idempotency_key_says_the_rule_in_plain_words(
    client: TestClient, snapshot: Any, key: str
) -> None:
    before = snapshot()
    response = client.post(RECORD, headers={"Idempotency-Key": key.encode()})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["header", "Idempotency-Key"]
    assert error["msg"] == "an Idempotency-Key is 1 to 255 printable ASCII characters"
    assert "input" not in error, "a header's value is never echoed"
    assert snapshot() == before


@pytest.mark.parametrize("key", ["ключ-4711", "clé", "键"])
def test_a_non_ascii_idempotency_key_is_not_in_the_answer_in_any_encoding(
    client: TestClient, key: str
) -> None:
    response = client.post(RECORD, headers={"Idempotency-Key": key.encode()})
    assert response.status_code == 422
    for encoded in (key.encode(), key.encode().decode("latin-1").encode()):  # and as mojibake
        assert encoded not in response.content
        assert all(encoded not in value for value in response.headers.raw)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/routes/A/transactions",
        "/save-transaction/TOO-LONG-ROUTE-1234",
        "/v1/transactions?route=1",
        "/v1/transactions",
    ],
)
def test_no_422_message_starts_with_pydantics_value_error(client: TestClient, path: str) -> None:
    response = client.get(path) if "?" in path or path.startswith("/v1/t") else client.post(path)
    assert response.status_code == 422
    assert "Value error" not in response.text


def test_a_422_echoes_at_most_100_characters_of_the_input(client: TestClient) -> None:
    response = client.get(f"/v1/routes/{'A' * 5000}/transactions")
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["input"] == "A" * 100 + "..."
    assert len(response.content) < 1000


@pytest.mark.parametrize(
    "query",
    [
        "&".join(f"route={'R' * 60}{n}" for n in range(101)),  # too many, each too long
        "&".join(["route=AR1133"] * 101),  # too many, each fine: the list is the input
        "&".join(f"route=A{n}" for n in range(40)),  # 40 bad routes
    ],
    ids=["101-long-routes", "101-good-routes", "40-bad-routes"],
)
def test_a_422_body_stays_under_2_kb_however_large_the_input(
    client: TestClient, snapshot: Any, query: str
) -> None:
    before = snapshot()
    response = client.get(f"/v1/transactions?{query}")
    assert response.status_code == 422
    assert len(response.content) < 2048, len(response.content)
    body = response.json()
    assert 1 <= len(body["detail"]) <= MAX_ERRORS_LISTED
    for error in body["detail"]:
        echoed = error["input"]
        assert (
            len(echoed if isinstance(echoed, str) else json.dumps(echoed)) <= MAX_ECHOED_INPUT + 3
        )
    assert snapshot() == before


def test_a_trailing_slash_is_a_json_404_that_counts_nothing(
    client: TestClient, snapshot: Any
) -> None:
    before = snapshot()
    response = client.post(f"{RECORD}/", follow_redirects=False)
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})
    assert snapshot() == before


def test_every_error_answer_is_json_with_the_request_id(client: TestClient) -> None:
    answers = [
        client.get("/no/such/path"),
        client.post(f"{RECORD}/", follow_redirects=False),
        client.get(f"/v1/transactions?route={'A' * MAX_URL_BYTES}"),
        client.delete(RECORD),
        client.get("/v1/routes/nope!/transactions"),
        client.post(RECORD, content=b"x" * 5000),
        client.post(RECORD, headers={"X-Padding": "a" * 20_000}),
    ]
    assert [a.status_code for a in answers] == [404, 404, 414, 405, 422, 413, 431]
    for answer in answers:
        assert answer.headers["content-type"] == "application/json"
        assert "detail" in answer.json()
        assert answer.headers["X-Request-ID"]


def test_swagger_ui_references_no_external_url(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert not re.search(r"https?://", page.text), "the page must work offline"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) >= 3  # the bundle, the stylesheet, the icon
    for asset in assets:
        assert asset.startswith("/")
        assert client.get(asset).status_code == 200
    assert "/openapi.json" in page.text
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert set(schemes) == {"ApiKey", "Bearer"}, "Swagger UI's Authorize button"


async def settle() -> None:
    """Let every ready task run until it waits."""
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.mark.anyio
async def test_concurrent_probes_share_one_round_and_its_failure() -> None:
    now = [0.0]
    rounds: list[asyncio.Event] = []

    async def ping(writes: bool) -> None:
        rounds.append(asyncio.Event())
        await rounds[-1].wait()
        raise StoreError(StoreErrorKind.MISCONFIGURED, "access denied")

    readiness = Readiness(ping, clock=lambda: now[0])
    probes = [asyncio.ensure_future(readiness.check()) for _ in range(10)]
    await settle()
    assert len(rounds) == 1, "one round for every probe"
    rounds[0].set()
    outcomes = await asyncio.gather(*probes, return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [StoreError] * 10
    now[0] = READINESS_REUSE_SECONDS
    late = asyncio.ensure_future(readiness.check())
    await settle()
    assert len(rounds) == 2, "a new round once the last one is a second old"
    rounds[1].set()
    with pytest.raises(StoreError):
        await late


@pytest.mark.anyio
async def test_only_a_misconfigured_store_fails_a_proven_pods_readiness() -> None:
    now = [0.0]
    failure: list[StoreErrorKind] = []

    async def ping(writes: bool) -> None:
        if failure:
            raise StoreError(failure[0], "the store's reason")

    readiness = Readiness(ping, clock=lambda: now[0])
    await readiness.check()  # proven
    for kind in StoreErrorKind:
        failure[:] = [kind]
        now[0] += READINESS_REUSE_SECONDS
        if kind is StoreErrorKind.MISCONFIGURED:
            with pytest.raises(StoreError):
                await readiness.check()
        else:
            await readiness.check()  # shared by every pod: the calls answer it, not the probe


@pytest.mark.anyio
async def test_the_regions_health_fails_while_the_store_is_out_of_reach_but_not_when_it_throttles() -> (
    None
):
    now = [0.0]
    failure: list[Exception] = []

    async def ping(writes: bool) -> None:
        if failure:
            raise failure[0]

    readiness = Readiness(ping, clock=lambda: now[0])
    await readiness.check(region=True)
    for kind in StoreErrorKind:
        failure[:] = [StoreError(kind, "the store's reason")]
        now[0] += READINESS_REUSE_SECONDS
        if kind is StoreErrorKind.THROTTLED:
            await readiness.check(region=True)
        else:
            with pytest.raises(StoreError) as raised:
                await readiness.check(region=True)
            assert raised.value.kind is kind
    failure[:] = [RuntimeError("a bug")]  # or a 4xx of a type this service does not know
    for region in (False, True):
        now[0] += READINESS_REUSE_SECONDS
        with pytest.raises(StoreError) as raised:
            await readiness.check(region=region)
        assert (raised.value.kind, raised.value.reason) == (
            StoreErrorKind.MISCONFIGURED,
            "RuntimeError: a bug",
        )


def test_the_regions_health_is_503_with_retry_after_while_readiness_stays_200(
    client: TestClient,
) -> None:
    now = [0.0]
    reachable = [True]

    async def ping(writes: bool) -> None:
        if not reachable[0]:
            raise StoreError(StoreErrorKind.UNAVAILABLE, "connection refused")

    client.app.state.readiness = Readiness(ping, clock=lambda: now[0])  # type: ignore[attr-defined]
    assert client.get("/readyz").status_code == 200, "proven"
    reachable[0] = False
    now[0] += READINESS_REUSE_SECONDS
    assert client.get("/readyz").status_code == 200
    response = client.get("/regionz")
    assert (response.status_code, response.json()) == (503, {"detail": TRANSIENT_DETAIL})
    assert response.headers["Retry-After"] == "1"


@pytest.mark.anyio
async def test_write_rights_are_proven_first_then_every_minute_until_they_fail() -> None:
    now = [0.0]
    asked: list[bool] = []
    denied = [False]

    async def ping(writes: bool) -> None:
        asked.append(writes)
        if writes and denied[0]:
            raise StoreError(StoreErrorKind.MISCONFIGURED, "AccessDeniedException")

    readiness = Readiness(ping, clock=lambda: now[0])
    for _ in range(3):
        await readiness.check()
        now[0] += WRITE_PROOF_SECONDS / 2
    assert asked == [True, False, True], "proven before the first ready answer, then each minute"
    denied[0] = True
    now[0] += WRITE_PROOF_SECONDS
    for _ in range(2):
        with pytest.raises(StoreError):
            await readiness.check()
        now[0] += READINESS_REUSE_SECONDS
    assert asked[-2:] == [True, True], "a failed proof is tried again at the next round"


def test_the_docs_page_carries_its_policy_and_title(client: TestClient) -> None:
    """The browser tests show the policy is enforced; this is the fast check that it is sent."""
    page = client.get("/")
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "<title>Kiusys transaction counter - Swagger UI</title>" in page.text
