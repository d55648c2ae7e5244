"""API keys on the record and check calls; probes, metrics and docs stay open."""

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from kiusys_app.api import paths
from kiusys_app.api.auth import ApiKeyGate
from kiusys_app.clients import ANONYMOUS, Client, Clients, Permission, digest_of
from kiusys_app.config import Settings
from tests.support.app import metric, sqlite_settings, started_app

KEYS = ["first-key-0123456789abcdef", "second-key-0123456789abcdef"]

PROTECTED = [
    ("POST", "/save-transaction/AR1133"),
    ("POST", "/get-transaction/AR1133"),
    ("GET", "/get-transaction/AR1133"),
    ("POST", "/v1/routes/AR1133/transactions"),
    ("GET", "/v1/routes/AR1133/transactions"),
    ("GET", "/v1/transactions?route=AR1133"),
    # A trailing slash is no way around the key (FastAPI would redirect it to the route).
    ("POST", "/save-transaction/AR1133/"),
    ("GET", "/v1/transactions/?route=AR1133"),
]


@pytest.fixture
def keyed_settings(tmp_path: Path) -> Settings:
    keys_file = tmp_path / "api-keys"
    keys_file.write_text(f"{KEYS[1]}\n")
    return sqlite_settings(tmp_path, api_keys=KEYS[0], api_keys_file=keys_file)


@pytest.fixture
def keyed(keyed_settings: Settings, log_output: io.StringIO) -> Iterator[TestClient]:
    with started_app(keyed_settings) as client:
        yield client


def recorded(client: TestClient) -> int:
    response = client.get("/get-transaction/AR1133", headers={"X-API-Key": KEYS[0]})
    return int(response.json()["AR1133"])


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-key-0123456789"},
        {"X-API-Key": "not-a-key-0123456789"},
        {"Authorization": f"Basic {KEYS[0]}"},
        {"Authorization": f"Bearer {KEYS[0][:-1]}"},
    ],
    ids=["none", "wrong-bearer", "wrong-header", "not-bearer", "prefix"],
)
def test_missing_or_wrong_key_is_401_and_changes_nothing(
    keyed: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    response = keyed.request(method, path, headers=headers, follow_redirects=False)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert recorded(keyed) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEYS[0]}"},
        {"Authorization": f"bearer {KEYS[1]}"},
        {"X-API-Key": KEYS[1]},
    ],
    ids=["bearer-from-env", "bearer-from-file", "header-from-file"],
)
def test_any_configured_key_is_accepted(keyed: TestClient, headers: dict[str, str]) -> None:
    response = keyed.post("/v1/routes/AR1133/transactions", headers=headers)
    assert response.status_code == 201
    assert recorded(keyed) == 1


@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/regionz", "/", "/openapi.json", "/docs-assets/swagger-ui.css"]
)
def test_probes_and_docs_stay_open(keyed: TestClient, path: str) -> None:
    assert keyed.get(path).status_code == 200


def test_the_public_port_does_not_give_the_metrics(keyed: TestClient) -> None:
    without_key = keyed.get("/metrics")
    assert without_key.status_code == 401
    with_key = keyed.get("/metrics", headers={"X-API-Key": KEYS[0]})
    assert with_key.status_code == 404
    assert "kiusys_http_requests_total" not in without_key.text + with_key.text


