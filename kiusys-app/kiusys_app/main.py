"""Assembles the ASGI app: `create_app(settings)`, and the `app` that `kiusys-app` serves."""

import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kiusys_app.api import errors, hot_path, paths
from kiusys_app.api.auth import ApiKeyGate, document_security
from kiusys_app.api.docs import ASSETS_PATH, DOCS_ALIAS, DOCS_PATH, add_docs, document_every_answer
from kiusys_app.api.head import HeadAsGet
from kiusys_app.api.limits import RequestLimits
from kiusys_app.api.observability import RequestObservability
from kiusys_app.api.routes import health, legacy, usage, v1
from kiusys_app.config import (
    ConfigError,
    Settings,
    check_sqlite_path,
    load_clients,
    load_settings,
)
from kiusys_app.logs import configure_logging, exit_at_startup
from kiusys_app.metrics import StoreMetrics
from kiusys_app.stores.factory import open_store

logger = logging.getLogger("kiusys_app")


def create_app(settings: Settings, clock: Callable[[], float] = time.time) -> FastAPI:
    """The service for `settings`. A setting it cannot use raises ConfigError here, before any
    server starts; the store itself is opened and closed by the lifespan. `clock` is the
    store's (the tests move it across a midnight)."""
    configure_logging()
    clients = load_clients(settings)
    check_sqlite_path(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not clients:
            logger.warning("no API keys are set: record and check calls are open to anyone")
        app.state.store = open_store(settings, StoreMetrics(), clock)
        app.state.readiness = health.Readiness(app.state.store.ping)
        # Everything made so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which would otherwise walk it every few seconds under load
        # (tens of ms each, the p99 of a request that waits for one).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await app.state.store.aclose()

    app = FastAPI(
        title="Kiusys transaction counter",
        summary="Counts confirmed reservation transactions per flight route.",
        version="1.0.0",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # No OpenTelemetry here (metrics are Prometheus): without this, FastAPI asks the
        # OpenTelemetry providers on every request whether they are configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.clients = clients
    # `/save-transaction/AR1133/` is a JSON 404, not an empty redirect to the path without `/`.
    app.router.redirect_slashes = False
    # The routers' routes go straight into the app's list: included as routers, each request
    # would also pay FastAPI's matching through them (about a fifth of a `/healthz` call).
    for router in (legacy.router, v1.router, usage.router, health.router):
        app.router.routes.extend(router.routes)
    hot_path.add_hot_routes(
        app.router.routes,
        {
            ("POST", paths.SAVE_TRANSACTION): hot_path.recording(legacy.saved),
            ("POST", paths.ROUTE_TRANSACTIONS): hot_path.recording(v1.recorded),
            ("GET", paths.GET_TRANSACTION): hot_path.checking(legacy.counted),
            ("POST", paths.GET_TRANSACTION): hot_path.checking(legacy.counted),
            ("GET", paths.ROUTE_TRANSACTIONS): hot_path.checking(v1.counted),
            ("GET", paths.TRANSACTIONS): hot_path.checking_many(v1.MAX_BATCH_ROUTES),
        },
    )
    add_docs(app)
    errors.register(app)
    open_paths = frozenset({DOCS_PATH, DOCS_ALIAS, app.openapi_url or "", *health.PATHS})
    document_security(app, open_paths)
    document_every_answer(app)
    # The last one added runs first: every request gets an id, a log line and a JSON answer,
    # refused ones too.
    app.add_middleware(ApiKeyGate, open_paths=open_paths, open_prefixes=(f"{ASSETS_PATH}/",))
    app.add_middleware(HeadAsGet)
    app.add_middleware(RequestLimits)
    app.add_middleware(RequestObservability, routes=app.router.routes)
    return app


def _app_from_environment() -> FastAPI:
    try:
        return create_app(load_settings())
    except ConfigError as exc:
        exit_at_startup(str(exc))


app = _app_from_environment()
