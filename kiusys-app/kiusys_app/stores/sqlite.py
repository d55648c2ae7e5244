"""The embedded store: one SQLite file, shared by threads and by processes, with group commit.

All writes of a process go through one writer thread. It takes every record call that is
waiting, applies them in one `BEGIN IMMEDIATE` transaction and one durable commit, and only
then answers each caller with its own count or idempotency outcome. Reads go through their own
thread and connection: with WAL journaling they never wait for a write. `synchronous=FULL`
makes a commit durable before anyone is answered, and `BEGIN IMMEDIATE` serialises the writers
of every process that opens the file.

Callers on an event loop use the `a`-prefixed coroutines, which wait on an asyncio future that
the worker resolves (one wake-up per batch); other callers use the blocking methods.
"""

import asyncio
import queue
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiusys_app.metrics import SQLITE_COMMIT_BATCH
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
# The most calls one transaction or one read pass takes.
MAX_BATCH = 256

Outcome = tuple[Any, BaseException | None]


@dataclass(slots=True)
class _Job:
    """One call: what to run, and where its outcome goes (a thread's or a loop's future)."""

    run: Callable[[sqlite3.Connection], Any]
    future: "Future[Any] | asyncio.Future[Any]"
    loop: asyncio.AbstractEventLoop | None = None


def _as_store_error(exc: Exception) -> Exception:
    """A database error means the store is unavailable; anything else is passed on as it is."""
    return StoreUnavailable(f"sqlite: {exc}") if isinstance(exc, sqlite3.Error) else exc


def _resolve(items: list[tuple["asyncio.Future[Any]", Outcome]]) -> None:
    for future, (value, error) in items:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


@dataclass
class _Worker:
    """A thread that owns one connection and runs the jobs queued for it, in batches."""

    name: str
    connect: Callable[[], sqlite3.Connection]
    run_batch: Callable[[sqlite3.Connection, list[_Job]], list[Outcome]]
    jobs: "queue.SimpleQueue[_Job | None]" = field(default_factory=queue.SimpleQueue)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
        self.thread.start()

    def submit(self, job: _Job) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join()

    def _serve(self) -> None:
        conn = self.connect()
        try:
            while (first := self.jobs.get()) is not None:
                batch = [first]
                stopping = False
                while len(batch) < MAX_BATCH:
                    try:
                        job = self.jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stopping = True
                        break
                    batch.append(job)
                self._deliver(batch, self.run_batch(conn, batch))
                if stopping:
                    return
        finally:
            conn.close()

    @staticmethod
    def _deliver(batch: list[_Job], outcomes: list[Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Outcome]]]
        by_loop = defaultdict(list)
        for job, (value, error) in zip(batch, outcomes, strict=True):
            if job.loop is not None:
                by_loop[job.loop].append((job.future, (value, error)))  # type: ignore[arg-type]
            elif error is None:
                job.future.set_result(value)
            else:
                job.future.set_exception(error)
        for loop, items in by_loop.items():
            loop.call_soon_threadsafe(_resolve, items)


