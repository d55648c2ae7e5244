"""Swagger UI at `/` as a user sees it: Debian's Chromium, driven by Playwright, against the
real service (`kiusys-app`) with API keys on. Reading the page's HTML proves nothing about what
renders; these tests click.

`make screenshot` runs the "Try it out" test with KIUSYS_SCREENSHOT set, which writes the
picture in the README.
"""

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright

from kiusys_app.api.docs import DOCS_ALIAS, DOCS_PATH
from tests.support.processes import AppServer, app_process

pytestmark = pytest.mark.slow

KEY = "browser-test-key-0123456789"  # a client with every right, for every airline
SCOPED_KEY = "kiu_aerolineas-browser-0123456789"  # a client that may record and check AR only
CHROMIUM = os.environ.get("KIUSYS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# What the machine's closed network needs (no background calls home), beside Playwright's own.
CHROMIUM_ARGS = ["--disable-gpu", "--disable-quic", "--disable-component-update", "--disable-sync"]
# Every CSP violation the page reports, kept where the test can read it.
RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""

# Adds an inline script; answers the directive that refused it, or null within 5 s.
TRY_AN_INLINE_SCRIPT = """
() => new Promise((resolve) => {
  document.addEventListener("securitypolicyviolation", (e) => resolve(e.effectiveDirective));
  setTimeout(() => resolve(null), 5000);
  document.body.appendChild(document.createElement("script")).textContent = "1";
})
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium where apt-get "
            "exists; elsewhere set KIUSYS_CHROMIUM to a Chromium binary"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def clients_entry(name: str, key: str, airline: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f'[clients.{name}]\nkey_sha256 = ["{digest}"]\nairlines = ["{airline}"]\n' + (
        'can = ["record", "check", "usage"]\n'
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AppServer]:
    """The service on a fresh embedded store, with two clients."""
    clients = tmp_path / "clients.toml"
    clients.write_text(
        clients_entry("browser", KEY, "*") + clients_entry("aerolineas", SCOPED_KEY, "AR")
    )
    env = {
        "KIUSYS_STORE": "sqlite",
        "KIUSYS_SQLITE_PATH": str(tmp_path / "counts.sqlite3"),
        "KIUSYS_CLIENTS_FILE": str(clients),
    }
    with app_process(env) as running:
        yield running


@dataclass
class Visit:
    """An open Swagger UI page, with everything it asked for and everything that went wrong."""

    page: Page
    schema: dict[str, Any]
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # The Content-Security-Policy header that came with the page.
    policy: str = ""

    def csp_violations(self) -> list[str]:
        return list(self.page.evaluate("window.cspViolations"))

    def operation(self, method: str, path: str) -> Locator:
        """The operation's block, expanded, as Swagger UI names it: tag, then operationId."""
        spec = self.schema["paths"][path][method.lower()]
        block = self.page.locator(f"#operations-{spec['tags'][0]}-{spec['operationId']}")
        block.locator(".opblock-summary").click()
        return block


@pytest.fixture
def visit(browser: Browser, server: AppServer) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    seen = Visit(page, httpx.get(f"{server.url}/openapi.json").json())
    context.on("request", lambda request: seen.requests.append(request.url))
    context.on("requestfailed", lambda request: seen.failed.append(request.url))
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    loaded = page.goto(f"{server.url}{DOCS_PATH}")
    assert loaded is not None
    seen.policy = loaded.headers.get("content-security-policy", "")
    page.locator(".opblock").first.wait_for(timeout=15_000)
    yield seen
    context.close()


def authorize(page: Page, key: str) -> None:
    """Authorize → the ApiKey scheme's value → Apply credentials → Close."""
    page.locator("button.authorize").first.click()
    scheme = page.locator(".auth-container").filter(has=page.locator("h4", has_text="ApiKey"))
    scheme.locator("#api_key_value").fill(key)
    scheme.get_by_role("button", name="Apply credentials").click()
    scheme.get_by_role("button", name="Close").click()


def try_it_out(block: Locator, **parameters: str | list[str]) -> tuple[int, Any]:
    """Try it out with `parameters` (a list fills an array's items), Execute, and read the
    status and JSON body that the page shows."""
    try_out = block.get_by_role("button", name="Try it out")
    # The block renders its buttons after it expands: wait for one of them before deciding.
    try_out.or_(block.get_by_role("button", name="Cancel")).first.wait_for()
    if try_out.is_visible():
        try_out.click()
    for name, value in parameters.items():
        row = block.locator(f'tr[data-param-name="{name}"]')
        if isinstance(value, list):
            for _ in value:
                row.get_by_role("button", name="Add string item").click()
            for item, text in zip(row.locator("input").all(), value, strict=True):
                item.fill(text)
        else:
            row.locator("input").fill(value)
    answer = block.locator(".live-responses-table .response")
    clear = block.get_by_role("button", name="Clear")
    if clear.is_visible():  # the previous answer, which must not be read as this one
        clear.click()
        answer.wait_for(state="detached")
    block.get_by_role("button", name="Execute").click()
    answer.wait_for()
    status = int(answer.locator(".response-col_status").inner_text())
    body = answer.locator(".response-col_description pre.microlight").first.inner_text()
    return status, json.loads(body)


def picture(page: Page, block: Locator, path: Path) -> None:
    """A screenshot of `block` from its summary down to the answer it shows."""
    top = block.bounding_box()
    bottom = block.locator(".live-responses-table").bounding_box()
    assert top is not None
    assert bottom is not None
    height = bottom["y"] + bottom["height"] - top["y"]
    page.screenshot(path=path, full_page=True, clip={**top, "height": height})


def test_the_page_renders_every_operation_with_nothing_from_outside(
    visit: Visit, server: AppServer
) -> None:
    expected = {
        (method.upper(), path) for path, ops in visit.schema["paths"].items() for method in ops
    }
    shown = {
        (
            block.locator(".opblock-summary-method").inner_text(),
            block.locator(".opblock-summary-path").get_attribute("data-path"),
        )
        for block in visit.page.locator(".opblock").all()
    }
    assert shown == expected
    assert len(expected) == 10  # the 7 API operations and the 3 health paths
    assert visit.requests, "the page loaded nothing"
    assert [url for url in visit.requests if not url.startswith(f"{server.url}/")] == []
    assert visit.failed == []
    assert visit.errors == []


def test_the_docs_page_runs_under_its_csp_with_no_violation(visit: Visit) -> None:
    assert "script-src 'self'" in visit.policy
    assert "style-src 'self'" in visit.policy
    authorize(visit.page, KEY)
    try_it_out(visit.operation("GET", "/get-transaction/{flight_route}"), flight_route="AR1133")
    assert visit.csp_violations() == []
    # The policy is in force, not merely sent: an inline script is refused and reported.
    assert visit.page.evaluate(TRY_AN_INLINE_SCRIPT) == "script-src-elem"


def test_authorize_then_try_it_out_on_each_call(visit: Visit) -> None:
    authorize(visit.page, KEY)
    record = visit.operation("POST", "/save-transaction/{flight_route}")
    assert try_it_out(record, flight_route="AR1133") == (200, {"AR1133": 1})
    # What the README's picture shows of the server, as it runs in production.
    shown = record.locator(".live-responses-table .response .response-col_description").inner_text()
    assert "server: granian" in shown
    if screenshot := os.environ.get("KIUSYS_SCREENSHOT"):
        picture(visit.page, record, Path(screenshot))

    check = visit.operation("GET", "/get-transaction/{flight_route}")
    assert try_it_out(check, flight_route="AR1133") == (200, {"AR1133": 1})

    batch = visit.operation("GET", "/v1/transactions")
    assert try_it_out(batch, route=["AR1133", "LA0001"]) == (200, {"AR1133": 1, "LA0001": 0})

    keyed = visit.operation("POST", "/v1/routes/{route}/transactions")
    first = try_it_out(keyed, route="AR1133", **{"Idempotency-Key": "order-4711"})
    assert first == (201, {"route": "AR1133", "transactions": 2})
    replay = try_it_out(keyed)
    assert replay == (200, {"route": "AR1133", "transactions": 2})
    assert "idempotent-replayed: true" in keyed.locator(".live-responses-table").inner_text()

    today = datetime.now(UTC).date().isoformat()
    usage = visit.operation("GET", "/v1/usage")
    assert try_it_out(usage, airline="AR", **{"from": today, "to": today}) == (
        200,
        {
            "from": today,
            "to": today,
            "granularity": "day",
            "routes": {"AR1133": {today: 2}},
            "total": 2,
        },
    )


def test_a_wrong_key_shows_the_json_401(visit: Visit, server: AppServer) -> None:
    authorize(visit.page, "not-the-right-key-0123456789")
    status, body = try_it_out(
        visit.operation("POST", "/save-transaction/{flight_route}"), flight_route="AR1133"
    )
    assert status == 401
    assert body["detail"]
    assert httpx.get(f"{server.url}/get-transaction/AR1133", headers={"X-API-Key": KEY}).json() == {
        "AR1133": 0
    }


def test_a_scoped_client_records_its_airline_and_is_shown_a_403_for_another(
    visit: Visit, server: AppServer
) -> None:
    authorize(visit.page, SCOPED_KEY)
    record = visit.operation("POST", "/save-transaction/{flight_route}")
    assert try_it_out(record, flight_route="AR1133") == (200, {"AR1133": 1})
    status, body = try_it_out(record, flight_route="LA0001")
    assert (status, body) == (403, {"detail": "this client may not record routes of airline LA"})
    counts = httpx.get(
        f"{server.url}/v1/transactions?route=AR1133&route=LA0001", headers={"X-API-Key": KEY}
    )
    assert counts.json() == {"AR1133": 1, "LA0001": 0}


def test_docs_sends_the_browser_to_the_swagger_ui(browser: Browser, server: AppServer) -> None:
    """/docs, where every FastAPI user looks first, lands on the same page, keys not needed."""
    context = browser.new_context()
    page = context.new_page()
    loaded = page.goto(f"{server.url}{DOCS_ALIAS}")
    assert loaded is not None
    assert loaded.status == 200
    assert page.url == f"{server.url}{DOCS_PATH}"
    page.locator(".opblock").first.wait_for(timeout=15_000)
    assert page.title() == "Kiusys transaction counter - Swagger UI"
    context.close()
