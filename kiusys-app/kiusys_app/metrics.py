"""Prometheus metrics.

Each worker counts its own requests into files in PROMETHEUS_MULTIPROC_DIR (`kiusys-app` sets
it); the supervising process serves their sum on the metrics port, never on the public one.
"""

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
    start_http_server,
)

from kiusys_app.stores.base import StoreErrorKind

METRICS_PATH = "/metrics"

REQUESTS = Counter(
    "kiusys_http_requests_total",
    "HTTP requests answered, by route template, method, status and client (a configured "
    "client's name, or none).",
    ["route", "method", "status", "client"],
)
REQUEST_DURATION = Histogram(
    "kiusys_http_request_duration_seconds",
    "Time from request to the last response byte, by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
TRANSACTIONS_RECORDED = Counter(
    "kiusys_transactions_recorded_total", "Transactions counted (replays excluded)."
)
IDEMPOTENT_REPLAYS = Counter(
    "kiusys_idempotent_replays_total", "Record calls answered from an earlier Idempotency-Key."
)
# A kind of its own: a transaction conflict that the store retried (not an error of the call).
CONFLICT_RETRIED = "conflict_retried"
STORE_ERRORS = Counter(
    "kiusys_store_errors_total",
    "Store calls that failed or had to be retried, by kind: "
    f"{', '.join([*StoreErrorKind, CONFLICT_RETRIED])}.",
    ["kind"],
)

SQLITE_COMMIT_BATCH = Histogram(
    "kiusys_sqlite_commit_batch_records",
    "Record calls that shared one SQLite transaction and commit (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)


class StoreMetrics:
    """The stores' observer: what they report becomes these metrics."""

    def conflict_retried(self) -> None:
        STORE_ERRORS.labels(CONFLICT_RETRIED).inc()

    def batch_committed(self, size: int) -> None:
        SQLITE_COMMIT_BATCH.observe(size)


def serve_metrics(host: str, port: int) -> None:
    """Every worker's metrics, added up, at http://host:port/metrics (prometheus_client's
    server, from a thread; it answers the same on every path)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    server, _ = start_http_server(port, host, registry)
    # The workers are forked from this process: none of them may keep the port open (one left
    # behind would hold it after this process is gone).
    os.register_at_fork(after_in_child=server.socket.close)
