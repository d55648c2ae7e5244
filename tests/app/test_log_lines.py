"""The JSON log line, written piece by piece, is the one `json.dumps` writes of its fields, and
the access line that `log_info` writes without a LogRecord is the one `logger.info` writes."""

import io
import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kiusys_app.logs import (
    _EXTRA_FIELDS,
    JsonFormatter,
    TickBatchingHandler,
    log_info,
    request_id_var,
)

# Every kind of value a field may hold, text with quotes, controls and non-ASCII included.
VALUES = st.one_of(
    st.text(),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=3),
)


def as_json_dumps_writes_it(record: logging.LogRecord, formatter: JsonFormatter) -> str:
    """What the formatter wrote before: a dict of the fields, through json.dumps."""
    line: dict[str, object] = {
        "time": _iso_time(record.created),
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": record.getMessage(),
    }
    request_id = request_id_var.get()
    if request_id is not None:
        line["request_id"] = request_id
    for field in _EXTRA_FIELDS:
        if hasattr(record, field):
            line[field] = getattr(record, field)
    if record.exc_info:
        line["exception"] = formatter.formatException(record.exc_info)
    return json.dumps(line, separators=(",", ":"))


def _iso_time(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


# The edges that random draws rarely reach: microseconds that round up to the next millisecond
# or second, and the floats JSON writes as words.
EDGES = {"status": 200, "duration_ms": 0.5, "client": "-", "error": 'a "quoted" é'}


@given(
    created=st.floats(min_value=0, max_value=4_102_444_800),
    name=st.text(min_size=1),
    message=st.text(),
    request_id=st.none() | st.text(),
    extras=st.fixed_dictionaries({}, optional=dict.fromkeys(_EXTRA_FIELDS, VALUES)),
    level=st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]),
)
@example(1_800_000_000.0009996, "a", "m", "r-1", EDGES, logging.INFO)
@example(1_800_000_000.9999996, "a", "m", None, {"duration_ms": float("inf")}, logging.INFO)
@example(1_800_000_000.25, "a", "m", None, {"duration_ms": float("-inf")}, logging.INFO)
@example(1_800_000_000.25, "a", "m", None, {"duration_ms": float("nan")}, logging.INFO)
@example(1_800_000_000.25, "a", "m", None, {"status": True, "table": None}, logging.INFO)
def test_a_line_is_what_json_dumps_writes(
    created: float,
    name: str,
    message: str,
    request_id: str | None,
    extras: dict[str, Any],
    level: int,
) -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord(name, level, __file__, 1, message, None, None)
    record.created = created
    record.__dict__.update(extras)
    token = request_id_var.set(request_id)
    try:
        assert formatter.format(record) == as_json_dumps_writes_it(record, formatter)
        assert formatter.format(record) == as_json_dumps_writes_it(record, formatter), "kept"
    finally:
        request_id_var.reset(token)


def test_a_traceback_is_one_field_of_the_line() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError('boom "quoted"')
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert formatter.format(record) == as_json_dumps_writes_it(record, formatter)
    assert "ValueError" in json.loads(formatter.format(record))["exception"]


def test_a_message_with_arguments_is_formatted_first() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "using %s: %d", ("sqlite", 3), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "using sqlite: 3"


def test_the_kept_strings_stop_growing() -> None:
    formatter = JsonFormatter()
    for n in range(5000):
        token = request_id_var.set(f"request-{n}")
        formatter.format(logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None))
        request_id_var.reset(token)
    assert len(formatter._kept) <= 1024


ACCESS = {
    "method": "GET",
    "route": "/v1/routes/{route}",
    "status": 200,
    "client": "a",
    "duration_ms": 1.5,
}


def logger_writing_to(stream: io.StringIO, formatter: logging.Formatter) -> logging.Logger:
    """A logger under a parent that writes with the service's handler, as `configure_logging`
    sets them up (the child has no handler of its own)."""
    parent = logging.Logger("parent")
    handler = TickBatchingHandler(stream)
    handler.setFormatter(formatter)
    parent.addHandler(handler)
    child = logging.Logger("parent.child")
    child.parent = parent
    return child


@pytest.mark.parametrize("request_id", [None, "r-1"])
def test_log_info_writes_the_line_logger_info_writes(
    monkeypatch: pytest.MonkeyPatch, request_id: str | None
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0009996)  # the record's time too
    by_logging, direct = io.StringIO(), io.StringIO()
    token = request_id_var.set(request_id)
    try:
        logger_writing_to(by_logging, JsonFormatter()).info("request", extra=ACCESS)
        log_info(logger_writing_to(direct, JsonFormatter()), "request", ACCESS)
    finally:
        request_id_var.reset(token)
    assert json.loads(by_logging.getvalue()) == {
        "time": "2027-01-15T08:00:00.001+00:00",
        "level": "info",
        "logger": "parent.child",
        "message": "request",
        **({} if request_id is None else {"request_id": request_id}),
        **ACCESS,
    }
    assert direct.getvalue() == by_logging.getvalue()


def test_log_info_gives_other_handlers_the_record() -> None:
    """A handler that is not the service's own (a test's, an operator's), though it formats
    with the service's formatter, gets a LogRecord, as with logger.info."""
    own, other = io.StringIO(), io.StringIO()
    logger = logger_writing_to(own, JsonFormatter())
    other_handler = logging.StreamHandler(other)
    other_handler.setFormatter(JsonFormatter())
    logger.addHandler(other_handler)
    log_info(logger, "request", ACCESS)
    assert json.loads(other.getvalue())["route"] == ACCESS["route"]
    assert json.loads(own.getvalue()) == json.loads(other.getvalue())


@pytest.mark.parametrize("where", ["logger", "handler"])
def test_log_info_lets_a_filter_drop_the_line(where: str) -> None:
    stream = io.StringIO()
    logger = logger_writing_to(stream, JsonFormatter())
    filtered = logger if where == "logger" else logger.parent.handlers[0]  # type: ignore[union-attr]
    filtered.addFilter(lambda record: record.status != 200)  # type: ignore[attr-defined]
    log_info(logger, "request", ACCESS)
    log_info(logger, "request", {**ACCESS, "status": 503})
    assert [json.loads(line)["status"] for line in stream.getvalue().splitlines()] == [503]


@pytest.mark.parametrize("where", ["logger", "handler"])
def test_log_info_writes_nothing_below_a_level(where: str) -> None:
    stream = io.StringIO()
    logger = logger_writing_to(stream, JsonFormatter())
    leveled = logger if where == "logger" else logger.parent.handlers[0]  # type: ignore[union-attr]
    leveled.setLevel(logging.WARNING)
    log_info(logger, "request", ACCESS)
    assert stream.getvalue() == ""
