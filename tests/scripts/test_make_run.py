"""`make run` and the README's walkthrough as the README shows them: the default command and its
curl lines, the keys-on block with `make -s new-key`, and a second instance beside the first
when it is given other ports for both the API and the metrics."""

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.markdown import fenced
from tests.support.processes import REPO_ROOT, free_port, wait_for

pytestmark = pytest.mark.slow

README = (REPO_ROOT / "README.md").read_text()
DEFAULT_URL = "http://127.0.0.1:8000"


@contextmanager
def make_run(*variables: str, store: Path, **env: str) -> Iterator[None]:
    """`make -s run` with `variables` on the command line and `env` set, its counts in `store`;
    stopped with its process group."""
    process = subprocess.Popen(
        ["make", "-s", "run", *variables],
        cwd=REPO_ROOT,
        env={**os.environ, "KIUSYS_SQLITE_PATH": str(store), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def serving(url: str) -> None:
    wait_for(lambda: answers(f"{url}/healthz"), f"make run on {url}", 60)


def bash(script: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def curl_blocks() -> list[str]:
    blocks = [block for block in fenced(README, "bash") if "$BASE/" in block]
    curls = [block for block in blocks if "Authorization" not in block]
    assert len(curls) == 3, "the walkthrough, its Idempotency-Key block and the usage call"
    return curls


def walkthrough() -> str:
    """The README's first two curl blocks, as one script."""
    return "".join(curl_blocks()[:2])


def test_the_walkthrough_answers_what_its_comments_say(tmp_path: Path) -> None:
    quickstart = fenced(README, "bash")[0]
    assert quickstart.startswith("make run "), "the Quickstart's first command"
    assert "PORT=8000 " in walkthrough()
    assert '"http://127.0.0.1:${PORT}"' in walkthrough()
    with make_run(store=tmp_path / "counts.sqlite3"):
        serving(DEFAULT_URL)
        ran = bash(walkthrough())
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        *(f'{{"AR1133":{count}}}' for count in range(1, 6)),
        '{"AR1133":5}{"LA0001":0}HTTP/1.1 201 Created',
        *ran.stdout.splitlines()[6:],
    ]
    replayed = re.findall(
        r"^idempotent-replayed: true\r?$", ran.stdout, re.IGNORECASE | re.MULTILINE
    )
    assert len(replayed) == 1, "the second key's answer only"
    bodies = re.findall(r'^\{"route":"AR1133","transactions":(\d+)\}', ran.stdout, re.MULTILINE)
    assert bodies == ["6", "6"]
    assert ran.stdout.endswith('{"AR1133":6,"LA0001":0}')
    assert "HTTP/1.1 200 OK" in ran.stdout


def test_the_usage_call_counts_the_walkthroughs_records_today(tmp_path: Path) -> None:
    usage = curl_blocks()[2]
    with make_run(store=tmp_path / "counts.sqlite3"):
        serving(DEFAULT_URL)
        ran = bash(walkthrough() + usage)
        today = bash("date -u +%F").stdout.strip()
    assert ran.returncode == 0, ran.stderr
    answer = ran.stdout.rpartition('{"AR1133":6,"LA0001":0}')[2]
    expected = (
        f'{{"from":"{today}","to":"{today}","granularity":"day",'
        f'"routes":{{"AR1133":{{"{today}":6}},"LA0001":{{}}}},"total":6}}'
    )
    assert answer == expected
    assert usage.splitlines()[-1] == "# " + expected.replace(today, "…")


def test_the_keys_on_block_serves_the_new_client_only(tmp_path: Path) -> None:
    (block,) = (block for block in fenced(README, "bash") if "new-key" in block)
    new_key, serve, curl = block.strip().splitlines()
    clients = tmp_path / "clients.toml"
    made = bash(new_key.replace("clients.toml", str(clients)))
    assert made.returncode == 0, made.stderr
    (key,) = re.findall(r"kiu_[\w-]+", made.stderr)
    assert key not in clients.read_text(), "shown once, on stderr"
    assert re.fullmatch(r"KIUSYS_CLIENTS_FILE=clients\.toml make run", serve)
    with make_run(store=tmp_path / "counts.sqlite3", KIUSYS_CLIENTS_FILE=str(clients)):
        serving(DEFAULT_URL)

        def sent(key: str, route: str = "AR1133") -> tuple[str, str]:
            """The block's curl with `key`, on `route`: its body and status."""
            line = curl.replace("kiu_…", key).replace("AR1133", route)
            ran = bash(
                f"BASE={DEFAULT_URL}\n" + line.replace("curl -s", "curl -s -w '\\n%{http_code}'")
            )
            body, status = ran.stdout.rsplit("\n", 1)
            return status, body

        recorded, unknown, other_airline = sent(key), sent("kiu_" + "x" * 43), sent(key, "IB0001")
    assert recorded == ("201", '{"route":"AR1133","transactions":1}')
    assert unknown == ("401", '{"detail":"a valid API key is required"}')
    assert other_airline == ("403", '{"detail":"this client may not record routes of airline IB"}')


def test_two_instances_run_side_by_side_on_their_own_ports(tmp_path: Path) -> None:
    store = tmp_path / "counts.sqlite3"
    first, second = (free_port(), free_port()), (free_port(), free_port())
    with (
        make_run(f"PORT={first[0]}", f"METRICS_PORT={first[1]}", store=store),
        make_run(f"PORT={second[0]}", f"METRICS_PORT={second[1]}", store=store),
    ):
        for port, metrics_port in (first, second):
            serving(f"http://127.0.0.1:{port}")
            recorded = httpx.post(f"http://127.0.0.1:{port}/save-transaction/AR1133")
            assert recorded.status_code == 200
            metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
            assert "kiusys_http_requests_total" in metrics
        count = httpx.get(f"http://127.0.0.1:{second[0]}/get-transaction/AR1133").json()
    assert count == {"AR1133": 2}, "both instances share the one file"
