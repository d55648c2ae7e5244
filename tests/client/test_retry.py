"""The client's retry policy, on a fake clock: a scripted server (httpx's MockTransport) answers
each attempt, and the client's sleeps move the clock. Every scenario runs through both `Client`
and `AsyncClient`, whose loops are separate code."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from kiusys_client import ApiError, AsyncClient, Client, DeadlineExceeded, RetryPolicy
from kiusys_client._retry import retry_after

Outcome = httpx.Response | Exception


class Server:
    """Answers each attempt with the next scripted outcome (the last one repeats) after
    `latency` seconds of the fake clock, or times out as httpx would when the attempt's timeout
    is shorter; keeps what it was sent."""

    def __init__(self, *outcomes: Outcome, latency: float = 0.0) -> None:
        self.outcomes = list(outcomes)
        self.latency = latency
        self.now = 0.0
        self.requests: list[httpx.Request] = []
        self.sent_at: list[float] = []
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.sent_at.append(self.now)
        timeout = request.extensions["timeout"]["read"]
        self.now += min(self.latency, timeout)
        if self.latency > timeout:
            raise httpx.ReadTimeout("no answer within the attempt's timeout")
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def header(self, name: str) -> list[str | None]:
        return [request.headers.get(name) for request in self.requests]

    def timeouts(self) -> list[float]:
        return [request.extensions["timeout"]["read"] for request in self.requests]


def recorded_json(
    route: str = "AR1133", transactions: int = 1, status: int = 201
) -> httpx.Response:
    return httpx.Response(status, json={"route": route, "transactions": transactions})


def refusal(status: int, detail: object = "no", **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"detail": detail}, headers={"X-Request-ID": "server-id", **headers}
    )


def cut() -> httpx.ConnectError:
    return httpx.ConnectError("connection refused")


# The options that `call` gives the client; any other keyword goes to the method.
CLIENT_OPTIONS = {"policy", "jitter", "api_key"}


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """call(server, method, *args, policy=..., jitter=..., **keywords): the method's result
    through the client of this run's kind."""

    def split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        client = {k: v for k, v in options.items() if k in CLIENT_OPTIONS}
        return client, {k: v for k, v in options.items() if k not in CLIENT_OPTIONS}

    def sync_call(server: Server, method: str, *args: Any, **options: Any) -> Any:
        settings, keywords = split(options)
        with Client(
            "http://counter",
            transport=httpx.MockTransport(server.answer),
            clock=server.clock,
            sleep=server.sleep,
            **settings,
        ) as client:
            return getattr(client, method)(*args, **keywords)

    async def async_call(server: Server, method: str, *args: Any, **options: Any) -> Any:
        settings, keywords = split(options)
        async with AsyncClient(
            "http://counter",
            transport=httpx.MockTransport(server.answer),
            clock=server.clock,
            sleep=server.async_sleep,
            **settings,
        ) as client:
            return await getattr(client, method)(*args, **keywords)

    if request.param == "sync":
        return sync_call
    return lambda *args, **options: asyncio.run(async_call(*args, **options))


def test_a_record_retried_after_cuts_and_503s_sends_one_key_and_one_request_id(call: Any) -> None:
    server = Server(cut(), httpx.ReadTimeout("late"), refusal(503), recorded_json(transactions=7))
    result = call(server, "record", "AR1133")
    assert (result.transactions, result.replayed) == (7, False)
    keys = server.header("Idempotency-Key")
    assert len(keys) == 4
    assert keys == [result.key] * 4
    assert uuid.UUID(result.key)
    assert len(set(server.header("X-Request-ID"))) == 1


def test_each_record_call_has_its_own_key_and_a_given_key_is_sent_as_is(call: Any) -> None:
    server = Server(recorded_json())
    first = call(server, "record", "AR1133")
    second = call(server, "record", "AR1133")
    given = call(server, "record", "AR1133", "order-4711")
    assert first.key != second.key
    assert given.key == "order-4711"
    assert server.header("Idempotency-Key") == [first.key, second.key, "order-4711"]


