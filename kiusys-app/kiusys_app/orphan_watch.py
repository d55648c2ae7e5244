"""A worker's watchdog, its own process: once the worker's supervisor is gone, the worker has
DRAIN_SECONDS to finish its drain, then the kernel ends it (SIGKILL).

    python -m kiusys_app.orphan_watch SUPERVISOR_PID WORKER_PID DRAIN_SECONDS

It runs outside the worker's interpreter because nothing inside it can be relied on once the
supervisor is gone: a thread there needs the GIL, which a worker busy draining, or one stuck
finalizing its interpreter, may never hand over. Both processes are watched through pidfds
(pidfd_open(2)): the wait costs no polling, and the signal reaches that very worker even if
its pid has been reused since. It ends as soon as the worker does."""

import os
import select
import signal
import sys


def _pidfd(pid: int) -> int | None:
    """A pidfd for a running process; None for one that has already ended."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def watch(supervisor: int, worker: int, drain_seconds: float) -> None:
    worker_fd = _pidfd(worker)
    if worker_fd is None:
        return
    supervisor_fd = _pidfd(supervisor)
    if supervisor_fd is not None:
        ended, _, _ = select.select([supervisor_fd, worker_fd], [], [])
        if worker_fd in ended:
            return
    ended, _, _ = select.select([worker_fd], [], [], drain_seconds)
    if not ended:
        signal.pidfd_send_signal(worker_fd, signal.SIGKILL)


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the worker's drain is what decides, not this.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    supervisor_pid, worker_pid, drain = sys.argv[1:]
    watch(int(supervisor_pid), int(worker_pid), float(drain))
