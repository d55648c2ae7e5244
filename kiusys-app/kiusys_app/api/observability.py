"""One pure ASGI middleware that gives every request an id, a JSON log line and metrics, and
tells a client how long an idle connection is kept (`Keep-Alive: timeout=4`).

It is the outermost layer, so it also turns any unexpected error into a JSON 500 that carries
the request id, and logs that error once, traceback included, as one JSON line.
"""

import logging
import time
from collections.abc import Sequence
from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kiusys_app.api.asgi import header
from kiusys_app.api.auth import client_of
from kiusys_app.api.paths import HTTP_METHODS
from kiusys_app.logs import log_info, request_id_from, request_id_var
from kiusys_app.metrics import REQUEST_DURATION, REQUESTS

REQUEST_ID_HEADER = "X-Request-ID"
# Requests that matched no route share one label, so a scan of random paths cannot blow up
# the number of time series.
UNMATCHED_ROUTE = "<unmatched>"
CLIENT_WENT_AWAY = 499
# The server closes a connection idle for serve.HEADER_READ_TIMEOUT_MS (5 s). Clients are told a
# second less, so that a request sent just before the hint's end arrives before the close.
KEEP_ALIVE_SECONDS = 4

logger = logging.getLogger("kiusys_app.access")


class AnswerCut(Exception):
    """Raised by an app whose streamed answer cannot be finished (it logged why): the answer is
    left unfinished, so that the server closes the connection before its end."""


_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
_KEEP_ALIVE = (b"keep-alive", f"timeout={KEEP_ALIVE_SECONDS}".encode())


def _kept_alive(scope: Scope) -> bool:
    """Whether the connection stays open after this answer: HTTP/1.1 unless the client asked to
    close it; HTTP/1.0 (which granian 2.8 reports as "1", not "1.0") only if it asked to keep it.
    The server speaks HTTP/1 alone."""
    connection = (header(scope, b"connection") or "").lower()
    if scope.get("http_version") == "1.1":
        return "close" not in connection
    return "keep-alive" in connection


class RequestObservability:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        # Every route, flat: a request that no route handled (a middleware refused it, or a
        # mount served it) is labelled with the one it was for.
        self._routes = routes
        # The metric children by label values: `labels()` takes a lock and builds a key each
        # time; the set of label values is small and bounded.
        self._children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}

    def _observe(self, route: str, method: str, status: int, client: str, elapsed: float) -> None:
        labels = (route, method if method in HTTP_METHODS else "OTHER", str(status))
        children = self._children.get((*labels, client))
        if children is None:
            children = (REQUESTS.labels(*labels, client), REQUEST_DURATION.labels(*labels))
            self._children[(*labels, client)] = children
        requests, duration = children
        requests.inc()
        duration.observe(elapsed)

    def _template(self, scope: Scope, root_path: str) -> str:
        """The template of the route that `scope` is for, though no route handled it (a mount
        handled it, or a middleware refused it)."""
        as_received = {**scope, "root_path": root_path}  # a mount moves its prefix there
        for route in self._routes:
            if route.matches(as_received)[0] is not Match.NONE:
                path: str = getattr(route, "path", UNMATCHED_ROUTE)
                return f"{path}/{{path}}" if isinstance(route, Mount) else path
        return UNMATCHED_ROUTE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(header(scope, _REQUEST_ID))
        root_path = scope.get("root_path", "")
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        # Until an answer starts: a request whose client went away before it was complete is
        # answered nothing, and logged as nginx logs it ("client closed request"), not as a 5xx.
        status = CLIENT_WENT_AWAY
        responding = False
        answer_headers = [(_REQUEST_ID, request_id.encode())]
        if _kept_alive(scope):
            answer_headers.append(_KEEP_ALIVE)

        async def send_with_id(message: Message) -> None:
            nonlocal status, responding
            if message["type"] == "http.response.start":
                status = message["status"]
                responding = True
                message["headers"] = [*message.get("headers", []), *answer_headers]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except AnswerCut:
            pass
        except Exception:
            logger.exception("unexpected error", extra={"method": scope["method"]})
            if not responding:
                body = {"detail": "internal error", "request_id": request_id}
                await JSONResponse(body, status_code=500)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = route.path if route is not None else self._template(scope, root_path)
            # A configured client's name, or none: the label's values stay bounded.
            client = client_of(scope).name
            self._observe(template, scope["method"], status, client, elapsed)
            log_info(
                logger,
                "request",
                {
                    "method": scope["method"],
                    "route": template,
                    "status": status,
                    "client": client,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
            request_id_var.reset(token)
