"""The invoice run, `kiusys-app usage`: an airline's usage in a range of days as one CSV file
(`route,period,transactions` rows under a header), read from the store that the service's
settings name. A bad setting is one JSON line and exit status 3, as at the server's start; a
store that fails is one JSON line and exit status 1, and no file is written.
"""

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

from kiusys_app.config import ConfigError, Settings, StoreKind, check_sqlite_path, load_settings
from kiusys_app.logs import configure_logging, exit_at_startup
from kiusys_app.stores import StoreError
from kiusys_app.stores.base import NullObserver
from kiusys_app.stores.factory import open_store
from kiusys_app.usage import Granularity, csv_lines, read, rows_of

logger = logging.getLogger(__name__)
# The exit status of an invoice run that its store failed (as any crash: 1).
STORE_FAILED = 1


def write_invoice_csv(
    airline: str, first: str, last: str, granularity: Granularity, output: str | None
) -> None:
    """The airline's usage as CSV on stdout, or in `output`, written whole (a temporary file
    renamed over it) or, when the store fails, not at all."""
    configure_logging()
    settings = _settings()
    try:
        rows = asyncio.run(_airline_rows(settings, airline, first, last, granularity))
    except StoreError as error:
        logger.error("usage not read: %s", error.reason, extra={"store": error.kind.value})
        raise SystemExit(STORE_FAILED) from None
    text = csv_lines(rows, header=True)
    if output is None:
        sys.stdout.write(text)
        return
    target = Path(output)
    with tempfile.NamedTemporaryFile(
        "w", dir=target.parent, prefix=f".{target.name}.", delete=False, newline=""
    ) as partial:
        partial.write(text)
    os.replace(partial.name, target)


def _settings() -> Settings:
    try:
        settings = load_settings()
        if settings.store is StoreKind.SQLITE and not settings.sqlite_path.is_file():
            # The service makes its file on first use; an invoice run never makes an empty one.
            path = settings.sqlite_path.absolute()
            raise ConfigError(f"invalid setting KIUSYS_SQLITE_PATH: {path}: no such file")
        check_sqlite_path(settings)
    except ConfigError as exc:
        exit_at_startup(str(exc))
    return settings


async def _airline_rows(
    settings: Settings, airline: str, first: str, last: str, granularity: Granularity
) -> list[tuple[str, str, int]]:
    """Every `route,period,transactions` row of an airline's usage, route by route."""
    store = open_store(settings, NullObserver())
    try:
        return [
            row
            async for chunk in read(store, await store.routes_of(airline), first, last)
            for row in rows_of(chunk, granularity)
        ]
    finally:
        await store.aclose()
