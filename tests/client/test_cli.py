"""The client as the README and the runbook use it, against the real `kiusys-app`: the
README's Python block and its `kiusys` commands, then the command's answers when the server
refuses, when the deadline ends and when a key is needed."""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiusys_client.cli import parser
from kiusys_client.client import DEFAULT_URL
from tests.support.processes import AppServer, app_process, free_port

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
KIUSYS = str(Path(sys.executable).with_name("kiusys"))
KEY = "kiusys-client-test-key-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    store = tmp_path_factory.mktemp("store") / "counts.sqlite3"
    with app_process({"KIUSYS_SQLITE_PATH": str(store)}) as running:
        yield running


def kiusys(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The `kiusys` command with only `env` (and PATH) set."""
    return subprocess.run(
        [KIUSYS, *args],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def answer(result: subprocess.CompletedProcess[str], status: int = 0) -> Any:
    """The one JSON line the command printed: stdout when it succeeded, stderr otherwise."""
    assert result.returncode == status, result.stderr
    out, other = (result.stdout, result.stderr) if status == 0 else (result.stderr, result.stdout)
    assert other == ""
    (line,) = out.splitlines()
    return json.loads(line)


def test_the_readmes_python_and_commands_record_and_check(server: AppServer) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    assert DEFAULT_URL in block
    python = subprocess.run(
        [sys.executable, "-c", block.replace(DEFAULT_URL, server.url)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    first = python.stdout.split()[0]
    assert python.stdout == f"{first} {{'AR1133': {first}, 'LA0001': 0}}\n"
    commands = re.findall(r"`\.venv/bin/kiusys ([a-z]+) ([A-Z0-9 ]+)`", readme)
    assert commands == [("record", "AR1133"), ("check", "AR1133 LA0001")]
    recorded = answer(kiusys("record", "AR1133", KIUSYS_URL=server.url))
    assert recorded["transactions"] == int(first) + 1
    assert recorded["replayed"] is False
    counts = answer(kiusys("check", "AR1133", "LA0001", KIUSYS_URL=server.url))
    assert counts == {"AR1133": int(first) + 1, "LA0001": 0}


def test_a_key_given_again_counts_nothing(server: AppServer) -> None:
    first = answer(kiusys("--url", server.url, "record", "LA0002", "--key", "order-4711"))
    again = answer(kiusys("--url", server.url, "record", "LA0002", "--key", "order-4711"))
    assert again == {**first, "replayed": True}


def test_a_refusal_is_one_json_line_on_stderr_with_the_servers_message(server: AppServer) -> None:
    refused = answer(kiusys("--url", server.url, "record", "AR-1133"), status=1)
    assert refused["status"] == 422
    assert "a flight route is an airline code" in json.dumps(refused["detail"])
    assert refused["request_id"].startswith("kiusys-client-")


def test_a_record_past_its_deadline_prints_its_key_and_counts_once_when_resumed(
    server: AppServer,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    gave_up = answer(kiusys("--url", nowhere, "--deadline", "0.5", "record", "G31234"), status=3)
    assert "ConnectError" in gave_up["error"]
    key = gave_up["key"]
    resumed = answer(kiusys("--url", server.url, "record", "G31234", "--key", key))
    assert (resumed["key"], resumed["transactions"]) == (key, 1)


def test_bad_usage_exits_2() -> None:
    assert kiusys("record").returncode == 2
    assert kiusys("--deadline", "0", "check", "AR1133").returncode == 2
    assert kiusys("launch", "AR1133").returncode == 2


def test_the_api_key_comes_from_the_environment_and_help_never_shows_it(tmp_path: Path) -> None:
    env = {"KIUSYS_SQLITE_PATH": str(tmp_path / "counts.sqlite3"), "KIUSYS_API_KEYS": KEY}
    with app_process(env) as keyed:
        refused = answer(kiusys("--url", keyed.url, "check", "AR1133"), status=1)
        assert refused["status"] == 401
        counts = answer(kiusys("--url", keyed.url, "check", "AR1133", KIUSYS_API_KEY=KEY))
        assert counts == {"AR1133": 0}
        flag = answer(kiusys("--url", keyed.url, "--api-key", KEY, "record", "AR1133"))
        assert flag["transactions"] == 1
    shown = kiusys("--help", KIUSYS_API_KEY=KEY)
    assert shown.returncode == 0
    assert "KIUSYS_API_KEY" in shown.stdout
    assert KEY not in "".join(shown.stdout.split()), "not even wrapped over two lines"


def test_the_default_url_is_where_make_run_serves() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    host = re.search(r"^HOST \?= (\S+)$", makefile, re.MULTILINE)
    port = re.search(r"^PORT \?= (\S+)$", makefile, re.MULTILINE)
    assert host
    assert port
    assert f"http://{host[1]}:{port[1]}" == DEFAULT_URL
    assert parser().parse_args(["check", "AR1133"]).url == os.environ.get("KIUSYS_URL", DEFAULT_URL)
