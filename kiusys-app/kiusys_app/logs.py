"""JSON logs, one object a line, each carrying the id of the request it belongs to."""

import asyncio
import contextlib
import json
import logging
import math
import random
import re
import sys
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, NoReturn, TextIO

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# An incoming X-Request-ID is reused only if it is short and plain; anything else is replaced.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Fields that callers may pass through `extra=` and that belong in the JSON line.
_EXTRA_FIELDS = (
    "method",
    "route",
    "status",
    "duration_ms",
    "client",
    "store",
    "error",
    "table",
    "operation",
)


def request_id_from(header: str | None) -> str:
    """The caller's id when it is sane, else a new random one.

    A request id correlates log lines; it is no secret, so it comes from `random` (seeded from
    the OS in each process), not from `secrets`: os.urandom is a system call per request.
    """
    if header is not None and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return f"{random.getrandbits(128):032x}"


class JsonFormatter(logging.Formatter):
    """Each record as one JSON object: time, level, logger, message, the request id, the
    `extra=` fields named in _EXTRA_FIELDS, and the traceback if any, in that order.

    The line is the one `json.dumps(fields, separators=(",", ":"))` writes (a test compares
    them), put together piece by piece: the JSON text of each string that repeats (a logger's
    name, a route's template, a level) is kept, and the time's text is made once a second. On
    an access line that is a third of what `json.dumps` of a new dict costs."""

    def __init__(self) -> None:
        super().__init__()
        # The last second formatted and its text, as one tuple: threads share the formatter.
        self._second: tuple[int, str] = (-1, "")
        # The JSON text of strings and fields that repeat (a logger's name, a route's template).
        self._kept: dict[object, str] = {}

    def format(self, record: logging.LogRecord) -> str:
        line = self.line(
            record.created, record.levelname, record.name, record.getMessage(), record.__dict__
        )
        if record.exc_info:
            line = f'{line[:-1]},"exception":{_encode(self.formatException(record.exc_info))}}}'
        return line

    def line(
        self, created: float, level: str, name: str, message: str, fields: Mapping[str, object]
    ) -> str:
        """The line of a record made at `created` (time.time()) of this level's name, logger
        name, message and attributes, without a traceback."""
        line = (
            f'{{"time":"{self._time(created)}","level":{self._string(level.lower())}'
            f',"logger":{self._string(name)},"message":{_encode(message)}'
        )
        request_id = request_id_var.get()
        if request_id is not None:
            line += f',"request_id":{_encode(request_id)}'
        for field in _EXTRA_FIELDS:
            if field in fields:
                line += self._field(field, fields[field])
        return line + "}"

    def _field(self, name: str, value: object) -> str:
        """`,"name":value`; kept for strings and whole numbers (a route's template, a status),
        while fewer than _KEPT are."""
        if not isinstance(value, str | int) or isinstance(value, bool):
            return f',"{name}":{_json(value)}'
        key = (name, value)
        text = self._kept.get(key)
        if text is None:
            text = f',"{name}":{_json(value)}'
            if len(self._kept) < _KEPT:
                self._kept[key] = text
        return text

    def _time(self, created: float) -> str:
        """`created` as ISO 8601 in UTC to the millisecond, as `datetime.isoformat` writes it
        (the microseconds rounded half to even first, as `datetime.fromtimestamp` does)."""
        second = int(created)
        microseconds = round((created - second) * 1_000_000)
        if microseconds == 1_000_000:
            second, microseconds = second + 1, 0
        last, text = self._second
        if second != last:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{microseconds // 1000:03d}+00:00"

    def _string(self, value: str) -> str:
        text = self._kept.get(value)
        if text is None:
            text = _encode(value)
            if len(self._kept) < _KEPT:
                self._kept[value] = text
        return text


def _json(value: object) -> str:
    """A value's JSON text, as json.dumps writes it."""
    if isinstance(value, str):
        return _encode(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int.__repr__(value)
    if isinstance(value, float) and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value, separators=(",", ":"))


# The JSON text of a string, as json.dumps writes it (ASCII only, everything else escaped).
_encode = json.encoder.encode_basestring_ascii
_KEPT = 1024


class TickBatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that, on an event loop's thread, writes the lines of one loop iteration
    with one write and one flush, at the end of that iteration (`call_soon`), instead of a
    system call for each line. Under load that is many request lines per call; a line is still
    written before the loop waits for anything. Off the loop, and once the loop is gone, each
    line is written at once, after whatever was pending, so the order holds."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write_line(self.format(record))
        except Exception:
            self.handleError(record)

    def write_line(self, line: str) -> None:
        """Write a formatted line, as `emit` does (which logging calls with the lock held)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self.lock:  # type: ignore[union-attr]
            if not self._pending and loop is not None:
                loop.call_soon(self._flush_locked)
            self._pending.append(line + self.terminator)
            if loop is None:
                self.flush()

    def _flush_locked(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            try:
                self.flush()
            except (OSError, ValueError):
                # The stream is closed or broken, so these lines can go nowhere; as in logging's
                # own handlers, a failed write never raises into the code that logged.
                self._pending = []

    def flush(self) -> None:
        if self._pending:
            lines, self._pending = "".join(self._pending), []
            self.stream.write(lines)
        super().flush()


def log_info(logger: logging.Logger, message: str, fields: Mapping[str, object]) -> None:
    """`logger.info(message, extra=fields)`, made cheaper for a line logged on every request:
    when the handlers it reaches are all the service's own (a TickBatchingHandler with a
    JsonFormatter, as `configure_logging` sets them), each writes the same line, made straight
    from the fields, without a LogRecord and logging's path to the handler (two thirds of the
    line's cost in a worker). Any other handler, or a filter, gets the record as before."""
    if not logger.isEnabledFor(logging.INFO):
        return
    handlers = _own_handlers(logger)
    if not handlers:
        logger.info(message, extra=dict(fields))
        return
    created = time.time()
    for handler, formatter in handlers:
        # As in _flush_locked: a line that can go nowhere never raises into the caller.
        with contextlib.suppress(OSError, ValueError):
            handler.write_line(formatter.line(created, "INFO", logger.name, message, fields))


