"""`kiusys-app`: the one command that serves the service (`make run`, the image, the tests).

    kiusys-app [--host H] [--port P] [--workers N] [--metrics-port M]
    kiusys-app new-key NAME --airline CODE --can RIGHT
                               a new API key for the client NAME (on stderr, once), and its
                               entry for the clients file (on stdout: `>> clients.toml`)
    kiusys-app usage --airline CODE --month YYYY-MM [--output FILE]
                               an airline's usage in a month, per route and day, as CSV (the
                               invoice run; the store is the one the settings name)

The server is granian, run in this process: it forks the workers, each of which imports
`kiusys_app.main:app`. What it guarantees on the public port:
- a client that has not sent complete headers within HEADER_READ_TIMEOUT_MS is cut off, idle
  keep-alive connections included (hyper's header-read timer covers the wait for the next
  request too);
- at most MAX_CONNECTIONS connections per worker are open at once (granian's backpressure:
  an HTTP/1 connection holds its permit until it closes, idle or half-sent ones too); further
  ones wait in the kernel's accept queue (BACKLOG), not in this process's memory. With the
  buffer cap below, a worker's connections hold at most 32 MiB;
- a request line and headers larger than MAX_BUFFER_BYTES get the server's own answer; below
  that, the app's limits answer in JSON (see `api/limits.py`).

The metrics have a port of their own, served by this (the supervising) process: it adds up
every worker's files in PROMETHEUS_MULTIPROC_DIR (a private temporary directory unless set).

A worker that dies (an out-of-memory kill, a crash) is replaced at once and the others keep
serving; one that dies again within granian's crash-loop window (5.5 s after it was started)
ends the server, so that a worker that cannot start does not loop here: the pod restarts, with
the kubelet's back-off.

Every setting is checked here, before any worker starts, so that a failed start is one JSON
line and exit status 3. SIGTERM or SIGINT drain the workers (at most DRAIN_SECONDS) and exit 0.
"""

import argparse
import asyncio
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from kiusys_app.config import ConfigError, Settings, StoreKind, load_settings
from kiusys_app.logs import JSON_LOGGING, configure_logging, exit_at_startup

