"""The versioned API: resource-shaped paths and explicit field names."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse

from kiusys_app.api.auth import UNAUTHORIZED_RESPONSE
from kiusys_app.api.deps import STORE_RESPONSES, IdempotencyKey, RoutePath, store_of
from kiusys_app.api.paths import ROUTE_TRANSACTIONS, TRANSACTIONS
from kiusys_app.api.recording import REPLAYED_HEADER_SCHEMA, account_for, record
from kiusys_app.models import ROUTE_RULE, FlightRoute, RouteCount
from kiusys_app.stores import RecordResult

router = APIRouter(
    tags=["v1"],
    responses={**UNAUTHORIZED_RESPONSE, **STORE_RESPONSES},
)

MAX_BATCH_ROUTES = 100


@router.post(
    ROUTE_TRANSACTIONS,
    status_code=status.HTTP_201_CREATED,
    summary="Record one transaction",
    response_model=RouteCount,
    responses={
        200: {
            "description": "A replay of an earlier Idempotency-Key",
            "model": RouteCount,
            "headers": REPLAYED_HEADER_SCHEMA,
        }
    },
)
async def record_transaction(
    route: RoutePath, request: Request, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    return recorded(route, await record(request.scope, route, idempotency_key))


def recorded(route: str, result: RecordResult) -> JSONResponse:
    """The record's answer, here and on its hot path (`kiusys_app.api.hot_path`)."""
    answer = JSONResponse(_route_count(route, result.count), status.HTTP_201_CREATED)
    return account_for(answer, result)


@router.get(ROUTE_TRANSACTIONS, summary="Check a route's count", response_model=RouteCount)
async def get_transactions(route: RoutePath, request: Request) -> JSONResponse:
    return counted(route, await store_of(request).get(route))


def counted(route: str, count: int) -> JSONResponse:
    """The check's answer, here and on its hot path."""
    return JSONResponse(_route_count(route, count))


@router.get(TRANSACTIONS, summary="Check several routes at once", response_model=dict[str, int])
async def get_many_transactions(
    route: Annotated[
        list[FlightRoute],
        Query(
            min_length=1,
            max_length=MAX_BATCH_ROUTES,
            description=f"Repeat for each route, up to {MAX_BATCH_ROUTES}; {ROUTE_RULE}.",
        ),
    ],
    request: Request,
) -> JSONResponse:
    return JSONResponse(await store_of(request).get_many(list(dict.fromkeys(route))))


def _route_count(route: str, transactions: int) -> dict[str, object]:
    """RouteCount's JSON, built directly: the routes answer with their own JSONResponse, so
    that FastAPI skips validating and re-encoding what they return (`response_model` still
    documents it)."""
    return {"route": route, "transactions": transactions}
