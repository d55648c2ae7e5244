"""The seed's calls, kept so that existing reservation systems keep working."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kiusys_app.api.auth import UNAUTHORIZED_RESPONSE
from kiusys_app.api.deps import STORE_RESPONSES, IdempotencyKey, RoutePath, store_of
from kiusys_app.api.paths import GET_TRANSACTION, SAVE_TRANSACTION
from kiusys_app.api.recording import REPLAYED_HEADER_SCHEMA, account_for, record
from kiusys_app.stores import RecordResult

router = APIRouter(
    tags=["seed-compatible"],
    responses={**UNAUTHORIZED_RESPONSE, **STORE_RESPONSES},
)


@router.post(
    SAVE_TRANSACTION,
    summary="Record one transaction",
    response_model=dict[str, int],
    responses={200: {"headers": REPLAYED_HEADER_SCHEMA}},
)
async def save_transaction(
    flight_route: RoutePath, request: Request, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    return saved(flight_route, await record(request.scope, flight_route, idempotency_key))


def saved(route: str, result: RecordResult) -> JSONResponse:
    """The record's answer, here and on its hot path (`kiusys_app.api.hot_path`)."""
    return account_for(JSONResponse({route: result.count}), result)


@router.get(
    GET_TRANSACTION,
    summary="Check a route's count",
    response_model=dict[str, int],
)
@router.post(
    GET_TRANSACTION,
    summary="Check a route's count (the seed's POST form)",
    operation_id="get_transaction_post",
    response_model=dict[str, int],
)
async def get_transaction(flight_route: RoutePath, request: Request) -> JSONResponse:
    return counted(flight_route, await store_of(request).get(flight_route))


def counted(route: str, count: int) -> JSONResponse:
    """The check's answer, here and on its hot path."""
    return JSONResponse({route: count})
