"""Start and stop the real servers that the slower suites talk to."""

import ctypes
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(
    url: str, process: subprocess.Popen[bytes], ca_bundle: Path | None = None, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode} before {url}")
        try:
            verify: ssl.SSLContext | bool = True
            if ca_bundle is not None and ca_bundle.exists():
                verify = ssl.create_default_context(cafile=ca_bundle)
            if httpx.get(url, timeout=1.0, verify=verify).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def wait_for(
    condition: Callable[[], T], what: str, timeout: float = 30.0, interval: float = 0.05
) -> T:
    """Poll `condition` until it returns something true, and return that; fail, naming `what`,
    after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        time.sleep(interval)
    return value


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent ends


def die_with_parent() -> None:
    """In a child, before it runs its program: end it with SIGTERM once the test process ends,
    however that ends (pytest-timeout's thread method calls os._exit, which runs no teardown).
    The kernel sends it when the thread that started the child ends, so start servers from the
    test's own thread (fixtures and tests run there), not from a short-lived one."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


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
    args: list[str],
    ready_url: str,
    env: Mapping[str, str] | None = None,
    ca_bundle: Path | None = None,
    log: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `args` from the repository root until the block ends, once `ready_url` answers.

    Its output goes to `log` when given, for a post-mortem, and is dropped otherwise.
    """
    output = log.open("ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        args,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=output,
        stderr=output,
        preexec_fn=die_with_parent,
    )
    try:
        wait_until_up(ready_url, process, ca_bundle)
        yield process
    finally:
        stop(process)
        if log:
            output.close()  # type: ignore[union-attr]


@dataclass(frozen=True)
class Emulator:
    url: str
    # The CA bundle that verifies the emulator's HTTPS certificate; None when it serves HTTP.
    ca_bundle: Path | None = None


@contextmanager
def moto_server(cert_dir: Path | None = None) -> Iterator[Emulator]:
    """A single-threaded moto on a free loopback port.

    With `cert_dir`, it serves HTTPS as `localhost` with a self-signed certificate written there,
    so that "deny unless TLS" bucket policies behave as they do on AWS.
    """
    port = free_port()
    args = [sys.executable, "-m", "tests.support.moto_server", "--port", str(port)]
    if cert_dir is None:
        emulator = Emulator(f"http://127.0.0.1:{port}")
    else:
        args += ["--cert-dir", str(cert_dir)]
        emulator = Emulator(f"https://localhost:{port}", cert_dir / "moto.crt")
        cert_dir.mkdir(parents=True, exist_ok=True)
    log = cert_dir / "moto.log" if cert_dir else None
    with running(args, f"{emulator.url}/moto-api/", ca_bundle=emulator.ca_bundle, log=log):
        yield emulator


@contextmanager
def dynamodb_standin() -> Iterator[str]:
    """The DynamoDB stand-in (tests/support/dynamodb_standin.py) on a free loopback port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "tests.support.dynamodb_standin", "--port", str(port)]
    with running(args, f"{url}/"):
        yield url


@dataclass(frozen=True)
class AppServer:
    url: str
    metrics_url: str
    process: subprocess.Popen[bytes]


KIUSYS_APP = str(Path(sys.executable).with_name("kiusys-app"))


@contextmanager
def app_process(
    env: Mapping[str, str],
    workers: int = 1,
    log: Path | None = None,
    ready_path: str = "/readyz",
    target: str | None = None,
) -> Iterator[AppServer]:
    """The service as `kiusys-app` serves it, with its own settings, on free loopback ports; up
    once `ready_path` answers. `target`: another app for it to serve (a test's)."""
    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        KIUSYS_APP, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--metrics-port", str(metrics_port), *(["--target", target] if target else []),
    ]  # fmt: skip
    with running(args, f"{url}{ready_path}", env, log=log) as process:
        yield AppServer(url, f"http://127.0.0.1:{metrics_port}/metrics", process)


def start_server(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real `kiusys-app` command, as the image runs it, with only `env` set (and free ports,
    unless `env` names them)."""
    ports = [] if "PORT" in env else ["--port", str(free_port())]
    if "KIUSYS_METRICS_PORT" not in env:
        ports += ["--metrics-port", str(free_port())]
    return subprocess.run(
        [KIUSYS_APP, *ports, *args],
        cwd=REPO_ROOT,
        env={"PATH": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one JSON line of a refused start, exit 3; its message."""
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    logged = json.loads(line)
    assert logged["level"] == "critical"
    return str(logged["message"])


def raw_answer(url: str, request: bytes) -> bytes:
    """What the server sends back, up to its close, for bytes written as they are."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def workers_of(server: subprocess.Popen[bytes]) -> set[int]:
    """The pids of the server's worker processes (its children, on Linux)."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return {int(pid) for pid in children}


@contextmanager
def app_server(
    env: Mapping[str, str], workers: int = 1, target: str | None = None
) -> Iterator[str]:
    """The service on a free loopback port; yields its base URL."""
    with app_process(env, workers, target=target) as server:
        yield server.url
