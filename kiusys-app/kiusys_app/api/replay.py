"""How a replayed idempotent record is told apart from a new one."""

from fastapi import Response, status

from kiusys_app.stores import RecordResult

REPLAYED_HEADER = "Idempotent-Replayed"


def mark_replay(response: Response, result: RecordResult) -> None:
    if result.replayed:
        response.headers[REPLAYED_HEADER] = "true"
        response.status_code = status.HTTP_200_OK
