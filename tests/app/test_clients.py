"""Named clients: the clients file checked at start-up, keys made by `kiusys-app new-key`, each
client held to its airlines and rights (403, nothing written), idempotency keys that are each
client's own, and the client's name in the access log and the request counter."""

import hashlib
import io
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from kiusys_app.api.auth import PERMISSIONS
from kiusys_app.clients import ANONYMOUS, Clients, ClientsError, Permission
from kiusys_app.config import ConfigError, load_clients
from kiusys_app.main import create_app
from kiusys_app.models import ROUTE_RULE, airline_of, normalize_route
from tests.support.app import metric, sqlite_settings, started_app
from tests.support.aws import FAKE_CREDENTIALS
from tests.support.processes import KIUSYS_APP, app_process, refusal, start_server

# Keys and their digests, as an operator would hold them.
KEYS = {
    name: f"kiu_{name}-0123456789abcdefghijklmnopqrstuv"
    for name in ("aerolineas", "latam", "analytics", "aerolineas-web")
}
DIGESTS = {name: hashlib.sha256(key.encode()).hexdigest() for name, key in KEYS.items()}
CLIENTS_FILE = f"""
[clients.aerolineas]
key_sha256 = ["{DIGESTS["aerolineas"]}"]
airlines = ["AR"]
can = ["record", "check"]

[clients.latam]
key_sha256 = ["{DIGESTS["latam"]}"]
airlines = ["LA"]
can = ["record", "check"]

[clients.analytics]
key_sha256 = ["{DIGESTS["analytics"]}"]
airlines = ["*"]
can = ["check"]

[clients.aerolineas-web]
key_sha256 = ["{DIGESTS["aerolineas-web"]}"]
airlines = ["ar"]
can = ["record"]
"""


def as_client(name: str, key: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key or KEYS[name]}"}


@pytest.fixture
def clients_file(tmp_path: Path) -> Path:
    path = tmp_path / "clients.toml"
    path.write_text(CLIENTS_FILE)
    return path


@pytest.fixture
def app(tmp_path: Path, clients_file: Path, log_output: io.StringIO) -> Iterator[TestClient]:
    with started_app(sqlite_settings(tmp_path, clients_file=clients_file)) as client:
        yield client


def count(app: TestClient, route: str) -> int:
    answer = app.get(f"/v1/routes/{route}/transactions", headers=as_client("analytics"))
    return int(answer.json()["transactions"])


# The rule for a route's airline, against the route pattern.


@pytest.mark.parametrize(
    ("route", "airline"),
    [("AR1133", "AR"), ("ar1133", "AR"), ("G31234", "G3"), ("3G12A", "3G"), ("ABC123", "ABC")],
)
def test_a_routes_airline_is_its_designators_code(route: str, airline: str) -> None:
    assert airline_of(normalize_route(route)) == airline


def test_the_airline_of_a_route_that_is_not_one_is_refused_with_the_route_rule() -> None:
    with pytest.raises(ValueError, match=re.escape(ROUTE_RULE)):
        airline_of("not-a-route")


# What a client may do.


def test_each_client_records_and_checks_its_own_airlines_routes(app: TestClient) -> None:
    ar = app.post("/v1/routes/AR1133/transactions", headers=as_client("aerolineas"))
    la = app.post("/save-transaction/LA0001", headers=as_client("latam"))
    assert (ar.status_code, la.status_code) == (201, 200)
    assert app.get("/get-transaction/AR1133", headers=as_client("aerolineas")).json() == {
        "AR1133": 1
    }


