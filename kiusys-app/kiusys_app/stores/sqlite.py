"""The embedded store: one SQLite file, safe across threads and processes.

WAL journaling lets readers run beside the single writer, `synchronous=FULL` makes a commit
durable before the caller is answered, and `BEGIN IMMEDIATE` serialises writers across every
process that opens the file.
"""

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kiusys_app.stores.base import (
    IDEMPOTENCY_TTL_SECONDS,
    IdempotencyKeyMismatch,
    RecordResult,
    StoreUnavailable,
)

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
"""

# How long a writer waits for another process's transaction before giving up.
_BUSY_TIMEOUT_SECONDS = 30.0


class SQLiteStore:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._errors():
            conn = self._connection()
            conn.executescript(_SCHEMA)
            with self._transaction(conn):
                conn.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (clock(),))

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._path,
                timeout=_BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @staticmethod
    @contextmanager
    def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    @contextmanager
    def _errors() -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc

    def record(self, route: str, idempotency_key: str | None = None) -> RecordResult:
        conn = self._connection()
        with self._errors(), self._transaction(conn):
            if idempotency_key is not None:
                now = self._clock()
                row = conn.execute(
                    "SELECT route FROM idempotency_keys WHERE key = ? AND expires_at > ?",
                    (idempotency_key, now),
                ).fetchone()
                if row is not None:
                    if row[0] != route:
                        raise IdempotencyKeyMismatch(row[0])
                    return RecordResult(count=self._get(conn, route), replayed=True)
                conn.execute(
                    "INSERT OR REPLACE INTO idempotency_keys (key, route, expires_at)"
                    " VALUES (?, ?, ?)",
                    (idempotency_key, route, now + IDEMPOTENCY_TTL_SECONDS),
                )
            (count,) = conn.execute(
                "INSERT INTO counters (route, record) VALUES (?, 1)"
                " ON CONFLICT (route) DO UPDATE SET record = record + 1 RETURNING record",
                (route,),
            ).fetchone()
        return RecordResult(count=count)

    @staticmethod
    def _get(conn: sqlite3.Connection, route: str) -> int:
        row = conn.execute("SELECT record FROM counters WHERE route = ?", (route,)).fetchone()
        return 0 if row is None else int(row[0])

    def get(self, route: str) -> int:
        with self._errors():
            return self._get(self._connection(), route)

    def get_many(self, routes: Sequence[str]) -> dict[str, int]:
        counts = dict.fromkeys(routes, 0)
        placeholders = ",".join("?" * len(counts))
        with self._errors():
            rows = self._connection().execute(
                f"SELECT route, record FROM counters WHERE route IN ({placeholders})",  # noqa: S608
                list(counts),
            )
            counts.update((route, int(record)) for route, record in rows)
        return counts

    def ping(self) -> None:
        with self._errors():
            self._connection().execute("SELECT 1 FROM counters LIMIT 1").fetchall()

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
