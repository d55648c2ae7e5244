"""Threads that own one SQLite connection each and run the calls queued for them in batches.

`GroupCommit` is the writer: it takes every call that is waiting, runs them all in one
`BEGIN IMMEDIATE` transaction, commits once, and only then answers each caller with its own
result. Each call has a budget: the wait for another connection's write lock ends when the
oldest call of the batch runs out of it, and a call whose budget ended in the queue is answered
without touching the database. `ConnectionThread` is the reader: the same queue and batching,
each call on its own.

A call is a plain `conn -> value` function. A call may raise a domain error (anything that is not
`sqlite3.Error`) only before it writes: that error is its own outcome and the batch goes on. A
database error fails the whole batch, which is rolled back.
"""

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
Call = Callable[[sqlite3.Connection], Any]
Outcome = tuple[Any, BaseException | None]

# The most calls one transaction or one read pass takes.
MAX_BATCH = 256


@dataclass(slots=True)
class _Job:
    call: Call
    future: "asyncio.Future[Any]"
    loop: asyncio.AbstractEventLoop
    queued_at: float


def _resolve(items: list[tuple["asyncio.Future[Any]", Outcome]]) -> None:
    """On the caller's loop: hand each future its outcome."""
    for future, (value, error) in items:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


class ConnectionThread:
    """A thread that owns one connection and runs each queued call on its own."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], sqlite3.Connection],
        as_error: Callable[[sqlite3.Error], Exception],
    ) -> None:
        self._connect = connect
        self._as_error = as_error
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def call(self, call: Callable[[sqlite3.Connection], T]) -> T:
        """Run `call` on this thread's connection; waits without blocking the loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(call, future, loop, time.monotonic()))
        return await future

    def stop(self) -> None:
        """Finish the calls already queued, then close the connection."""
        self._jobs.put(None)
        self._thread.join()

    def run_batch(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[Outcome]:
        return [self._attempt(job, conn, isolated=True) for job in jobs]

    def _attempt(self, job: _Job, conn: sqlite3.Connection, *, isolated: bool) -> Outcome:
        """One call's outcome. A database error is the outcome only when the call runs alone."""
        try:
            return job.call(conn), None
        except sqlite3.Error as exc:
            if not isolated:
                raise
            return None, self._as_error(exc)
        except Exception as exc:
            return None, exc

    def _serve(self) -> None:
        conn = self._connect()
        try:
            while (first := self._jobs.get()) is not None:
                batch, stopping = self._take_batch(first)
                self._deliver(batch, self.run_batch(conn, batch))
                if stopping:
                    return
        finally:
            conn.close()

    def _take_batch(self, first: _Job) -> tuple[list[_Job], bool]:
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    @staticmethod
    def _deliver(batch: list[_Job], outcomes: list[Outcome]) -> None:
        """One wake-up per event loop for the whole batch."""
        by_loop: defaultdict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Outcome]]]
        by_loop = defaultdict(list)
        for job, outcome in zip(batch, outcomes, strict=True):
            by_loop[job.loop].append((job.future, outcome))
        for loop, items in by_loop.items():
            loop.call_soon_threadsafe(_resolve, items)


class GroupCommit(ConnectionThread):
    """The writer: every waiting call in one transaction; nobody is answered before the commit."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], sqlite3.Connection],
        as_error: Callable[[sqlite3.Error], Exception],
        on_commit: Callable[[int], None],
        *,
        budget_seconds: float,
        out_of_time: Callable[[], Exception],
    ) -> None:
        self._on_commit = on_commit
        self._budget_seconds = budget_seconds
        self._out_of_time = out_of_time
        super().__init__(name, connect, as_error)

    def run_batch(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[Outcome]:
        left = min(job.queued_at for job in jobs) + self._budget_seconds - time.monotonic()
        if left <= 0:
            return [(None, self._out_of_time()) for _ in jobs]
        try:
            # How long BEGIN waits for another connection's write lock: the batch's time left.
            conn.execute(f"PRAGMA busy_timeout = {max(1, int(left * 1000))}")
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [self._attempt(job, conn, isolated=False) for job in jobs]
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the next BEGIN starts afresh anyway
                    conn.execute("ROLLBACK")
            return [(None, self._as_error(exc))] * len(jobs)
        self._on_commit(len(jobs))
        return outcomes
