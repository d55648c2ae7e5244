"""API keys: `Authorization: Bearer <key>` or `X-API-Key: <key>` on every path but the open ones.

The check is a pure ASGI middleware, not a FastAPI dependency: it runs on every request, and a
dependency per route cost about a quarter of the throughput (see the README, "Performance").
The OpenAPI schema states the same rule, so Swagger UI offers its Authorize button.
"""

import hmac
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from kiusys_app.api.asgi import header

SECURITY_SCHEMES = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key in the X-API-Key header.",
    },
    "Bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key as a bearer token: `Authorization: Bearer <key>`.",
    },
}
# Either scheme will do.
SECURITY_REQUIREMENT: list[dict[str, list[str]]] = [{"ApiKey": []}, {"Bearer": []}]

UNAUTHORIZED_RESPONSE: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "A valid API key is required: `Authorization: Bearer <key>` or `X-API-Key`.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    }
}


def key_is_valid(presented: str, keys: frozenset[str]) -> bool:
    """Compare against every key in constant time, so timing reveals neither key nor position."""
    candidate = presented.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key.encode())
    return matched


def presented_key(scope: Scope) -> str | None:
    """A bearer token if there is one, else the X-API-Key header."""
    scheme, _, credentials = (header(scope, b"authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return header(scope, b"x-api-key")


class ApiKeyGate:
    """Refuses, with 401, a request to a closed path without a valid key, once keys are set.

    Open are the paths in `open_paths` and every path under one of `open_prefixes`.
    """

    def __init__(
        self, app: ASGIApp, open_paths: frozenset[str], open_prefixes: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.open_paths = open_paths
        self.open_prefixes = open_prefixes

    def _is_open(self, path: str) -> bool:
        return path in self.open_paths or path.startswith(self.open_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._is_open(scope["path"]):
            keys: frozenset[str] = scope["app"].state.api_keys
            presented = presented_key(scope) if keys else None
            if keys and (presented is None or not key_is_valid(presented, keys)):
                response = JSONResponse(
                    {"detail": "a valid API key is required"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="kiusys"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def document_security(app: FastAPI, open_paths: frozenset[str]) -> None:
    """Add the schemes, and the requirement on every closed operation, to the app's schema."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            for path, operations in schema["paths"].items():
                if path not in open_paths:
                    for operation in operations.values():
                        operation["security"] = SECURITY_REQUIREMENT
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
