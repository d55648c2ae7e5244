"""Assembles the ASGI app: settings and store in the lifespan, routers, error handlers."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kiusys_app.api import errors
from kiusys_app.api.routes import health, legacy, v1
from kiusys_app.config import get_settings
from kiusys_app.stores.factory import open_store

logger = logging.getLogger("kiusys_app")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    settings = get_settings()
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