def _own_handlers(logger: logging.Logger) -> list[tuple[TickBatchingHandler, JsonFormatter]]:
    """The handlers an INFO record of `logger` reaches, if all are the service's own and none
    filters; else none."""
    if logger.filters:
        return []
    found = []
    at: logging.Logger | None = logger
    while at is not None:
        for handler in at.handlers:
            formatter = handler.formatter
            if (
                type(handler) is not TickBatchingHandler
                or not isinstance(formatter, JsonFormatter)
                or handler.filters
                or handler.level > logging.INFO
            ):
                return []
            found.append((handler, formatter))
        at = at.parent if at.propagate else None
    return found


def _json_handler(logger: logging.Logger) -> None:
    """Give `logger` a JSON handler on stderr, unless it has one."""
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = TickBatchingHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.propagate = False


def configure_logging() -> None:
    """Every line the service logs on stderr is JSON (the server's own logger is configured by
    `kiusys_app.serve`, with the same formatter)."""
    # What the JSON lines never show, LogRecord need not gather: the calling frame, thread,
    # process and multiprocessing names (the "Optimization" table of Python's logging HOWTO).
    # A quarter of what a request's log line cost.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    service = logging.getLogger("kiusys_app")
    _json_handler(service)
    service.setLevel(logging.INFO)
    # Any other logger's warnings (asyncio's "Task exception was never retrieved", a library's)
    # reach the root, which would otherwise print them as plain text.
    root = logging.getLogger()
    _json_handler(root)
    root.setLevel(logging.WARNING)


# The exit status of a start refused for a setting: not 1, which is any crash.
STARTUP_FAILURE = 3


def exit_at_startup(problem: str) -> NoReturn:
    """One JSON line on stderr that says what is wrong, then exit: no traceback."""
    configure_logging()
    logging.getLogger("kiusys_app").critical(problem)
    raise SystemExit(STARTUP_FAILURE)


# granian's own loggers ("_granian" for the server, "granian.access", which stays off), as
# JSON lines on stderr like the service's.
JSON_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonFormatter}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "_granian": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "granian.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