@pytest.mark.parametrize(
    ("client", "method", "path", "detail"),
    [
        (
            "aerolineas",
            "POST",
            "/v1/routes/LA0001/transactions",
            "this client may not record routes of airline LA",
        ),
        (
            "aerolineas",
            "POST",
            "/save-transaction/la0001",
            "this client may not record routes of airline LA",
        ),
        (
            "analytics",
            "POST",
            "/save-transaction/AR1133",
            "this client may not record transactions",
        ),
        (
            "aerolineas-web",
            "GET",
            "/get-transaction/AR1133",
            "this client may not check transactions",
        ),
        (
            "aerolineas",
            "GET",
            "/v1/transactions?route=AR1133&route=LA0001&route=G31234",
            "this client may not check routes of airline G3, LA",
        ),
        (
            "latam",
            "GET",
            "/v1/routes/AR1133/transactions",
            "this client may not check routes of airline AR",
        ),
    ],
)
def test_a_call_outside_the_clients_airlines_or_rights_is_403_and_writes_nothing(
    app: TestClient, client: str, method: str, path: str, detail: str
) -> None:
    before = {route: count(app, route) for route in ("AR1133", "LA0001")}
    answer = app.request(method, path, headers=as_client(client))
    assert (answer.status_code, answer.json()) == (403, {"detail": detail})
    assert KEYS[client] not in answer.text
    assert {route: count(app, route) for route in before} == before


def test_a_bad_route_is_still_a_422_for_any_client(app: TestClient) -> None:
    answer = app.post("/v1/routes/NOT-A-ROUTE/transactions", headers=as_client("aerolineas"))
    assert answer.status_code == 422


def test_an_unknown_key_or_a_digest_sent_as_a_key_is_401(app: TestClient) -> None:
    for key in ("kiu_unknown-0123456789abcdefghijklmnopqrst", DIGESTS["aerolineas"]):
        answer = app.post("/save-transaction/AR1133", headers={"X-API-Key": key})
        assert answer.status_code == 401


def test_every_closed_operation_has_its_permission(tmp_path: Path) -> None:
    schema = create_app(sqlite_settings(tmp_path)).openapi()
    closed = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "security" in operation
    }
    assert closed == set(PERMISSIONS)


# Idempotency keys, each client's own.


def test_two_clients_same_key_count_twice_and_each_retry_nothing(app: TestClient) -> None:
    key = {"Idempotency-Key": "order-4711"}
    first = [
        app.post("/v1/routes/AR1133/transactions", headers={**as_client(name), **key})
        for name in ("aerolineas", "aerolineas-web")
    ]
    assert [answer.status_code for answer in first] == [201, 201]
    retries = [
        app.post("/v1/routes/AR1133/transactions", headers={**as_client(name), **key})
        for name in ("aerolineas", "aerolineas-web")
    ]
    assert [answer.headers.get("Idempotent-Replayed") for answer in retries] == ["true", "true"]
    assert count(app, "AR1133") == 2


@pytest.mark.parametrize("path", ["/save-transaction/AR1133", "/v1/routes/AR1133/transactions"])
def test_two_idempotency_keys_in_one_request_are_refused(app: TestClient, path: str) -> None:
    headers = [("Authorization", f"Bearer {KEYS['aerolineas']}")]
    headers += [("Idempotency-Key", "order-1"), ("Idempotency-Key", "order-2")]
    answer = app.post(path, headers=headers)
    assert answer.status_code == 422
    assert answer.json() == {
        "detail": [
            {
                "loc": ["header", "Idempotency-Key"],
                "msg": "send one Idempotency-Key, not several: which one was meant would be a guess",
                "type": "idempotency_key_repeated",
            }
        ]
    }
    assert "order-1" not in answer.text
    assert count(app, "AR1133") == 0


def test_a_key_written_before_clients_is_honoured_by_the_shorthand_not_by_a_named_client(
    tmp_path: Path, clients_file: Path
) -> None:
    """Before the upgrade, keys were kept as the client sent them; the shorthand client (the
    same KIUSYS_API_KEYS as before) still finds them, so a retry across the upgrade counts
    nothing. A named client keeps its keys under its name: a retry that also moved from the
    shorthand to the clients file within the key's 24 hours is counted once more."""
    shorthand = sqlite_settings(tmp_path, api_keys=KEYS["aerolineas"])
    key = {**as_client("aerolineas"), "Idempotency-Key": "order-before"}
    with started_app(shorthand) as app:
        assert app.post("/save-transaction/AR1133", headers=key).status_code == 200
        assert app.post("/save-transaction/AR1133", headers=key).headers["Idempotent-Replayed"]
    with started_app(sqlite_settings(tmp_path, clients_file=clients_file)) as app:
        assert app.post("/save-transaction/AR1133", headers=key).json() == {"AR1133": 2}
        assert app.post("/save-transaction/AR1133", headers=key).headers["Idempotent-Replayed"]


