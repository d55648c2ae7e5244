"""The record and check calls' common case, answered without FastAPI's per-request solving.

FastAPI checks a call's inputs (the route in the path, the optional Idempotency-Key header, the
repeated `route` query values) through pydantic and its dependency solver, which costs more
CPU than the rest of the app's work for the call. A hot route sits in front of each of these
FastAPI routes: a call whose inputs pass the same checks, done directly, is answered there; any
other call goes on to the FastAPI route, which answers its 422 exactly as before. The FastAPI
routes stay in the app, so the schema does not change.
"""

import re
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from kiusys_app.api.recording import IDEMPOTENCY_KEY_HEADER, record
from kiusys_app.models import IDEMPOTENCY_KEY_MAX_LENGTH, IDEMPOTENCY_KEY_PATTERN, normalize_route
from kiusys_app.stores import CounterStore, RecordResult

_VALID_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)

# A hot call: for the scope of a call whose inputs FastAPI would accept, its answer (to await);
# None for any other call.
Call = Callable[[Scope], Awaitable[Response] | None]
# Makes a FastAPI route's hot call.
HotCall = Callable[[APIRoute], Call]


class _HotRoute:
    def __init__(self, route: APIRoute, call: Call) -> None:
        self._route = route
        self._call = call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self._route  # the route that answers, as FastAPI's routing sets it
        answering = self._call(scope)
        if answering is None:
            await self._route.handle(scope, receive, send)
            return
        response = await answering
        await response(scope, receive, send)


def _store(scope: Scope) -> CounterStore:
    store: CounterStore = scope["app"].state.store
    return store


# The inputs below raise ValueError for what FastAPI would refuse.


def _path_route(route: APIRoute) -> Callable[[Scope], str]:
    """The flight route in the path, normalized."""
    (param,) = route.param_convertors  # the path's one parameter
    return lambda scope: normalize_route(scope["path_params"][param])


def _key(scope: Scope) -> str | None:
    """The Idempotency-Key; None when there is none."""
    keys = [value for name, value in scope["headers"] if name == IDEMPOTENCY_KEY_HEADER]
    if not keys:
        return None
    key: str = keys[0].decode("latin-1")  # as Starlette decodes it
    if len(keys) > 1 or len(key) > IDEMPOTENCY_KEY_MAX_LENGTH or not _VALID_KEY.fullmatch(key):
        raise ValueError(key)
    return key


def _routes(scope: Scope, most: int) -> list[str]:
    """1 to `most` routes, repeated `route` query values read as Starlette reads them (blank
    values kept), normalized."""
    query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    values = [value for name, value in query if name == "route"]
    if not 1 <= len(values) <= most:
        raise ValueError(len(values))
    return [normalize_route(value) for value in values]


def recording(answer: Callable[[str, RecordResult], JSONResponse]) -> HotCall:
    """A record call: the route and the key, then `answer(route, result)`."""

    def hot(fastapi_route: APIRoute) -> Call:
        route_of = _path_route(fastapi_route)

        async def recorded(scope: Scope, route: str, key: str | None) -> Response:
            return answer(route, await record(scope, route, key))

        def call(scope: Scope) -> Awaitable[Response] | None:
            try:
                return recorded(scope, route_of(scope), _key(scope))
            except ValueError:
                return None

        return call

    return hot


def checking(answer: Callable[[str, int], JSONResponse]) -> HotCall:
    """A check of one route: `answer(route, count)`."""

    def hot(fastapi_route: APIRoute) -> Call:
        route_of = _path_route(fastapi_route)

        async def checked(scope: Scope, route: str) -> Response:
            return answer(route, await _store(scope).get(route))

        def call(scope: Scope) -> Awaitable[Response] | None:
            try:
                return checked(scope, route_of(scope))
            except ValueError:
                return None

        return call

    return hot


def checking_many(most: int) -> HotCall:
    """A check of 1 to `most` routes (repeats counted once)."""

    async def checked(scope: Scope, routes: list[str]) -> Response:
        return JSONResponse(await _store(scope).get_many(list(dict.fromkeys(routes))))

    def call(scope: Scope) -> Awaitable[Response] | None:
        try:
            return checked(scope, _routes(scope, most))
        except ValueError:
            return None

    return lambda fastapi_route: call


def add_hot_routes(routes: list[BaseRoute], hot: Mapping[tuple[str, str], HotCall]) -> None:
    """Put a hot route in front of each FastAPI route whose one method and path `hot` names."""
    for index, route in reversed(list(enumerate(routes))):
        if not isinstance(route, APIRoute) or route.methods is None or len(route.methods) != 1:
            continue
        (method,) = route.methods
        make = hot.get((method, route.path))
        if make is not None:
            hot_route = _HotRoute(route, make(route))
            routes.insert(index, Route(route.path, hot_route, methods=route.methods))
