"""The usage call on both stores: per-day counts through the HTTP API on a test clock, the CSV
that matches the JSON, one clear 422 for each bad date or range, and the `usage` right."""

import csv
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, generate_latest

from kiusys_app.api.paths import USAGE
from kiusys_app.usage import MAX_DAYS
from tests.app.conftest import Clock
from tests.app.test_clients import CLIENTS_FILE, as_client
from tests.app.test_usage_store import at
from tests.support.app import metric, sqlite_settings, started_app

NOVEMBER = "from=2026-11-01&to=2026-11-30"


@pytest.fixture
def clocked(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest, clock: Clock
) -> Iterator[TestClient]:
    """The app on a fresh store of each kind, on the test's clock."""
    if store_kind == "dynamodb":
        request.getfixturevalue("aws")
    with started_app(sqlite_settings(tmp_path, store=store_kind), clock) as client:
        yield client


def record(app: TestClient, route: str, key: str | None = None, **headers: str) -> Any:
    sent = {**headers, **({"Idempotency-Key": key} if key else {})}
    answer = app.post(f"/v1/routes/{route}/transactions", headers=sent)
    assert answer.status_code in (200, 201), answer.text
    return answer


def test_usage_per_day_across_a_midnight_and_a_month_end(clocked: TestClient, clock: Clock) -> None:
    clock.now = at("2026-11-30T23:59:58")
    record(clocked, "AR1133")
    record(clocked, "AR1133", "order-1")
    record(clocked, "AR0001")
    record(clocked, "LA0001")
    clock.now = at("2026-12-01T00:00:01")
    assert record(clocked, "AR1133", "order-1").status_code == 200, "a replay"
    record(clocked, "AR1133")
    record(clocked, "LA0001", "order-2")
    november = clocked.get(f"/v1/usage?airline=AR&{NOVEMBER}").json()
    assert november == {
        "from": "2026-11-01",
        "to": "2026-11-30",
        "granularity": "day",
        "routes": {"AR0001": {"2026-11-30": 1}, "AR1133": {"2026-11-30": 2}},
        "total": 3,
    }
    both = clocked.get(
        "/v1/usage?route=AR1133&route=la0001&route=G31234&from=2026-11-30&to=2026-12-01"
    )
    assert both.json()["routes"] == {
        "AR1133": {"2026-11-30": 2, "2026-12-01": 1},
        "LA0001": {"2026-11-30": 1, "2026-12-01": 1},
        "G31234": {},
    }
    by_month = clocked.get("/v1/usage?airline=AR&from=2026-11-01&to=2026-12-31&granularity=month")
    assert by_month.json()["routes"] == {
        "AR0001": {"2026-11": 1},
        "AR1133": {"2026-11": 2, "2026-12": 1},
    }
    for route in ("AR1133", "AR0001", "LA0001"):
        days = clocked.get(f"/v1/usage?route={route}&from=2026-01-01&to=2026-12-31").json()
        count = clocked.get(f"/v1/routes/{route}/transactions").json()["transactions"]
        assert days["total"] == count, route


def test_the_csv_parses_and_matches_the_json(clocked: TestClient, clock: Clock) -> None:
    for day, routes in (("2026-11-02", ["AR1133", "AR1133", "AR0001"]), ("2026-11-20", ["AR1133"])):
        clock.now = at(f"{day}T12:00:00")
        for route in routes:
            record(clocked, route)
    for granularity in ("day", "month"):
        asked = f"/v1/usage?airline=AR&{NOVEMBER}&granularity={granularity}"
        answer = clocked.get(asked, headers={"Accept": "text/csv"})
        assert answer.headers["content-type"] == "text/csv; charset=utf-8"
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        from_csv: dict[str, dict[str, int]] = {}
        for row in rows:
            from_csv.setdefault(row["route"], {})[row["period"]] = int(row["transactions"])
        assert from_csv == clocked.get(asked).json()["routes"]
    header = clocked.get(f"/v1/usage?airline=LA&{NOVEMBER}", headers={"Accept": "text/csv"})
    assert header.text == "route,period,transactions\r\n"


def test_a_future_day_is_zero_and_an_airline_without_routes_is_empty(clocked: TestClient) -> None:
    record(clocked, "AR1133")
    answer = clocked.get("/v1/usage?airline=AR&from=2999-01-01&to=2999-12-31").json()
    assert (answer["routes"], answer["total"]) == ({}, 0)
    assert clocked.get(f"/v1/usage?airline=G3&{NOVEMBER}").json()["routes"] == {}


# Each bad input: one clear 422, nothing changed.