# Who called, in the log and the metrics; never a key or a digest.


def test_head_carries_its_client_into_the_log_and_the_counter_refusals_too(
    app: TestClient, log_output: io.StringIO
) -> None:
    labels = {"route": "/v1/routes/{route}/transactions", "method": "HEAD"}
    ok = {**labels, "status": "200", "client": "aerolineas"}
    refused = {**labels, "status": "403", "client": "aerolineas"}
    before = (
        metric("kiusys_http_requests_total", **ok),
        metric("kiusys_http_requests_total", **refused),
    )
    answers = [
        app.head(f"/v1/routes/{route}/transactions", headers=as_client("aerolineas"))
        for route in ("AR1133", "LA0001")
    ]
    assert [answer.status_code for answer in answers] == [200, 403]
    after = (
        metric("kiusys_http_requests_total", **ok),
        metric("kiusys_http_requests_total", **refused),
    )
    assert after == (before[0] + 1, before[1] + 1)
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    requests = [line for line in lines if line["message"] == "request"]
    assert [(line["method"], line["status"], line["client"]) for line in requests[-2:]] == [
        ("HEAD", 200, "aerolineas"),
        ("HEAD", 403, "aerolineas"),
    ]


def test_no_client_can_be_named_as_the_anonymous_label(tmp_path: Path) -> None:
    path = tmp_path / "clients.toml"
    path.write_text(CLIENTS_FILE.replace("[clients.analytics]", f'[clients."{ANONYMOUS}"]'))
    with pytest.raises(ClientsError, match=f"client '{ANONYMOUS}': a client's name is"):
        Clients.from_file(path)


def test_the_access_log_and_the_counter_carry_the_client_and_no_key(
    app: TestClient, log_output: io.StringIO
) -> None:
    labels = {"route": "/v1/routes/{route}/transactions", "method": "POST"}
    before = metric("kiusys_http_requests_total", **labels, status="201", client="aerolineas")
    app.post("/v1/routes/AR1133/transactions", headers=as_client("aerolineas"))
    app.post("/v1/routes/AR1133/transactions", headers=as_client("analytics"))
    app.post("/v1/routes/AR1133/transactions", headers={"X-API-Key": "kiu_nobody-0123456789ab"})
    after = metric("kiusys_http_requests_total", **labels, status="201", client="aerolineas")
    assert after == before + 1
    assert metric("kiusys_http_requests_total", **labels, status="403", client="analytics") >= 1
    assert metric("kiusys_http_requests_total", **labels, status="401", client=ANONYMOUS) >= 1
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    requests = [line for line in lines if line["message"] == "request"]
    assert [line["client"] for line in requests[-3:]] == ["aerolineas", "analytics", ANONYMOUS]
    logged = log_output.getvalue()
    for name in KEYS:
        assert KEYS[name] not in logged
        assert DIGESTS[name] not in logged


# The clients file, checked at start-up.


def bad(body: str, tmp_path: Path) -> str:
    path = tmp_path / "clients.toml"
    path.write_text(body)
    with pytest.raises(ClientsError) as refused:
        Clients.from_file(path)
    return str(refused.value)


