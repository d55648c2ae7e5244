"""Start and stop the real servers that the slower suites talk to."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    # The emulator's HTTPS certificate is made up on the spot; only loopback is ever asked.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode} before {url}")
        try:
            if httpx.get(url, timeout=1.0, verify=False).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running(
    args: list[str], ready_url: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `args` from the repository root until the block ends, once `ready_url` answers."""
    process = subprocess.Popen(
        args,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(ready_url, process)
        yield process
    finally:
        stop(process)


@contextmanager
def moto_server(tls: bool = False) -> Iterator[str]:
    """A single-threaded moto on a free loopback port; yields its endpoint URL."""
    port = free_port()
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    args = [sys.executable, "-m", "tests.support.moto_server", "--port", str(port)]
    if tls:
        args.append("--tls")
    with running(args, f"{url}/moto-api/"):
        yield url


@contextmanager
def app_server(env: Mapping[str, str], workers: int = 1) -> Iterator[str]:
    """The service under uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        sys.executable, "-m", "uvicorn", "kiusys_app.main:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--no-access-log",
    ]  # fmt: skip
    with running(args, f"{url}/readyz", env):
        yield url