def test_a_replay_is_reported_as_one(call: Any) -> None:
    replay = recorded_json(status=200)
    replay.headers["Idempotent-Replayed"] = "true"
    assert call(Server(replay), "record", "AR1133", "k").replayed


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_throttling_and_gateway_answers_are_retried(call: Any, status: int) -> None:
    server = Server(refusal(status), recorded_json())
    assert call(server, "record", "AR1133").transactions == 1
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 500])
def test_other_refusals_are_not_retried_and_carry_the_message_and_request_id(
    call: Any, status: int
) -> None:
    detail = [{"msg": "a flight route is an airline code", "loc": ["path"]}]
    server = Server(refusal(status, detail), recorded_json())
    with pytest.raises(ApiError) as raised:
        call(server, "record", "AR-1")
    assert len(server.requests) == 1
    error = raised.value
    assert (error.status_code, error.detail, error.request_id) == (status, detail, "server-id")
    assert "a flight route is an airline code" in str(error)
    assert "server-id" in str(error)


def test_a_refusal_that_is_not_json_keeps_the_start_of_its_body(call: Any) -> None:
    with pytest.raises(ApiError) as raised:
        call(Server(httpx.Response(403, text="<html>Forbidden</html>")), "check", "AR1133")
    assert raised.value.detail == "<html>Forbidden</html>"
    assert raised.value.request_id is None


