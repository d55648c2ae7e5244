"""The record calls' common case, answered without FastAPI's per-request parameter solving.

FastAPI checks a record call's two inputs (the route in the path, the optional Idempotency-Key
header) through pydantic and its dependency solver, which costs more CPU than the rest of the
app's work for the call. A hot route sits in front of each record route: a call whose inputs
pass the same checks, done directly, is answered there; any other call goes on to the FastAPI
route, which answers its 422 exactly as before. The FastAPI routes stay in the app, so the
schema does not change.
"""

import re
from collections.abc import Callable, Mapping

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from kiusys_app.api.recording import IDEMPOTENCY_KEY_HEADER, record
from kiusys_app.models import IDEMPOTENCY_KEY_MAX_LENGTH, IDEMPOTENCY_KEY_PATTERN, normalize_route
from kiusys_app.stores import RecordResult

_VALID_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)

# Builds a record route's answer from the route and the store's result.
Answer = Callable[[str, RecordResult], JSONResponse]


class _HotRecord:
    def __init__(self, route: APIRoute, answer: Answer) -> None:
        self._route = route
        self._answer = answer
        (self._param,) = route.param_convertors  # the route id, the path's one parameter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        inputs = self._valid_inputs(scope)
        if inputs is None:
            scope["route"] = self._route
            await self._route.handle(scope, receive, send)
            return
        route, key = inputs
        response = self._answer(route, await record(scope, route, key))
        await response(scope, receive, send)

    def _valid_inputs(self, scope: Scope) -> tuple[str, str | None] | None:
        """The route and the key, if FastAPI would accept both; else None."""
        try:
            route = normalize_route(scope["path_params"][self._param])
        except ValueError:
            return None
        keys = [value for name, value in scope["headers"] if name == IDEMPOTENCY_KEY_HEADER]
        if not keys:
            return route, None
        key = keys[0].decode("latin-1")  # as Starlette decodes it
        valid = (
            len(keys) == 1 and len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH and _VALID_KEY.fullmatch(key)
        )
        return (route, key) if valid else None


def add_hot_routes(routes: list[BaseRoute], answers: Mapping[str, Answer]) -> None:
    """Put a hot route in front of each FastAPI record route (a POST) whose path `answers`
    names."""
    for index, route in reversed(list(enumerate(routes))):
        if isinstance(route, APIRoute) and route.path in answers and route.methods == {"POST"}:
            hot = Route(route.path, _HotRecord(route, answers[route.path]), methods=route.methods)
            routes.insert(index, hot)
