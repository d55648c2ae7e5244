"""The service as `kiusys-app` serves it (`--target tests.support.cut_usage_app:app`), with a
store that fails a usage call after its first 50 routes: what a streamed answer does when the
store fails half-way. Never import it into a test's process: it replaces the usage call's read
there too."""

from collections.abc import AsyncIterator, Sequence

from kiusys_app.api.routes import usage
from kiusys_app.config import load_settings
from kiusys_app.main import create_app
from kiusys_app.stores import CounterStore, StoreError, StoreErrorKind, Usage

_read = usage.read


async def _failing_after_the_first_chunk(
    store: CounterStore, routes: Sequence[str], first: str, last: str
) -> AsyncIterator[Usage]:
    chunks = _read(store, routes, first, last)
    yield await anext(chunks)
    raise StoreError(StoreErrorKind.UNAVAILABLE, "the test's store failed half-way")


usage.read = _failing_after_the_first_chunk
app = create_app(load_settings())
