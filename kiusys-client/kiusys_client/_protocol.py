"""What the client sends and what it makes of the answers, shared by `Client` and
`AsyncClient`: only the sending differs between them."""

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from importlib.metadata import version
from typing import Any
from urllib.parse import quote

import httpx

from kiusys_client.errors import ApiError, KiusysError

# The service's batch check reads at most 100 routes a call; `check_many` splits longer lists.
MAX_BATCH_ROUTES = 100
# The service closes an idle kept-alive connection after 5 s (`HEADER_READ_TIMEOUT_MS` in
# kiusys_app/serve.py). A pooled connection is dropped a second earlier, so that no request is
# sent on a connection the server is closing at that moment.
KEEPALIVE_EXPIRY = 4.0
LIMITS = httpx.Limits(
    max_connections=100, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_EXPIRY
)
USER_AGENT = f"kiusys-client/{version('kiusys-client')}"


@dataclass(frozen=True)
class Recorded:
    """A record the service counted: the route's count with it, and the key that made it safe
    to retry. `replayed` is true when an earlier attempt with this key had already counted it."""

    route: str
    transactions: int
    key: str
    replayed: bool


@dataclass(frozen=True)
class Usage:
    """What the routes counted per UTC day (or month) from `first` to `last`, both included:
    per route, each period that counted something; `total`, their sum."""

    first: str
    last: str
    granularity: str
    routes: dict[str, dict[str, int]]
    total: int


@dataclass(frozen=True)
class Call:
    """One call, the same on every attempt: its request id and idempotency key included."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    idempotency_key: str | None = None
    request_id: str = field(default_factory=lambda: f"kiusys-client-{uuid.uuid4().hex}")

    def request(self, http: httpx.Client | httpx.AsyncClient, timeout: float) -> httpx.Request:
        headers = {"X-Request-ID": self.request_id}
        if self.idempotency_key is not None:
            headers["Idempotency-Key"] = self.idempotency_key
        return http.build_request(
            self.method, self.path, params=self.params, headers=headers, timeout=timeout
        )


def route_path(route: str) -> str:
    return f"/v1/routes/{quote(route, safe='')}/transactions"


def record_call(route: str, key: str) -> Call:
    return Call("POST", route_path(route), idempotency_key=key)


def check_call(route: str) -> Call:
    return Call("GET", route_path(route))


def check_many_calls(routes: Iterable[str]) -> Iterator[Call]:
    """One batch check per 100 distinct routes."""
    distinct = list(dict.fromkeys(routes))
    for start in range(0, len(distinct), MAX_BATCH_ROUTES):
        chunk = distinct[start : start + MAX_BATCH_ROUTES]
        yield Call("GET", "/v1/transactions", params=tuple(("route", route) for route in chunk))


def usage_calls(
    first: date | str,
    last: date | str,
    airline: str | None,
    routes: Iterable[str],
    granularity: str,
) -> Iterator[Call]:
    """The usage of an airline in one call, or of routes in one call per 100 distinct ones."""
    period = (("from", str(first)), ("to", str(last)), ("granularity", granularity))
    if airline is not None:
        yield Call("GET", "/v1/usage", params=(*period, ("airline", airline)))
        return
    distinct = list(dict.fromkeys(routes))
    for start in range(0, len(distinct), MAX_BATCH_ROUTES):
        chunk = distinct[start : start + MAX_BATCH_ROUTES]
        yield Call("GET", "/v1/usage", params=(*period, *(("route", route) for route in chunk)))


def usage_of(answers: Iterable[Any]) -> Usage:
    """The usage answers of one question, as one."""
    routes: dict[str, dict[str, int]] = {}
    body: dict[str, Any] = {}
    for body in answers:
        routes.update(body["routes"])
    return Usage(
        first=body["from"],
        last=body["to"],
        granularity=body["granularity"],
        routes=routes,
        total=sum(count for periods in routes.values() for count in periods.values()),
    )


def headers(api_key: str | None) -> dict[str, str]:
    agent = {"User-Agent": USER_AGENT}
    return agent if api_key is None else {**agent, "Authorization": f"Bearer {api_key}"}


def refusal(response: httpx.Response) -> ApiError:
    """The server's answer as an error: its JSON `detail` (or the start of a body that is not
    JSON, such as a load balancer's page) and its request id."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text[:200] or response.reason_phrase
    return ApiError(response.status_code, detail, response.headers.get("X-Request-ID"))


def answer(response: httpx.Response) -> Any:
    """The JSON of a 2xx, or the refusal raised."""
    if not response.is_success:
        raise refusal(response)
    try:
        return response.json()
    except ValueError:
        raise KiusysError(f"the server answered {response.status_code} with no JSON") from None


def recorded(response: httpx.Response, key: str) -> Recorded:
    body = answer(response)
    return Recorded(
        route=body["route"],
        transactions=body["transactions"],
        key=key,
        replayed=response.headers.get("Idempotent-Replayed") == "true",
    )


def checked(response: httpx.Response) -> int:
    return int(answer(response)["transactions"])
