"""The versioned API: resource-shaped paths and explicit field names."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from kiusys_app.api.auth import UNAUTHORIZED_RESPONSE
from kiusys_app.api.deps import STORE_RESPONSES, IdempotencyKey, RoutePath, StoreDep
from kiusys_app.api.recording import account_for
from kiusys_app.models import ROUTE_RULE, FlightRoute, RouteCount

router = APIRouter(
    prefix="/v1",
    tags=["v1"],
    responses={**UNAUTHORIZED_RESPONSE, **STORE_RESPONSES},
)

MAX_BATCH_ROUTES = 100


@router.post(
    "/routes/{route}/transactions",
    status_code=status.HTTP_201_CREATED,
    summary="Record one transaction",
    responses={200: {"description": "A replay of an earlier Idempotency-Key", "model": RouteCount}},
)
async def record_transaction(
    route: RoutePath,
    store: StoreDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RouteCount:
    result = await store.record(route, idempotency_key)
    account_for(response, result)
    return RouteCount(route=route, transactions=result.count)


@router.get("/routes/{route}/transactions", summary="Check a route's count")
async def get_transactions(route: RoutePath, store: StoreDep) -> RouteCount:
    return RouteCount(route=route, transactions=await store.get(route))


@router.get("/transactions", summary="Check several routes at once")
async def get_many_transactions(
    route: Annotated[
        list[FlightRoute],
        Query(
            min_length=1,
            max_length=MAX_BATCH_ROUTES,
            description=f"Repeat for each route, up to {MAX_BATCH_ROUTES}; {ROUTE_RULE}.",
        ),
    ],
    store: StoreDep,
) -> dict[str, int]:
    return await store.get_many(list(dict.fromkeys(route)))
