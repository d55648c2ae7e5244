"""API keys: `Authorization: Bearer <key>` or `X-API-Key: <key>` on every path but the open ones,
each key a named client's (`kiusys_app.clients`), which may record or check only what its
airlines and rights allow.

The check is a pure ASGI middleware, not a FastAPI dependency: it runs on every request, and a
dependency per route cost about a quarter of the throughput (see docs/performance.md). The
OpenAPI schema states the same rule, so Swagger UI offers its Authorize button.
"""

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from kiusys_app.api import paths
from kiusys_app.api.asgi import header
from kiusys_app.clients import ANYONE, Client, Clients, Permission
from kiusys_app.models import normalize_airline, normalize_route

# Where the gate leaves the caller's client for the app (idempotency keys, the access log and
# the request counter).
CLIENT_SCOPE_KEY = "kiusys.client"

# What each closed operation asks of a client: its right, and where its routes are (a path
# parameter, or repeated `route` query values). A test checks that every closed route is here.
PERMISSIONS: dict[tuple[str, str], tuple[Permission, str]] = {
    ("POST", paths.SAVE_TRANSACTION): (Permission.RECORD, "flight_route"),
    ("POST", paths.ROUTE_TRANSACTIONS): (Permission.RECORD, "route"),
    ("GET", paths.GET_TRANSACTION): (Permission.CHECK, "flight_route"),
    ("POST", paths.GET_TRANSACTION): (Permission.CHECK, "flight_route"),
    ("GET", paths.ROUTE_TRANSACTIONS): (Permission.CHECK, "route"),
    ("GET", paths.TRANSACTIONS): (Permission.CHECK, "?route"),
    ("GET", paths.USAGE): (Permission.USAGE, "?route"),
}

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
    },
    403: {"description": "The key's client may not do this, or not for this route's airline."},
}


def presented_key(scope: Scope) -> str | None:
    """A bearer token if there is one, else the X-API-Key header."""
    scheme, _, credentials = (header(scope, b"authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return header(scope, b"x-api-key")


def client_of(scope: Scope) -> Client:
    """The caller's client, as the gate found it (anyone's, for an open service or path)."""
    client: Client = scope.get(CLIENT_SCOPE_KEY, ANYONE)
    return client


# A closed operation's route, its right and where its routes are (as in PERMISSIONS).
_Closed = tuple[BaseRoute, Permission, str]


def closed_routes(routes: Sequence[BaseRoute]) -> dict[str, list[_Closed]]:
    """The routes of closed operations, by the methods they answer (HEAD asks what GET asks),
    in the router's order."""
    closed: dict[str, list[_Closed]] = {}
    for route in routes:
        path = getattr(route, "path", "")
        for method in getattr(route, "methods", None) or ():
            wanted = PERMISSIONS.get(("GET" if method == "HEAD" else method, path))
            if wanted is not None:
                closed.setdefault(method, []).append((route, *wanted))
    return closed


def _asked(
    scope: Scope, closed: dict[str, list[_Closed]]
) -> tuple[Permission, Sequence[str], Sequence[str]] | None:
    """What the request asks of its client: a right, the routes it touches and the airlines it
    names (`airline=`). None for a path of no closed operation, and for a route or an airline
    that is not one (the route answers that 422). No open path is also a closed one's, so only
    the closed routes are matched."""
    for route, permission, where in closed.get(scope["method"], ()):
        match, child = route.matches(scope)
        if match is not Match.FULL:
            continue
        airlines: list[str] = []
        if where.startswith("?"):
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
            values = [value for name, value in query if name == where[1:]]
            airlines = [value for name, value in query if name == "airline"]
        else:
            values = [child["path_params"][where]]
        try:
            return (
                permission,
                [normalize_route(value) for value in values],
                [normalize_airline(value) for value in airlines],
            )
        except ValueError:
            return None
    return None


def _refuse(status: int, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="kiusys"'} if status == 401 else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class ApiKeyGate:
    """Refuses, with 401, a request to a closed path without a valid key, once keys are set; and
    with 403 one that the key's client may not make (its right, its airlines). Nothing is
    written either way.

    Open are the paths in `open_paths` and every path under one of `open_prefixes`.
    """

    def __init__(
        self, app: ASGIApp, open_paths: frozenset[str], open_prefixes: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.open_paths = open_paths
        self.open_prefixes = open_prefixes
        # The app's closed routes, found at its first request (its routes are all added then).
        self._closed: dict[str, list[_Closed]] | None = None

    def _is_open(self, path: str) -> bool:
        return path in self.open_paths or path.startswith(self.open_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        clients: Clients = scope["app"].state.clients
        if scope["type"] == "http" and clients and not self._is_open(scope["path"]):
            presented = presented_key(scope)
            client = clients.find(presented) if presented else None
            if client is None:
                await _refuse(401, "a valid API key is required")(scope, receive, send)
                return
            scope[CLIENT_SCOPE_KEY] = client
            if self._closed is None:
                self._closed = closed_routes(scope["app"].router.routes)
            asked = _asked(scope, self._closed)
            refusal = asked and client.refusal(*asked)
            if refusal:
                await _refuse(403, refusal)(scope, receive, send)
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
