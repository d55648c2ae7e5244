"""`make local-aws`: rehearse the runbook on a laptop, against moto instead of AWS.

`up` starts the emulator in the background, applies the four roots to it in order through the
same override files the tests use, and prints the environment that points `make run` at the
provisioned tables. `down` stops the emulator and removes everything it made.

Usage: python -m tests.support.local_aws up|down
"""

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.aws import FAKE_CREDENTIALS
from tests.support.processes import REPO_ROOT, Emulator, free_port, wait_until_up
from tests.support.terraform import ROOTS, TerraformError, Workspace

# Where the emulator's state, certificate and Terraform copies live (a test points it elsewhere).
STATE_DIR = Path(os.environ.get("KIUSYS_LOCAL_AWS_DIR", REPO_ROOT / ".local-aws"))
PID_FILE = STATE_DIR / "moto.pid"


def up() -> None:
    if PID_FILE.exists():
        sys.exit(
            f"local-aws is already running (pid {PID_FILE.read_text()}); run `make local-aws-down` first"
        )
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    cert_dir = STATE_DIR / "tls"
    cert_dir.mkdir(exist_ok=True)
    port = free_port()
    emulator = Emulator(f"https://localhost:{port}", cert_dir / "moto.crt")
    with (STATE_DIR / "moto.log").open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.moto_server",
                "--port",
                str(port),
                "--cert-dir",
                str(cert_dir),
            ],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    PID_FILE.write_text(str(process.pid))
    root = "the emulator"
    try:
        wait_until_up(f"{emulator.url}/moto-api/", process, emulator.ca_bundle)
        workspace = Workspace(STATE_DIR / "roots", emulator)
        for root in ROOTS:
            print(f"applying {root}/ ...", flush=True)
            workspace.init(root)
            workspace.apply(root)
    except (TerraformError, RuntimeError, TimeoutError) as exc:
        down()
        sys.exit(f"local-aws failed at {root}, so it stopped the emulator it started:\n{exc}")
    exports = {
        "KIUSYS_STORE": "dynamodb",
        "AWS_ENDPOINT_URL": emulator.url,
        "AWS_CA_BUNDLE": str(emulator.ca_bundle),
        **{k: v for k, v in FAKE_CREDENTIALS.items() if k != "AWS_DEFAULT_REGION"},
    }
    print("\nThe emulator is running with the four roots applied. Point the service at it with:\n")
    print("export " + " ".join(f"{name}={value}" for name, value in exports.items()))
    print("make run\n\nStop it with: make local-aws-down")


def _running(pid: int) -> bool:
    """Whether `pid` is still there; reaps it when it is this process's own child."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def down() -> None:
    if PID_FILE.exists():
        pid = int(PID_FILE.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and _running(pid):
                time.sleep(0.1)
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    print("local-aws stopped and cleaned up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down"])
    {"up": up, "down": down}[parser.parse_args().action]()


if __name__ == "__main__":
    main()
