"""The servers a test starts end with it, even when it ends without teardown."""

import subprocess
import sys
from pathlib import Path

from tests.support.processes import REPO_ROOT, wait_for

# A test process that starts a server and dies the way pytest-timeout's thread method ends one:
# os._exit, so no `finally` and no fixture teardown run.
DIES_MID_TEST = """
import os, sys
from tests.support.processes import free_port, running
port = free_port()
with running([sys.executable, "-m", "http.server", str(port)], f"http://127.0.0.1:{port}/") as server:
    print(server.pid, flush=True)
    os._exit(1)
"""


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_server_ends_when_the_test_process_is_gone() -> None:
    died = subprocess.run(
        [sys.executable, "-c", DIES_MID_TEST],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert died.returncode == 1, died.stderr
    pid = int(died.stdout)
    wait_for(lambda: not alive(pid), f"server {pid} to end after its test process", timeout=10)
