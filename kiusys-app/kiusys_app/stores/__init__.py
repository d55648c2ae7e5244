"""Counter stores: one interface, an embedded SQLite store and a DynamoDB store."""

from kiusys_app.stores.base import (
    CounterStore,
    IdempotencyKeyMismatch,
    RecordResult,
    StoreError,
    StoreErrorKind,
    StoreObserver,
)

__all__ = [
    "CounterStore",
    "IdempotencyKeyMismatch",
    "RecordResult",
    "StoreError",
    "StoreErrorKind",
    "StoreObserver",
]
