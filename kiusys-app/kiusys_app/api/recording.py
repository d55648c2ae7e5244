"""What every record call does: the store's call, with the key kept under the caller's client,
and with its result the replay header and the counters."""

from fastapi import status
from fastapi.responses import JSONResponse
from starlette.types import Scope

from kiusys_app.api.auth import client_of
from kiusys_app.metrics import IDEMPOTENT_REPLAYS, TRANSACTIONS_RECORDED
from kiusys_app.stores import CounterStore, RecordResult

IDEMPOTENCY_KEY_HEADER = b"idempotency-key"  # as ASGI names it


class RepeatedIdempotencyKey(Exception):
    """A request with more than one Idempotency-Key header (a client's bug, or a proxy's)."""


async def record(scope: Scope, route: str, key: str | None) -> RecordResult:
    """Record one transaction on the app's store. An Idempotency-Key is kept under the caller's
    client, so that two clients' equal keys never meet; several of them are refused, since
    which one was meant would be a guess."""
    if sum(name == IDEMPOTENCY_KEY_HEADER for name, _ in scope["headers"]) > 1:
        raise RepeatedIdempotencyKey
    store: CounterStore = scope["app"].state.store
    scoped = None if key is None else client_of(scope).idempotency_key(key)
    return await store.record(route, scoped)


REPLAYED_HEADER = "Idempotent-Replayed"
# The header as the schema documents it, on a record's 200.
REPLAYED_HEADER_SCHEMA = {
    REPLAYED_HEADER: {
        "description": "`true`: a replay of an earlier Idempotency-Key, which counted nothing",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def account_for(response: JSONResponse, result: RecordResult) -> JSONResponse:
    """Mark a replay as such (200, `Idempotent-Replayed: true`), count what happened, and
    return the response."""
    if result.replayed:
        IDEMPOTENT_REPLAYS.inc()
        response.headers[REPLAYED_HEADER] = "true"
        response.status_code = status.HTTP_200_OK
    else:
        TRANSACTIONS_RECORDED.inc()
    return response