HEADER_READ_TIMEOUT_MS = 5_000
MAX_CONNECTIONS = 1024
BACKLOG = 1024
# The app's own limits (16 KiB of headers, an 8 KiB URL) answer in JSON below this size.
MAX_BUFFER_BYTES = 32 * 1024
DRAIN_SECONDS = 20
MULTIPROC_SETTING = "PROMETHEUS_MULTIPROC_DIR"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _number(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from {low} to {high}")
        return int(text)

    return parse


_PORT = _number(1, 65535)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        exit_at_startup(f"invalid argument: {message}")


def _from_environment(variable: str, default: str, parse: Callable[[str], int]) -> int:
    """An option's default from `variable`, refused under that variable's own name."""
    try:
        return parse(os.environ.get(variable, default))
    except argparse.ArgumentTypeError as exc:
        exit_at_startup(f"invalid setting {variable}: {exc}")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(
        prog="kiusys-app",
        description="Serve the Kiusys transaction counter. Settings come from KIUSYS_* "
        "variables (docs/operations.md, Settings).",
        epilog="kiusys-app new-key NAME --airline CODE --can RIGHT: a new client's API key "
        "(kiusys-app new-key --help).",
    )
    parser.add_argument(
        "--host", default=os.environ.get("HOST", "127.0.0.1"), help="address (env HOST; 127.0.0.1)"
    )
    parser.add_argument("--port", type=_PORT, help="the API's port (env PORT; 8000)")
    parser.add_argument("--workers", type=_number(1, 64), default="1", help="processes (1)")
    parser.add_argument(
        "--metrics-port", type=_PORT, help="the metrics' port (env KIUSYS_METRICS_PORT; 9464)"
    )
    # What `make bench` serves beside the app, with the same server settings.
    parser.add_argument("--target", default="kiusys_app.main:app", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # An option not given comes from the environment, and a bad value there is named as set.
    if args.port is None:
        args.port = _from_environment("PORT", "8000", _PORT)
    if args.metrics_port is None:
        args.metrics_port = _from_environment("KIUSYS_METRICS_PORT", "9464", _PORT)
    return args


def _metrics_directory() -> Path | None:
    """The directory the workers write their metrics to, checked; None when we must make one.

    prometheus_client picks its file-backed values when first imported, so this runs before
    anything imports it.
    """
    given = os.environ.get(MULTIPROC_SETTING)
    if not given:
        return None
    path = Path(given)
    if not path.is_dir():
        raise ConfigError(f"invalid setting {MULTIPROC_SETTING}: {path}: not a directory")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(f"invalid setting {MULTIPROC_SETTING}: {path}: not writable")
    for stale in path.glob("*.db"):  # a previous run's counts would be added to ours
        try:
            stale.unlink()
        except OSError as exc:
            raise ConfigError(
                f"invalid setting {MULTIPROC_SETTING}: {stale}: cannot remove this previous "
                f"run's file ({exc.strerror})"
            ) from None
    return path


def _check_store(settings: Settings) -> None:
    """Open the embedded store once and close it: a file that is no database, or one that
    cannot be opened, is refused here, in one line."""
    if settings.store is not StoreKind.SQLITE:
        return
    from kiusys_app.stores import StoreError
    from kiusys_app.stores.sqlite import SQLiteStore

    try:
        asyncio.run(SQLiteStore(settings.sqlite_path).aclose())
    except StoreError as exc:
        raise ConfigError(
            f"invalid setting KIUSYS_SQLITE_PATH: {settings.sqlite_path.absolute()}: {exc.reason}"
        ) from None


def _check_free(option: str, host: str, port: int) -> None:
    """Refuse an address that another process holds, or that cannot be bound, in one line."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"invalid setting --host/{option}: {host}:{port}: {reason}") from None


def _new_key(argv: list[str]) -> None:
    from kiusys_app.clients import ClientsError, Permission, new_key

    parser = _Parser(
        prog="kiusys-app new-key",
        description="A new API key for the client NAME, shown once on stderr, and its entry "
        "for the clients file on stdout (append it: >> clients.toml). The entry holds only "
        "the key's SHA-256, and exactly the airlines and rights named.",
    )
    parser.add_argument("name", metavar="NAME", help="the client's name, such as aerolineas")
    parser.add_argument(
        "--airline",
        action="append",
        required=True,
        metavar="CODE",
        help="an airline whose routes the client may touch, such as AR (repeat for more); "
        "'*' alone for every airline",
    )
    parser.add_argument(
        "--can",
        action="append",
        required=True,
        choices=list(Permission),
        help="what the client may do with them (repeat for both)",
    )
    args = parser.parse_args(argv)
    try:
        key, entry = new_key(args.name, args.airline, args.can)
    except ClientsError as exc:
        exit_at_startup(f"invalid argument: {exc}")
    print(f"The new API key of the client {args.name!r}, shown once: {key}", file=sys.stderr)
    print(entry, end="")


def _usage(argv: list[str]) -> None:
    from kiusys_app.invoice import write_invoice_csv
    from kiusys_app.models import normalize_airline
    from kiusys_app.usage import Granularity, month_range, parse_day, range_problem

    parser = _Parser(
        prog="kiusys-app usage",
        description="An airline's usage, per route and UTC day (or month), as CSV rows "
        "route,period,transactions under a header: what an invoice is built from. It reads the "
        "store that the service's settings name (KIUSYS_STORE and the rest).",
    )
    parser.add_argument("--airline", required=True, metavar="CODE", help="such as AR")
    period = parser.add_mutually_exclusive_group(required=True)
    period.add_argument("--month", metavar="YYYY-MM", help="a calendar month, such as 2026-11")
    period.add_argument("--from", dest="first", metavar="YYYY-MM-DD", help="the first day")
    parser.add_argument("--to", dest="last", metavar="YYYY-MM-DD", help="the last day, with --from")
    parser.add_argument(
        "--granularity", choices=list(Granularity), default=Granularity.DAY, help="default: day"
    )
    parser.add_argument(
        "--output", metavar="FILE", help="write here (whole, or not at all) instead of stdout"
    )
    args = parser.parse_args(argv)
    try:
        airline = normalize_airline(args.airline)
        if args.month is not None:
            first, last = month_range(args.month)
        elif args.last is None:
            raise ValueError("--from needs --to")
        else:
            first, last = parse_day(args.first), parse_day(args.last)
        problem = range_problem(first, last)
        if problem:
            raise ValueError(problem)
    except ValueError as exc:
        exit_at_startup(f"invalid argument: {exc}")
    write_invoice_csv(airline, first, last, Granularity(args.granularity), args.output)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["new-key"]:
        _new_key(argv[1:])
        return
    if argv[:1] == ["usage"]:
        _usage(argv[1:])
        return
    args = _arguments(argv)
    configure_logging()
    made = None
    try:
        try:
            if _metrics_directory() is None:
                made = tempfile.mkdtemp(prefix="kiusys-metrics-")
                os.environ[MULTIPROC_SETTING] = made
            settings = load_settings()
            # Builds the app from the environment, once (a bad setting ends the start here, in
            # one line); the forked workers inherit it.
            import kiusys_app.main  # noqa: F401

            _check_store(settings)
            _check_free("--port", args.host, args.port)
            _start_metrics(args.host, args.metrics_port)
        except ConfigError as exc:
            exit_at_startup(str(exc))
        _serve(args)
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)


def _start_metrics(host: str, port: int) -> None:
    from kiusys_app.metrics import serve_metrics

    try:
        serve_metrics(host, port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"invalid setting --host/--metrics-port: {host}:{port}: {reason}"
        ) from None


def _die_with_parent(supervisor: int) -> None:
    """In a forked worker (Linux): when the supervising process dies, drain as on its own stop
    (SIGTERM), and end once DRAIN_SECONDS have passed whatever the connections still do, since
    the supervisor that would have cut the drain short is gone (`orphan_watch`, a process of its
    own). Until granian sets the worker's own handlers, SIGTERM ends it at once: the handler
    inherited from the supervisor would swallow it, and the worker would then serve on."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    subprocess.Popen(  # noqa: S603 (this interpreter, this package's module, pids)
        [sys.executable, "-m", "kiusys_app.orphan_watch", str(supervisor), str(os.getpid()),
         str(DRAIN_SECONDS)],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if os.getppid() != supervisor:  # it died before the death signal was set
        os.kill(os.getpid(), signal.SIGTERM)


def _serve(args: argparse.Namespace) -> None:
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.server import Server

    if sys.platform == "linux":
        supervisor = os.getpid()
        os.register_at_fork(after_in_child=lambda: _die_with_parent(supervisor))
    server = Server(
        args.target,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        http=HTTPModes.http1,
        websockets=False,
        backlog=BACKLOG,
        backpressure=MAX_CONNECTIONS,
        http1_settings=HTTP1Settings(
            header_read_timeout=HEADER_READ_TIMEOUT_MS, max_buffer_size=MAX_BUFFER_BYTES
        ),
        log_dictconfig=JSON_LOGGING,
        workers_kill_timeout=DRAIN_SECONDS,
        respawn_failed_workers=True,
    )
    server.serve()