ONE = f'key_sha256 = ["{DIGESTS["latam"]}"]\nairlines = ["LA"]\ncan = ["record"]\n'
BAD_FILES = {
    "no-client": ("# nobody yet\n", "it is set but holds no client"),
    "not-toml": ("[clients.x\n", "it is not TOML"),
    "unknown-table": (f"[client.latam]\n{ONE}", "unknown table or field 'client'"),
    "unknown-field": (
        f"[clients.latam]\n{ONE}rate = 5\n",
        "client 'latam': unknown field 'rate'",
    ),
    "missing-field": (
        f'[clients.latam]\nkey_sha256 = ["{DIGESTS["latam"]}"]\ncan = ["check"]\n',
        "client 'latam': airlines is missing",
    ),
    "short-hash": (
        '[clients.latam]\nkey_sha256 = ["abc123"]\nairlines = ["LA"]\ncan = ["check"]\n',
        "client 'latam': 'abc123' is not a SHA-256 digest (64 hex digits)",
    ),
    "clear-text-key": (
        f'[clients.latam]\nkey_sha256 = ["{KEYS["latam"]}"]\nairlines = ["LA"]\ncan = ["check"]\n',
        "client 'latam': key_sha256 holds a key in clear text, not its SHA-256",
    ),
    "same-hash-twice": (
        f"[clients.latam]\n{ONE}\n[clients.latam-2]\n{ONE}",
        "client 'latam-2': a key_sha256 is client 'latam''s too",
    ),
    "unknown-permission": (
        f'[clients.latam]\nkey_sha256 = ["{DIGESTS["latam"]}"]\nairlines = ["LA"]\n'
        'can = ["write"]\n',
        "client 'latam': unknown permission 'write' (allowed: record, check, usage)",
    ),
    "impossible-airline": (
        f'[clients.latam]\nkey_sha256 = ["{DIGESTS["latam"]}"]\nairlines = ["12"]\n'
        'can = ["check"]\n',
        "client 'latam': '12' is not an airline code",
    ),
    "all-and-one": (
        f'[clients.latam]\nkey_sha256 = ["{DIGESTS["latam"]}"]\nairlines = ["*", "LA"]\n'
        'can = ["check"]\n',
        "client 'latam': airlines is ['*'] alone",
    ),
    "bad-name": (f"[clients.LATAM]\n{ONE}", "client 'LATAM': a client's name is 1 to 63"),
    "no-rights": (
        f'[clients.latam]\nkey_sha256 = ["{DIGESTS["latam"]}"]\nairlines = ["LA"]\ncan = []\n',
        "client 'latam': can must be a list of one or more strings",
    ),
}


