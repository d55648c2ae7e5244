"""`make load`: wrk against a deployed endpoint, bounded in time, with the key; wrk is a
stand-in here that records how it was called and answers as wrk does."""

import os
import subprocess
from pathlib import Path

from tests.scripts.test_scripts import stub
from tests.support.processes import REPO_ROOT

WRK_OUTPUT = """Running 5s test @ https://kiusys.example.com/save-transaction/AR1133
  1 threads and 32 connections
  Latency Distribution
     50%   12.50ms
     75%   20.00ms
     90%   30.00ms
     99%   81.25ms
  6000 requests in 5.00s, 1.00MB read
  Non-2xx or 3xx responses: 7
Requests/sec:   1200.00
"""


def make_load(tmp_path: Path, *variables: str) -> subprocess.CompletedProcess[str]:
    calls = tmp_path / "wrk-calls"
    (tmp_path / "wrk-output").write_text(WRK_OUTPUT)
    stub(
        tmp_path / "bin",
        "wrk",
        f'echo "$* API_KEY=$API_KEY" >> "{calls}"; cat "{tmp_path / "wrk-output"}"',
    )
    return subprocess.run(
        ["make", "--no-print-directory", "load", *variables],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_load_runs_wrk_for_the_given_time_with_the_key(tmp_path: Path) -> None:
    result = make_load(
        tmp_path, "URL=https://kiusys.example.com/", "API_KEY=k-0123456789abcdef", "DURATION=5"
    )
    assert result.returncode == 0, result.stderr
    (call,) = (tmp_path / "wrk-calls").read_text().splitlines()
    assert "-c32 -d5s" in call
    assert call.endswith(
        "https://kiusys.example.com/save-transaction/AR1133 API_KEY=k-0123456789abcdef"
    )
    assert "k-0123456789abcdef" not in result.stdout, "the key is not printed"
    assert result.stdout.strip() == (
        "6000 requests, 1,200 rps, p50 12.5 ms, p99 81.2 ms, non-2xx 7, socket errors 0"
    )


def test_load_spreads_over_many_routes_when_asked(tmp_path: Path) -> None:
    result = make_load(tmp_path, "URL=https://kiusys.example.com", "ROUTES=1000", "CONNECTIONS=8")
    assert result.returncode == 0, result.stderr
    (call,) = (tmp_path / "wrk-calls").read_text().splitlines()
    assert "-c8 -d60s" in call, "60 s unless told otherwise"
    assert "distinct_routes.lua https://kiusys.example.com " in call


def test_load_needs_a_url_and_a_bounded_duration(tmp_path: Path) -> None:
    assert make_load(tmp_path).returncode == 2
    unbounded = make_load(tmp_path, "URL=https://kiusys.example.com", "DURATION=0")
    assert unbounded.returncode != 0
    assert "--duration must be 1 to 3600 seconds" in unbounded.stderr
    assert not (tmp_path / "wrk-calls").exists(), "wrk never ran"