class SQLiteStore:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            conn.executescript(_SCHEMA)
            conn.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (clock(),))
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc
        finally:
            conn.close()
        self._writer = _Worker("sqlite-writer", self._connect, self._write_batch)
        self._reader = _Worker("sqlite-reader", self._connect, self._read_batch)

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

    # The batches, run on the workers' threads.

    def _write_batch(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[Outcome]:
        """Every waiting record in one transaction; nobody is answered before the commit."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [self._attempt(job, conn) for job in jobs]
            conn.execute("COMMIT")
            SQLITE_COMMIT_BATCH.observe(len(jobs))
        except Exception as exc:  # the worker must outlive any error, and so must its callers
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(None, _as_store_error(exc))] * len(jobs)
        return outcomes

    def _read_batch(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for job in jobs:
            try:
                outcomes.append(self._attempt(job, conn))
            except Exception as exc:  # one failed read must not fail the others
                outcomes.append((None, _as_store_error(exc)))
        return outcomes

    @staticmethod
    def _attempt(job: _Job, conn: sqlite3.Connection) -> Outcome:
        """Run one job; a domain error is its outcome, a database error aborts the batch."""
        try:
            return job.run(conn), None
        except IdempotencyKeyMismatch as exc:
            return None, exc

    def _record(self, route: str, key: str | None, conn: sqlite3.Connection) -> RecordResult:
        if key is not None:
            now = self._clock()
            row = conn.execute(
                "SELECT route FROM idempotency_keys WHERE key = ? AND expires_at > ?", (key, now)
            ).fetchone()
            if row is not None:
                if row[0] != route:
                    raise IdempotencyKeyMismatch(row[0])
                return RecordResult(count=self._get(route, conn), replayed=True)
            conn.execute(
                "INSERT OR REPLACE INTO idempotency_keys (key, route, expires_at) VALUES (?, ?, ?)",
                (key, route, now + IDEMPOTENCY_TTL_SECONDS),
            )
        (count,) = conn.execute(
            "INSERT INTO counters (route, record) VALUES (?, 1)"
            " ON CONFLICT (route) DO UPDATE SET record = record + 1 RETURNING record",
            (route,),
        ).fetchone()
        return RecordResult(count=count)

    @staticmethod
    def _get(route: str, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT record FROM counters WHERE route = ?", (route,)).fetchone()
        return 0 if row is None else int(row[0])

    @staticmethod
    def _get_many(routes: Sequence[str], conn: sqlite3.Connection) -> dict[str, int]:
        counts = dict.fromkeys(routes, 0)
        placeholders = ",".join("?" * len(counts))
        rows = conn.execute(
            f"SELECT route, record FROM counters WHERE route IN ({placeholders})",  # noqa: S608
            list(counts),
        )
        counts.update((route, int(record)) for route, record in rows)
        return counts

    @staticmethod
    def _ping(conn: sqlite3.Connection) -> None:
        conn.execute("SELECT 1 FROM counters LIMIT 1").fetchall()

    # Blocking calls, for threads.

    def _call(self, worker: _Worker, run: Callable[[sqlite3.Connection], Any]) -> Any:
        future: Future[Any] = Future()
        worker.submit(_Job(run, future))
        return future.result()

    def record(self, route: str, idempotency_key: str | None = None) -> RecordResult:
        return self._call(self._writer, lambda c: self._record(route, idempotency_key, c))  # type: ignore[no-any-return]

    def get(self, route: str) -> int:
        return self._call(self._reader, lambda c: self._get(route, c))  # type: ignore[no-any-return]

    def get_many(self, routes: Sequence[str]) -> dict[str, int]:
        return self._call(self._reader, lambda c: self._get_many(routes, c))  # type: ignore[no-any-return]

    def ping(self) -> None:
        self._call(self._reader, self._ping)

    # Coroutines, for the event loop: no thread-pool hop.

    async def _acall(self, worker: _Worker, run: Callable[[sqlite3.Connection], Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        worker.submit(_Job(run, future, loop))
        return await future

    async def arecord(self, route: str, idempotency_key: str | None = None) -> RecordResult:
        return await self._acall(self._writer, lambda c: self._record(route, idempotency_key, c))  # type: ignore[no-any-return]

    async def aget(self, route: str) -> int:
        return await self._acall(self._reader, lambda c: self._get(route, c))  # type: ignore[no-any-return]

    async def aget_many(self, routes: Sequence[str]) -> dict[str, int]:
        return await self._acall(self._reader, lambda c: self._get_many(routes, c))  # type: ignore[no-any-return]

    async def aping(self) -> None:
        await self._acall(self._reader, self._ping)

    def close(self) -> None:
        self._writer.stop()
        self._reader.stop()
