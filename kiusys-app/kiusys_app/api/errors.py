"""Domain errors mapped to HTTP, in one place."""

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from kiusys_app.stores import IdempotencyKeyMismatch, StoreUnavailable

logger = logging.getLogger(__name__)


async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreUnavailable)
    logger.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc.reason)
    return JSONResponse(
        {"detail": "the store is busy or unavailable; retry later"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(exc.retry_after)},
    )


async def idempotency_key_mismatch(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def register(app: FastAPI) -> None:
    app.add_exception_handler(StoreUnavailable, store_unavailable)
    app.add_exception_handler(IdempotencyKeyMismatch, idempotency_key_mismatch)