def test_pauses_grow_as_full_jitter_from_50_ms_doubling_to_2_s(call: Any) -> None:
    server = Server(*[cut()] * 9, recorded_json())
    call(server, "check", "AR1133", jitter=lambda: 0.5)
    assert server.pauses == pytest.approx([0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    server = Server(*[cut()] * 3, recorded_json())
    call(server, "check", "AR1133", jitter=lambda: 0.0)
    assert server.pauses == [0.0, 0.0, 0.0]


def test_a_pause_is_never_shorter_than_retry_after(call: Any) -> None:
    server = Server(refusal(503, **{"Retry-After": "1"}), recorded_json())
    call(server, "record", "AR1133", jitter=lambda: 0.5)
    assert server.pauses == [1.0]
    server = Server(*[refusal(503)] * 9, recorded_json())
    call(server, "record", "AR1133", jitter=lambda: 0.999)
    assert max(server.pauses) == pytest.approx(2 * 0.999), "a long Retry-After is not the cap"


def test_retry_after_reads_seconds_and_http_dates() -> None:
    def answer(value: str) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": value})

    def now() -> datetime:
        return datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)

    assert retry_after(answer("3")) == 3.0
    assert retry_after(answer("Sun, 06 Dec 2026 12:00:04 GMT"), now) == 4.0
    assert retry_after(answer("Sun, 06 Dec 2026 11:00:00 GMT"), now) == 0.0
    assert retry_after(answer("soon")) is None
    assert retry_after(httpx.Response(503)) is None


def test_a_call_gives_up_within_its_deadline_with_the_last_failure_and_the_key(call: Any) -> None:
    server = Server(refusal(503), latency=0.01)
    with pytest.raises(DeadlineExceeded) as raised:
        call(server, "record", "AR1133", policy=RetryPolicy(deadline=5.0), jitter=lambda: 0.999)
    error = raised.value
    assert server.now <= 5.0
    assert server.sent_at[-1] + 0.05 <= 5.0, "the last attempt had room for an answer"
    assert error.attempts == len(server.requests) > 3
    assert isinstance(error.last, ApiError)
    assert error.last.status_code == 503
    assert error.idempotency_key == server.header("Idempotency-Key")[0]
    assert f"key={error.idempotency_key!r}" in str(error)


def test_each_attempt_waits_at_most_6_s_and_never_past_the_deadline(call: Any) -> None:
    server = Server(httpx.ReadTimeout("late"), latency=4.0)
    with pytest.raises(DeadlineExceeded) as raised:
        call(server, "check", "AR1133", jitter=lambda: 0.0)
    assert server.timeouts() == pytest.approx([6.0, 6.0, 2.0])
    assert isinstance(raised.value.last, httpx.ReadTimeout)
    assert raised.value.idempotency_key is None, "a check has no key"


def test_a_retry_after_past_the_deadline_gives_up_at_once(call: Any) -> None:
    server = Server(refusal(503, **{"Retry-After": "30"}))
    with pytest.raises(DeadlineExceeded):
        call(server, "record", "AR1133")
    assert (len(server.requests), server.pauses) == (1, [])


def test_an_error_that_a_retry_cannot_mend_is_raised_at_once(call: Any) -> None:
    server = Server(httpx.UnsupportedProtocol("no scheme"), recorded_json())
    with pytest.raises(httpx.UnsupportedProtocol):
        call(server, "check", "AR1133")
    assert len(server.requests) == 1


def test_check_many_reads_100_distinct_routes_a_call_and_merges_the_answers(call: Any) -> None:
    routes = [f"AR{n}" for n in range(1, 251)]

    def counts(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={r: int(r[2:]) for r in request.url.params.get_list("route")}
        )

    server = Server(recorded_json())
    server.answer = lambda request: (server.requests.append(request), counts(request))[1]  # type: ignore[method-assign]
    result = call(server, "check_many", [*routes, *routes[:10]])
    assert result == {route: int(route[2:]) for route in routes}
    assert [len(r.url.params.get_list("route")) for r in server.requests] == [100, 100, 50]


def test_a_key_and_quoted_route_reach_the_server(call: Any) -> None:
    server = Server(recorded_json())
    call(server, "record", "AR1133/../x", api_key="kiu_secret")
    (request,) = server.requests
    assert request.url.raw_path == b"/v1/routes/AR1133%2F..%2Fx/transactions"
    assert request.headers["Authorization"] == "Bearer kiu_secret"


def test_a_policy_refuses_senseless_values() -> None:
    for values in ({"deadline": 0}, {"attempt_timeout": -1}, {"first_pause": 3, "max_pause": 2}):
        with pytest.raises(ValueError, match="a policy needs"):
            RetryPolicy(**values)


def test_usage_asks_100_distinct_routes_a_call_and_merges_the_answers(call: Any) -> None:
    routes = [f"AR{n}" for n in range(1, 151)]

    def usage(request: httpx.Request) -> httpx.Response:
        server.requests.append(request)
        asked = request.url.params.get_list("route")
        days = {route: {"2026-11-02": int(route[2:])} for route in asked}
        body = {"from": "2026-11-01", "to": "2026-11-30", "granularity": "day", "routes": days}
        return httpx.Response(200, json={**body, "total": sum(int(r[2:]) for r in asked)})

    server = Server(recorded_json())
    server.answer = usage  # type: ignore[method-assign]
    result = call(server, "usage", date(2026, 11, 1), "2026-11-30", routes=[*routes, "AR1"])
    assert result.routes == {route: {"2026-11-02": int(route[2:])} for route in routes}
    assert (result.first, result.last, result.total) == ("2026-11-01", "2026-11-30", 11325)
    assert [len(r.url.params.get_list("route")) for r in server.requests] == [100, 50]
    assert {r.url.params["from"] for r in server.requests} == {"2026-11-01"}


def test_an_airlines_usage_is_one_call_and_a_refusal_is_raised(call: Any) -> None:
    server = Server(refusal(403, "this client may not read usage"))
    with pytest.raises(ApiError, match="may not read usage"):
        call(server, "usage", "2026-11-01", "2026-11-30", airline="AR", granularity="month")
    (request,) = server.requests
    assert request.url.params.multi_items() == [
        ("from", "2026-11-01"),
        ("to", "2026-11-30"),
        ("granularity", "month"),
        ("airline", "AR"),
    ]