BAD = {
    "a month that is not one": ("airline=AR&from=2026-13-01&to=2026-12-31", "from", "YYYY-MM-DD"),
    "a day that is not one": ("airline=AR&from=2026-02-30&to=2026-03-01", "from", "YYYY-MM-DD"),
    "no dashes": ("airline=AR&from=20261101&to=2026-11-30", "from", "YYYY-MM-DD"),
    "a time": ("airline=AR&from=2026-11-01T00:00&to=2026-11-30", "from", "YYYY-MM-DD"),
    "to before from": ("airline=AR&from=2026-11-30&to=2026-11-01", "to", "is after to"),
    "too many days": ("airline=AR&from=2025-11-01&to=2026-11-30", "to", f"at most {MAX_DAYS}"),
    "neither airline nor routes": (NOVEMBER, "airline", "either one airline"),
    "both": (f"airline=AR&route=AR1133&{NOVEMBER}", "airline", "either one airline"),
    "a bad airline": (f"airline=A&{NOVEMBER}", "airline", "an airline is"),
    "a bad route": (f"route=nope&{NOVEMBER}", "route", "a flight route is"),
    "a bad granularity": (f"airline=AR&{NOVEMBER}&granularity=week", "granularity", "'day'"),
    "no to": ("airline=AR&from=2026-11-01", "to", "required"),
}


@pytest.mark.parametrize(("query", "where", "says"), BAD.values(), ids=BAD.keys())
def test_bad_dates_and_ranges_get_one_clear_422(
    clocked: TestClient, query: str, where: str, says: str
) -> None:
    answer = clocked.get(f"/v1/usage?{query}")
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"][:2] == ["query", where]
    assert says in error["msg"]


def test_a_full_year_with_a_leap_day_is_one_call(clocked: TestClient) -> None:
    assert clocked.get("/v1/usage?airline=AR&from=2028-01-01&to=2028-12-31").status_code == 200


# Who may read usage.

# Two billing clients beside test_clients' own: one for every airline, one for AR alone.
BILLING_KEYS = {
    "billing": "kiu_billing-0123456789abcdefghijklmnopqrstuv",
    "aerolineas-billing": "kiu_arbilling-0123456789abcdefghijklmnopq",
}
BILLING_CLIENTS = "".join(
    f"""
[clients.{name}]
key_sha256 = ["{hashlib.sha256(key.encode()).hexdigest()}"]
airlines = ["{"*" if name == "billing" else "AR"}"]
can = ["usage"]
"""
    for name, key in BILLING_KEYS.items()
)


@pytest.fixture
def scoped(tmp_path: Path) -> Iterator[TestClient]:
    clients = tmp_path / "clients.toml"
    clients.write_text(CLIENTS_FILE + BILLING_CLIENTS)
    with started_app(sqlite_settings(tmp_path, clients_file=clients)) as client:
        yield client


def key_of(client: str) -> dict[str, str]:
    return as_client(client, BILLING_KEYS.get(client))


@pytest.mark.parametrize(
    ("client", "query", "status", "detail"),
    [
        ("aerolineas-billing", f"airline=AR&{NOVEMBER}", 200, None),
        ("aerolineas-billing", f"route=AR1133&{NOVEMBER}", 200, None),
        (
            "aerolineas-billing",
            f"airline=LA&{NOVEMBER}",
            403,
            "this client may not read the usage of airline LA",
        ),
        (
            "aerolineas-billing",
            f"route=AR1133&route=LA0001&{NOVEMBER}",
            403,
            "this client may not read the usage of airline LA",
        ),
        ("billing", f"airline=LA&{NOVEMBER}", 200, None),
        ("aerolineas", f"airline=AR&{NOVEMBER}", 403, "this client may not read usage"),
        ("analytics", f"airline=AR&{NOVEMBER}", 403, "this client may not read usage"),
    ],
)
def test_usage_is_a_right_of_its_own_and_only_for_a_clients_airlines(
    scoped: TestClient, client: str, query: str, status: int, detail: str | None
) -> None:
    answer = scoped.get(f"/v1/usage?{query}", headers=key_of(client))
    assert answer.status_code == status, answer.text
    if detail is not None:
        assert answer.json() == {"detail": detail}


def test_a_billing_client_may_not_record(scoped: TestClient) -> None:
    answer = scoped.post("/v1/routes/AR1133/transactions", headers=key_of("billing"))
    assert answer.json() == {"detail": "this client may not record transactions"}


def test_the_shorthand_keys_keep_every_right(tmp_path: Path) -> None:
    key = "shorthand-key-0123456789abcdef"
    with started_app(sqlite_settings(tmp_path, api_keys=key)) as app:
        record(app, "AR1133", **{"X-API-Key": key})
        answer = app.get(
            "/v1/usage?airline=AR&from=2000-01-01&to=2000-12-31", headers={"X-API-Key": key}
        )
        assert answer.status_code == 200


def test_the_usage_calls_latency_is_in_the_request_histogram_and_no_route_is_a_label(
    clocked: TestClient,
) -> None:
    labels = {"route": USAGE, "method": "GET", "status": "200"}
    before = metric("kiusys_http_request_duration_seconds_count", **labels)
    record(clocked, "AR1133")
    assert clocked.get(f"/v1/usage?airline=AR&{NOVEMBER}").status_code == 200
    assert metric("kiusys_http_request_duration_seconds_count", **labels) == before + 1
    assert "AR1133" not in generate_latest(REGISTRY).decode()