@pytest.mark.parametrize(("body", "expected"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_clients_file_is_refused_naming_the_client(
    tmp_path: Path, body: str, expected: str
) -> None:
    assert bad(body, tmp_path).startswith(expected)


def test_the_settings_name_the_clients_file_in_each_refusal(
    tmp_path: Path, clients_file: Path
) -> None:
    both = sqlite_settings(tmp_path, clients_file=clients_file, api_keys=KEYS["latam"])
    with pytest.raises(ConfigError) as refused:
        load_clients(both)
    assert str(refused.value) == (
        f"invalid setting KIUSYS_CLIENTS_FILE ({clients_file}): set it or "
        "KIUSYS_API_KEYS/KIUSYS_API_KEYS_FILE, not both"
    )
    body, expected = BAD_FILES["bad-name"]
    clients_file.write_text(body)
    with pytest.raises(ConfigError) as refused:
        load_clients(sqlite_settings(tmp_path, clients_file=clients_file))
    assert str(refused.value).startswith(
        f"invalid setting KIUSYS_CLIENTS_FILE ({clients_file}): {expected}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD_FILES)
def test_the_server_refuses_a_bad_clients_file_in_one_json_line(tmp_path: Path, case: str) -> None:
    body, expected = BAD_FILES[case]
    path = tmp_path / "clients.toml"
    path.write_text(body)
    message = refusal(start_server({"KIUSYS_CLIENTS_FILE": str(path)}))
    assert message == message.strip()
    assert message.startswith(f"invalid setting KIUSYS_CLIENTS_FILE ({path}): {expected}")
    for name in KEYS:
        assert KEYS[name] not in message


@pytest.mark.slow
def test_the_clients_file_and_the_api_keys_together_are_refused(
    tmp_path: Path, clients_file: Path
) -> None:
    env = {"KIUSYS_CLIENTS_FILE": str(clients_file), "KIUSYS_API_KEYS": KEYS["latam"]}
    message = refusal(start_server(env))
    assert message.endswith("set it or KIUSYS_API_KEYS/KIUSYS_API_KEYS_FILE, not both")


# kiusys-app new-key, and the real server, on both stores.


def new_key(name: str, *scope: str) -> tuple[str, str]:
    """`kiusys-app new-key NAME` with `scope` (by default AR, record and check): the key it
    shows, and the entry it prints."""
    args = [
        KIUSYS_APP,
        "new-key",
        name,
        *(scope or ("--airline", "AR", "--can", "record", "--can", "check")),
    ]
    made = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60)
    (key,) = re.findall(r"shown once: (kiu_\S+)$", made.stderr, re.MULTILINE)
    assert key not in made.stdout, "the file's entry holds only the digest"
    return key, made.stdout


def test_a_new_key_gets_exactly_the_airlines_and_rights_asked_for(tmp_path: Path) -> None:
    key, entry = new_key("latam", "--airline", "la", "--airline", "JJ", "--airline", "LA", "--can", "record")  # fmt: skip
    path = tmp_path / "clients.toml"
    path.write_text(entry)
    client = Clients.from_file(path).find(key)
    assert client is not None
    assert (client.airlines, client.can) == (frozenset({"LA", "JJ"}), {Permission.RECORD})
    _, everyone = new_key("ops", "--airline", "*", "--can", "check")
    assert 'airlines = ["*"]' in everyone, "every airline only when asked for by name"


@pytest.mark.parametrize(
    "args",
    [
        ["web"],
        ["web", "--can", "record"],
        ["web", "--airline", "AR"],
        ["web", "--airline", "*", "--airline", "AR", "--can", "record"],
        ["web", "--airline", "A-1", "--can", "record"],
        ["web", "--airline", "AR", "--can", "delete"],
        ["Web!", "--airline", "AR", "--can", "record"],
    ],
)
def test_new_key_without_a_scope_or_with_a_bad_one_makes_no_key(args: list[str]) -> None:
    made = subprocess.run(
        [KIUSYS_APP, "new-key", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert made.returncode == 3
    assert made.stdout == ""
    (line,) = made.stderr.splitlines()
    assert json.loads(line)["message"].startswith("invalid argument: ")


@pytest.mark.parametrize("command", [[], ["new-key"]], ids=["kiusys-app", "new-key"])
def test_help_prints_usage_and_exits_0(command: list[str]) -> None:
    shown = subprocess.run(
        [KIUSYS_APP, *command, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert shown.returncode == 0
    assert shown.stdout.startswith("usage: kiusys-app")
    assert shown.stderr == ""
    expected = ["--airline", "--can"] if command else ["new-key", "8000", "9464", "127.0.0.1"]
    assert all(word in shown.stdout for word in expected)


@pytest.fixture(params=["sqlite", "dynamodb"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "sqlite":
        return {"KIUSYS_SQLITE_PATH": str(tmp_path / "counts.sqlite3")}
    request.getfixturevalue("moto_tables")
    moto_url = request.getfixturevalue("moto_url")
    return {**FAKE_CREDENTIALS, "KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": moto_url}


@pytest.mark.slow
def test_new_keys_pasted_into_the_file_authenticate_and_scope_their_keys(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    """Two clients that may both record AR send the same Idempotency-Key to AR1133: the count
    goes up by 2, and each one's retry counts nothing. The real `kiusys-app`, on each store."""
    (first, first_entry), (second, second_entry) = new_key("reservas"), new_key("web")
    path = tmp_path / "clients.toml"
    path.write_text(first_entry + second_entry)
    log = tmp_path / "server.log"
    with app_process({**store_env, "KIUSYS_CLIENTS_FILE": str(path)}, log=log) as server:
        url = f"{server.url}/v1/routes/AR1133/transactions"
        statuses: list[Any] = []
        for key in (first, second, first, second):
            answer = httpx.post(url, headers={"X-API-Key": key, "Idempotency-Key": "order-4711"})
            statuses.append((answer.status_code, answer.headers.get("Idempotent-Replayed")))
        final = httpx.get(url, headers={"X-API-Key": first}).json()["transactions"]
        metrics = httpx.get(server.metrics_url).text
    assert statuses == [(201, None), (201, None), (200, "true"), (200, "true")]
    assert final == 2
    assert re.search(r'kiusys_http_requests_total\{.*client="reservas".*status="201"', metrics)
    logged = log.read_text()
    assert '"client":"web"' in logged
    for key in (first, second):
        assert key not in logged
        assert hashlib.sha256(key.encode()).hexdigest() not in logged
