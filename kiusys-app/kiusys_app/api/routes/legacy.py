"""The seed's calls, kept so that existing reservation systems keep working."""

from fastapi import APIRouter, Response

from kiusys_app.api.auth import UNAUTHORIZED_RESPONSE
from kiusys_app.api.deps import STORE_RESPONSES, IdempotencyKey, RoutePath, StoreDep
from kiusys_app.api.recording import account_for

router = APIRouter(
    tags=["seed-compatible"],
    responses={**UNAUTHORIZED_RESPONSE, **STORE_RESPONSES},
)


@router.post("/save-transaction/{flight_route}", summary="Record one transaction")
async def save_transaction(
    flight_route: RoutePath,
    store: StoreDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, int]:
    result = await store.record(flight_route, idempotency_key)
    account_for(response, result)
    return {flight_route: result.count}


@router.get("/get-transaction/{flight_route}", summary="Check a route's count")
@router.post(
    "/get-transaction/{flight_route}",
    summary="Check a route's count (the seed's POST form)",
    operation_id="get_transaction_post",
)
async def get_transaction(flight_route: RoutePath, store: StoreDep) -> dict[str, int]:
    return {flight_route: await store.get(flight_route)}
