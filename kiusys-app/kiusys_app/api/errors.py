"""Every error answer, in one place: JSON in FastAPI's `{"detail": ...}` shape.

Store errors by kind: a transient one is 503 with `Retry-After`; a misconfigured store, or a
write whose outcome is unknown, is 503 without it, and one log line tells the operator the
cause. No body names a table or an ARN.
Unexpected errors become a JSON 500 in `RequestObservability`, the outermost middleware.
"""

import json
import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.routing import Match

from kiusys_app.api.paths import HTTP_METHODS
from kiusys_app.api.recording import RepeatedIdempotencyKey
from kiusys_app.metrics import STORE_ERRORS
from kiusys_app.models import IDEMPOTENCY_KEY_RULE
from kiusys_app.stores import IdempotencyKeyMismatch, StoreError, StoreErrorKind

logger = logging.getLogger(__name__)

TRANSIENT_DETAIL = "the store is busy or unavailable; retry later"
MISCONFIGURED_DETAIL = "this service cannot use its store until its operator fixes the setup"
OUTCOME_UNKNOWN_DETAIL = (
    "the store did not say whether this call was applied; it may have been counted. "
    "Send an Idempotency-Key to make a retry safe"
)
RETRY_AFTER_SECONDS = 1
# A 422 echoes at most this much of each bad input back (a list or an object as its JSON text,
# cut), and lists at most this many errors, so that its body stays under 2 KB.
MAX_ECHOED_INPUT = 100
MAX_ERRORS_LISTED = 5
_IDEMPOTENCY_KEY_LOC = ("header", "Idempotency-Key")


async def store_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreError)
    STORE_ERRORS.labels(exc.kind.value).inc()
    fields = {
        "store": exc.kind.value,
        "error": exc.reason,
        "table": exc.table,
        "operation": exc.operation,
    }
    if exc.kind is StoreErrorKind.MISCONFIGURED:
        logger.error("store misconfigured: %s", exc.reason, extra=fields)
        return JSONResponse(
            {"detail": MISCONFIGURED_DETAIL}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE
        )
    logger.warning("store %s", exc.kind.value, extra=fields)
    if exc.kind is StoreErrorKind.OUTCOME_UNKNOWN:
        # No Retry-After: clients that honour it would resend a write that may have counted.
        return JSONResponse(
            {"detail": OUTCOME_UNKNOWN_DETAIL}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE
        )
    return JSONResponse(
        {"detail": TRANSIENT_DETAIL},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def idempotency_key_mismatch(request: Request, exc: Exception) -> JSONResponse:
    # The same shape as FastAPI's own 422s, which the schema documents.
    error = {"loc": list(_IDEMPOTENCY_KEY_LOC), "msg": str(exc), "type": "idempotency_key_reused"}
    return JSONResponse({"detail": [error]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


# pydantic's prefix for an error that a validator raised as ValueError: not a sentence.
_VALUE_ERROR_PREFIX = "Value error, "


async def repeated_idempotency_key(request: Request, exc: Exception) -> JSONResponse:
    error = {
        "loc": list(_IDEMPOTENCY_KEY_LOC),
        "msg": "send one Idempotency-Key, not several: which one was meant would be a guess",
        "type": "idempotency_key_repeated",
    }
    return JSONResponse({"detail": [error]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _readable(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error with a plain-words message and a bounded echo of the input. A
    header's value is never echoed: the message says which rule it broke."""
    error = dict(error)
    error["msg"] = str(error.get("msg", "")).removeprefix(_VALUE_ERROR_PREFIX)
    loc = tuple(error.get("loc", ()))
    if loc == _IDEMPOTENCY_KEY_LOC:
        error["msg"] = f"an Idempotency-Key is {IDEMPOTENCY_KEY_RULE}"
        error.pop("ctx", None)
    if loc[:1] == ("header",):
        error.pop("input", None)
    if error.get("type") == "too_long" and loc == ("query", "route"):
        context = error.pop("ctx", {})
        error["msg"] = (
            f"a batch check reads 1 to {context.get('max_length')} routes (repeat route=), "
            f"not {context.get('actual_length')}"
        )
    if "error" in error.get("ctx", {}):  # an exception object, which JSON shows as {}
        error.pop("ctx")
    if "input" in error:
        value = error["input"]
        text = value if isinstance(value, str) else json.dumps(jsonable_encoder(value))
        if len(text) > MAX_ECHOED_INPUT:
            error["input"] = text[:MAX_ECHOED_INPUT] + "..."
    return error


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    body: dict[str, Any] = {
        "detail": jsonable_encoder([_readable(error) for error in errors[:MAX_ERRORS_LISTED]])
    }
    if len(errors) > MAX_ERRORS_LISTED:
        body["errors_not_listed"] = len(errors) - MAX_ERRORS_LISTED
    return JSONResponse(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 with an `Allow` that lists every route's methods on the path, not just the first
    route's: each method is tried against the routes through their public `matches`."""
    routes = request.app.router.routes

    def answered(method: str) -> bool:
        return any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)

    get = answered("GET")
    allowed = [method for method in HTTP_METHODS if (get if method == "HEAD" else answered(method))]
    return JSONResponse(
        {"detail": "Method Not Allowed"},
        status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
        headers={"Allow": ", ".join(allowed)},
    )


def register(app: FastAPI) -> None:
    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, method_not_allowed)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StoreError, store_error)
    app.add_exception_handler(IdempotencyKeyMismatch, idempotency_key_mismatch)
    app.add_exception_handler(RepeatedIdempotencyKey, repeated_idempotency_key)
