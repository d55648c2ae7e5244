"""The limits table of docs/api.md against the real `kiusys-app`: each limit is sent at its edge
and one past it, and answered as the table says (the service's JSON, or the server's own empty
431 with no X-Request-ID)."""

import json
import re
from collections.abc import Callable

import pytest

from tests.support.processes import REPO_ROOT, AppServer, app_process, raw_answer

pytestmark = pytest.mark.slow

API_PAGE = REPO_ROOT / "docs" / "api.md"
CLOSE = b"Connection: close"


def documented_limits() -> dict[str, tuple[int, str]]:
    """The table under "## Limits": {limit: (at most, what answers past it)}."""
    section = API_PAGE.read_text().split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (?!limit |---)(.+?) \| ([\d,]+)(?: bytes)? \| (.+?) \|$", section, re.M)
    return {name: (int(most.replace(",", "")), past) for name, most, past in rows}


def request(
    target: bytes = b"/healthz", headers: list[bytes] | None = None, body: bytes = b""
) -> bytes:
    method = b"POST " if body else b"GET "
    lines = [method + target + b" HTTP/1.1", b"Host: x", CLOSE, *(headers or [])]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join([*lines, b"", body])


def url_of(size: int) -> bytes:
    """A path and a query of `size` bytes in all (the `?` between them is neither)."""
    target = b"/healthz?q="
    return request(target + b"a" * (size - len(target) + 1))


def headers_of(size: int) -> bytes:
    """Headers whose names and values add up to `size` (Host and Connection included)."""
    fixed = len(b"host") + len(b"x") + len(b"connection") + len(b"close")
    return request(headers=[b"X-Pad: " + b"a" * (size - fixed - len(b"x-pad"))])


def body_of(size: int) -> bytes:
    return request(b"/save-transaction/AR1133", body=b"x" * size)


def fields_of(count: int) -> bytes:
    """`count` header fields in all (Host and Connection included)."""
    return request(headers=[b"X-H%d: v" % n for n in range(count - 2)])


def head_of(size: int) -> bytes:
    """A request line and headers of exactly `size` bytes, the blank line included."""
    bare = request(headers=[b"X-Pad: "])
    return request(headers=[b"X-Pad: " + b"a" * (size - len(bare))])


PROBES: dict[str, Callable[[int], bytes]] = {
    "URL: path and query": url_of,
    "headers: their names and values added up": headers_of,
    "body (`Content-Length`, or the chunks)": body_of,
    "header fields": fields_of,
    "request line and headers, sent at once": head_of,
}


def answered(server: AppServer, raw: bytes) -> tuple[int, bool, dict[str, object] | None]:
    """The status, whether X-Request-ID came back, and the JSON body (None if empty)."""
    head, _, body = raw_answer(server.url, raw).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, b"x-request-id:" in head.lower(), json.loads(body) if body else None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> object:
    path = tmp_path_factory.mktemp("limits") / "counts.sqlite3"
    with app_process({"KIUSYS_SQLITE_PATH": str(path)}) as running:
        yield running


def test_every_documented_limit_has_a_probe() -> None:
    assert set(documented_limits()) == set(PROBES)


@pytest.mark.parametrize("limit", PROBES)
def test_each_limit_answers_as_documented_at_its_edge(server: AppServer, limit: str) -> None:
    most, past = documented_limits()[limit]
    probe = PROBES[limit]
    if limit == "request line and headers, sent at once":
        # At the edge the head reaches the service (its headers are over 16 KiB: a JSON 431).
        status, tagged, body = answered(server, probe(most))
        assert (status, tagged, body is not None) == (431, True, True)
    else:
        status, tagged, _ = answered(server, probe(most))
        assert status < 400, f"{limit}: {most} is allowed"
        assert tagged
    status, tagged, body = answered(server, probe(most + 1))
    if past.startswith("JSON "):
        assert (status, tagged) == (int(past.removeprefix("JSON ")), True), limit
        assert body is not None
        assert str(body["detail"]).startswith("this service refuses requests with")
    else:
        assert past == "the server's 431, empty"
        assert (status, tagged, body) == (431, False, None), limit
