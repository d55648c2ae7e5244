"""Assembles the ASGI app: settings and store in the lifespan, routers, error handlers."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kiusys_app.api import errors
from kiusys_app.api.auth import ApiKeyGate, document_security, open_paths
from kiusys_app.api.observability import RequestObservability
from kiusys_app.api.routes import health, legacy, v1
from kiusys_app.config import get_settings, load_api_keys
from kiusys_app.logs import configure_logging
from kiusys_app.stores.factory import open_store

logger = logging.getLogger("kiusys_app")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    configure_logging()
    settings = get_settings()
    app.state.api_keys = load_api_keys(settings)
    if not app.state.api_keys:
        logger.warning("no API keys are set: record and check calls are open to anyone")
    app.state.store = open_store(settings)
    try:
        yield
    finally:
        app.state.store.close()


app = FastAPI(
    title="Kiusys transaction counter",
    summary="Counts confirmed reservation transactions per flight route.",
    version="1.0.0",
    docs_url="/",
    lifespan=lifespan,
)
app.include_router(legacy.router)
app.include_router(v1.router)
app.include_router(health.router)
errors.register(app)
OPEN_PATHS = open_paths(app, "/healthz", "/readyz", "/metrics")
document_security(app, OPEN_PATHS)
# The last one added runs first: every request gets an id and a log line, refused ones too.
app.add_middleware(ApiKeyGate, open_paths=OPEN_PATHS)
app.add_middleware(RequestObservability)
