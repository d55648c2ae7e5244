"""Builds the store that the settings ask for."""

import logging
import time
from collections.abc import Callable

from kiusys_app.config import Settings, StoreKind, dynamodb_endpoint, store_regions, tls_context
from kiusys_app.stores.base import CounterStore, StoreObserver

logger = logging.getLogger(__name__)


def open_store(
    settings: Settings, observer: StoreObserver, clock: Callable[[], float] = time.time
) -> CounterStore:
    """The store, whose clock (epoch seconds) decides each record's day and each key's expiry."""
    if settings.store is StoreKind.DYNAMODB:
        from kiusys_app.stores.dynamodb import DynamoDBStore

        assert settings.aws_region is not None, "load_settings requires it"
        endpoint = settings.aws_endpoint_url or dynamodb_endpoint(settings.aws_region)
        assert endpoint is not None, "load_settings refuses a region of no partition"

        regions = store_regions(settings)
        logger.info(
            "using store dynamodb: tables %s and %s in %s%s%s",
            settings.table_name,
            settings.idempotency_table_name,
            settings.aws_region,
            f" at {settings.aws_endpoint_url}" if settings.aws_endpoint_url else "",
            f", counting across {', '.join(regions)}" if regions else "",
        )
        return DynamoDBStore(
            table_name=settings.table_name,
            idempotency_table_name=settings.idempotency_table_name,
            region=settings.aws_region,
            endpoint_url=endpoint,
            regions=regions,
            tls=tls_context(settings),
            clock=clock,
            observer=observer,
        )
    from kiusys_app.stores.sqlite import SQLiteStore

    logger.info("using store sqlite: %s", settings.sqlite_path.resolve())
    return SQLiteStore(settings.sqlite_path, clock=clock, observer=observer)
