"""Counter stores: the port that both honour (`base`), the embedded store (`sqlite`), the
DynamoDB store (`dynamodb`), and the factory that opens the one the settings ask for."""

from kiusys_app.stores.base import (
    CounterStore,
    IdempotencyKeyMismatch,
    RecordResult,
    StoreError,
    StoreErrorKind,
    StoreObserver,
    Usage,
    day_of,
)

__all__ = [
    "CounterStore",
    "IdempotencyKeyMismatch",
    "RecordResult",
    "StoreError",
    "StoreErrorKind",
    "StoreObserver",
    "Usage",
    "day_of",
]
