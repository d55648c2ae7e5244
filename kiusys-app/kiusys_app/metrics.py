"""Prometheus metrics.

Each process counts its own requests. Under several uvicorn workers, set PROMETHEUS_MULTIPROC_DIR
to an empty directory before start-up and `/metrics` adds up every worker's files; without it,
the numbers are those of the worker that answered the scrape. The Kubernetes Deployment runs one
worker per pod, so there they are exact per pod.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "kiusys_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
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
STORE_ERRORS = Counter(
    "kiusys_store_errors_total",
    "Store calls that failed or had to be retried, by kind: throttled, unavailable, "
    "misconfigured, conflict_retried.",
    ["kind"],
)

SQLITE_COMMIT_BATCH = Histogram(
    "kiusys_sqlite_commit_batch_records",
    "Record calls that shared one SQLite transaction and commit (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class StoreMetrics:
    """The stores' observer: what they report becomes these metrics."""

    def conflict_retried(self) -> None:
        STORE_ERRORS.labels("conflict_retried").inc()

    def batch_committed(self, size: int) -> None:
        SQLITE_COMMIT_BATCH.observe(size)


def exposition() -> bytes:
    """The metrics in Prometheus text format, added up across workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