def test_swagger_offers_both_ways_to_authorize(keyed: TestClient) -> None:
    schema = keyed.get("/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}
    operation = schema["paths"]["/v1/routes/{route}/transactions"]["post"]
    assert operation["security"] == [{"ApiKey": []}, {"Bearer": []}]
    assert "401" in operation["responses"]
    assert "security" not in schema["paths"]["/healthz"]["get"]


def test_keys_never_reach_the_logs(keyed: TestClient, log_output: io.StringIO) -> None:
    keyed.post("/save-transaction/AR1133", headers={"Authorization": f"Bearer {KEYS[0]}"})
    keyed.post("/save-transaction/AR1133", headers={"X-API-Key": KEYS[1]})
    keyed.post("/save-transaction/AR1133", headers={"X-API-Key": "wrong-key-0123456789"})
    logged = log_output.getvalue()
    assert logged.count('"message":"request"') == 3
    for secret in [*KEYS, "wrong-key-0123456789", "Bearer"]:
        assert secret not in logged


def test_without_keys_calls_are_open_and_the_start_up_warns_once(
    tmp_path: Path, log_output: io.StringIO
) -> None:
    with started_app(sqlite_settings(tmp_path)) as client:
        assert client.post("/save-transaction/AR1133").status_code == 200
    warnings = [line for line in log_output.getvalue().splitlines() if "no API keys" in line]
    assert len(warnings) == 1


def test_with_keys_set_an_unknown_path_also_needs_a_key(keyed: TestClient) -> None:
    assert keyed.get("/no/such/path").status_code == 401
    assert keyed.get("/no/such/path", headers={"X-API-Key": KEYS[0]}).status_code == 404


def test_a_refused_request_is_still_logged_with_its_id(
    keyed: TestClient, log_output: io.StringIO
) -> None:
    response = keyed.post("/save-transaction/AR1133", headers={"X-Request-ID": "refused-1"})
    assert (response.status_code, response.headers["X-Request-ID"]) == (401, "refused-1")
    assert '"request_id":"refused-1"' in log_output.getvalue()
    assert '"status":401' in log_output.getvalue()


@pytest.mark.parametrize(
    ("method", "path", "label"),
    [
        ("POST", "/v1/routes/AR1133/transactions", "/v1/routes/{route}/transactions"),
        ("HEAD", "/get-transaction/AR1133", "/get-transaction/{flight_route}"),
        ("GET", "/v1/transactions?route=AR1133", "/v1/transactions"),
        ("GET", "/no/such/path", "<unmatched>"),
    ],
)
def test_a_refused_call_is_labelled_with_the_route_it_was_for(
    keyed: TestClient, method: str, path: str, label: str
) -> None:
    before = metric(
        "kiusys_http_requests_total", route=label, method=method, status="401", client=ANONYMOUS
    )
    assert keyed.request(method, path).status_code == 401
    after = metric(
        "kiusys_http_requests_total", route=label, method=method, status="401", client=ANONYMOUS
    )
    assert after == before + 1


def test_a_bearer_token_is_checked_before_an_x_api_key(keyed: TestClient) -> None:
    """As the API page says: a wrong bearer token is refused even beside a right X-API-Key."""
    headers = {"Authorization": "Bearer wrong-key-0123456789", "X-API-Key": KEYS[0]}
    assert keyed.get("/get-transaction/AR1133", headers=headers).status_code == 401
    headers = {"Authorization": f"Bearer {KEYS[0]}", "X-API-Key": "wrong-key-0123456789"}
    assert keyed.get("/get-transaction/AR1133", headers=headers).status_code == 200


def test_the_gate_alone_asks_of_a_head_what_it_asks_of_a_get() -> None:
    """In the app `HeadAsGet` turns HEAD into GET before the gate; the gate is right without it:
    a HEAD on a check's route (Starlette answers HEAD wherever GET is) needs the check right."""

    async def counted(request: Request) -> PlainTextResponse:
        return PlainTextResponse("0")

    app = Starlette(
        routes=[Route(paths.ROUTE_TRANSACTIONS, counted, methods=["GET"])],
        middleware=[Middleware(ApiKeyGate, open_paths=frozenset())],
    )
    recorder = Client("recorder", None, frozenset({Permission.RECORD}))
    checker = Client("checker", None, frozenset({Permission.CHECK}))
    app.state.clients = Clients(
        {digest_of("recorder-key"): recorder, digest_of("checker-key"): checker}
    )
    with TestClient(app) as client:
        path = "/v1/routes/AR1133/transactions"
        refused = client.head(path, headers={"X-API-Key": "recorder-key"})
        allowed = client.head(path, headers={"X-API-Key": "checker-key"})
    assert (refused.status_code, allowed.status_code) == (403, 200)
