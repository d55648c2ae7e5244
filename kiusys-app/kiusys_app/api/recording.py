"""What every record call does with its result: the replay header and the counters."""

from fastapi import status
from fastapi.responses import JSONResponse

from kiusys_app.metrics import IDEMPOTENT_REPLAYS, TRANSACTIONS_RECORDED
from kiusys_app.stores import RecordResult

REPLAYED_HEADER = "Idempotent-Replayed"


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
