"""The embedded store: one SQLite file, shared by threads and by processes, with group commit.

Every write of a process goes through one `GroupCommit` thread, which applies all waiting record
calls in one transaction and one durable commit. Reads go through their own thread and
connection: with WAL journaling they never wait for a write. `synchronous=FULL` makes a commit
durable before anyone is answered, and `BEGIN IMMEDIATE` serialises the writers of every process
that opens the file. Each record also counts in its UTC day (`days`), in the same transaction, so
a route's days always add up to its count. Expired idempotency keys are deleted at start-up and then, while the store
runs, in small batches at most once a minute.
"""

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kiusys_app.stores.base import (
    CALL_BUDGET_SECONDS,
    IDEMPOTENCY_TTL_SECONDS,
    IdempotencyKeyMismatch,
    NullObserver,
    RecordResult,
    StoreError,
    StoreErrorKind,
    StoreObserver,
    Usage,
    day_of,
)
from kiusys_app.stores.sqlite.group_commit import ConnectionThread, GroupCommit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    route  TEXT PRIMARY KEY,
    record INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key        TEXT PRIMARY KEY,
    route      TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_keys_expires_at ON idempotency_keys (expires_at);
CREATE TABLE IF NOT EXISTS days (
    route  TEXT NOT NULL,
    day    TEXT NOT NULL,
    record INTEGER NOT NULL,
    PRIMARY KEY (route, day)
) WITHOUT ROWID;
"""

# How long opening the file waits for another process's transaction (the writer's wait is
# its calls' budget, CALL_BUDGET_SECONDS).
_BUSY_TIMEOUT_SECONDS = 30.0
# Expired keys are pruned this often, this many rows per delete, while the store runs.
PRUNE_INTERVAL_SECONDS = 60.0
PRUNE_BATCH = 500

# Database errors that a retry may get past: contention, a full disk, an I/O hiccup.
_TRANSIENT_CODES = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR}
)


def as_store_error(exc: sqlite3.Error) -> StoreError:
    """Contention and I/O errors are transient; a read-only, missing or foreign file is not."""
    code = getattr(exc, "sqlite_errorcode", None)
    transient = code is not None and code & 0xFF in _TRANSIENT_CODES
    kind = StoreErrorKind.UNAVAILABLE if transient else StoreErrorKind.MISCONFIGURED
    return StoreError(kind, f"sqlite: {exc}")


def _out_of_time() -> StoreError:
    return StoreError(
        StoreErrorKind.UNAVAILABLE, "sqlite: the call's budget ended waiting for the write lock"
    )


class SQLiteStore:
    def __init__(
        self,
        path: Path,
        clock: Callable[[], float] = time.time,
        observer: StoreObserver | None = None,
    ) -> None:
        self._path = path
        self._clock = clock
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect()
            try:
                conn.executescript(_SCHEMA)
                conn.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (clock(),))
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise as_store_error(exc) from exc
        except OSError as exc:
            raise StoreError(StoreErrorKind.MISCONFIGURED, f"sqlite: {exc}") from exc
        self._next_prune = clock() + PRUNE_INTERVAL_SECONDS
        self._pruning: asyncio.Future[None] | None = None
        on_commit = (observer or NullObserver()).batch_committed
        self._writer = GroupCommit(
            "sqlite-writer",
            self._connect,
            as_store_error,
            on_commit,
            budget_seconds=CALL_BUDGET_SECONDS,
            out_of_time=_out_of_time,
        )
        self._reader = ConnectionThread("sqlite-reader", self._connect, as_store_error)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=_BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    async def record(self, route: str, idempotency_key: str | None = None) -> RecordResult:
        self._prune_when_due(self._clock())
        # The clock is read on the writer's thread, when the batch applies the call.
        if idempotency_key is None:
            return await self._writer.call(lambda conn: _increment(conn, route, self._clock()))
        return await self._writer.call(
            lambda conn: _record_once(conn, route, idempotency_key, self._clock())
        )

    async def get(self, route: str) -> int:
        return await self._reader.call(lambda conn: _count(conn, route))

    async def get_many(self, routes: Sequence[str]) -> dict[str, int]:
        return await self._reader.call(lambda conn: _counts(conn, routes))

    async def routes_of(self, airline: str) -> list[str]:
        return await self._reader.call(lambda conn: _routes_of(conn, airline))

    async def usage(self, routes: Sequence[str], first: str, last: str) -> Usage:
        return await self._reader.call(lambda conn: _usage(conn, routes, first, last))

    async def ping(self, writes: bool = False) -> None:
        # Write rights are the file's, checked when the store opens it.
        await self._reader.call(_ping)

    async def prune_expired_keys(self) -> int:
        """Delete keys that expired, a small batch per transaction; the number deleted."""
        now = self._clock()
        deleted = 0
        while (batch := await self._writer.call(lambda conn: _prune(conn, now))) > 0:
            deleted += batch
            if batch < PRUNE_BATCH:
                break
        return deleted

    def _prune_when_due(self, now: float) -> None:
        """Start a background prune once the interval has passed and the last one is done."""
        if now < self._next_prune or not (self._pruning is None or self._pruning.done()):
            return
        self._next_prune = now + PRUNE_INTERVAL_SECONDS
        self._pruning = asyncio.ensure_future(self._prune_quietly())

    async def _prune_quietly(self) -> None:
        # A failed prune is tried again at the next interval; the record calls report store errors.
        with contextlib.suppress(StoreError):
            await self.prune_expired_keys()

    async def aclose(self) -> None:
        if self._pruning is not None:
            await self._pruning
        self._writer.stop()
        self._reader.stop()


# The calls, run on the store's threads.


def _increment(conn: sqlite3.Connection, route: str, now: float) -> RecordResult:
    conn.execute(
        "INSERT INTO days (route, day, record) VALUES (?, ?, 1)"
        " ON CONFLICT (route, day) DO UPDATE SET record = record + 1",
        (route, day_of(now)),
    )
    (count,) = conn.execute(
        "INSERT INTO counters (route, record) VALUES (?, 1)"
        " ON CONFLICT (route) DO UPDATE SET record = record + 1 RETURNING record",
        (route,),
    ).fetchone()
    return RecordResult(count=count)


def _record_once(conn: sqlite3.Connection, route: str, key: str, now: float) -> RecordResult:
    row = conn.execute(
        "SELECT route FROM idempotency_keys WHERE key = ? AND expires_at > ?", (key, now)
    ).fetchone()
    if row is not None:
        if row[0] != route:
            raise IdempotencyKeyMismatch(row[0])
        return RecordResult(count=_count(conn, route), replayed=True)
    conn.execute(
        "INSERT OR REPLACE INTO idempotency_keys (key, route, expires_at) VALUES (?, ?, ?)",
        (key, route, now + IDEMPOTENCY_TTL_SECONDS),
    )
    return _increment(conn, route, now)


def _count(conn: sqlite3.Connection, route: str) -> int:
    row = conn.execute("SELECT record FROM counters WHERE route = ?", (route,)).fetchone()
    return 0 if row is None else int(row[0])


def _counts(conn: sqlite3.Connection, routes: Sequence[str]) -> dict[str, int]:
    counts = dict.fromkeys(routes, 0)
    placeholders = ",".join("?" * len(counts))
    rows = conn.execute(
        f"SELECT route, record FROM counters WHERE route IN ({placeholders})",  # noqa: S608
        list(counts),
    )
    counts.update((route, int(record)) for route, record in rows)
    return counts


def _routes_of(conn: sqlite3.Connection, airline: str) -> list[str]:
    # A route is its airline's code and then a digit: the range of the primary key from the
    # code and "0" to the code and ":" (the character after "9") holds the airline's routes and
    # no other airline's (`AR` and `ARG` both start `ARG123`, which is ARG's).
    rows = conn.execute(
        "SELECT route FROM counters WHERE route >= ? AND route < ? ORDER BY route",
        (f"{airline}0", f"{airline}:"),
    )
    return [route for (route,) in rows]


def _usage(conn: sqlite3.Connection, routes: Sequence[str], first: str, last: str) -> Usage:
    usage: Usage = {route: {} for route in routes}
    distinct = list(usage)
    for start in range(0, len(distinct), _ROUTES_PER_QUERY):
        chunk = distinct[start : start + _ROUTES_PER_QUERY]
        rows = conn.execute(
            "SELECT route, day, record FROM days WHERE route IN"  # noqa: S608
            f" ({','.join('?' * len(chunk))}) AND day BETWEEN ? AND ? AND record > 0"
            " ORDER BY route, day",
            [*chunk, first, last],
        )
        for route, day, record in rows:
            usage[route][day] = int(record)
    return usage


# SQLite takes at most 32,766 parameters in one statement.
_ROUTES_PER_QUERY = 500


def _ping(conn: sqlite3.Connection) -> None:
    conn.execute("SELECT 1 FROM counters LIMIT 1").fetchall()
    conn.execute("SELECT 1 FROM idempotency_keys LIMIT 1").fetchall()
    conn.execute("SELECT 1 FROM days LIMIT 1").fetchall()


def _prune(conn: sqlite3.Connection, now: float) -> int:
    return conn.execute(
        "DELETE FROM idempotency_keys WHERE key IN"
        " (SELECT key FROM idempotency_keys WHERE expires_at <= ? LIMIT ?)",
        (now, PRUNE_BATCH),
    ).rowcount
