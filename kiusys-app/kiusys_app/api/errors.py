"""Domain errors mapped to HTTP, in one place."""

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from starlette.routing import Match

from kiusys_app.metrics import STORE_ERRORS
from kiusys_app.stores import IdempotencyKeyMismatch, StoreUnavailable

logger = logging.getLogger(__name__)


async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreUnavailable)
    STORE_ERRORS.labels(exc.kind).inc()
    logger.warning(
        "store %s: %s", exc.kind, exc.reason, extra={"store": exc.kind, "error": exc.reason}
    )
    return JSONResponse(
        {"detail": "the store is busy or unavailable; retry later"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(exc.retry_after)},
    )


async def idempotency_key_mismatch(request: Request, exc: Exception) -> JSONResponse:
    # The same shape as FastAPI's own 422s, which the schema documents.
    error = {
        "loc": ["header", "Idempotency-Key"],
        "msg": str(exc),
        "type": "idempotency_key_reused",
    }
    return JSONResponse({"detail": [error]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


# Methods a route may answer; OPTIONS and TRACE are never routed here.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 with an `Allow` that lists every route's methods on the path, not just the first
    route's: each method is tried against the routes through their public `matches`."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]
    return JSONResponse(
        {"detail": "Method Not Allowed"},
        status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
        headers={"Allow": ", ".join(allowed)},
    )


def register(app: FastAPI) -> None:
    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, method_not_allowed)
    app.add_exception_handler(StoreUnavailable, store_unavailable)
    app.add_exception_handler(IdempotencyKeyMismatch, idempotency_key_mismatch)
