"""Dependencies shared by the routers, as reusable `Annotated` aliases."""

from typing import Annotated

from fastapi import Header, Path, Request

from kiusys_app.models import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    IDEMPOTENCY_KEY_PATTERN,
    IDEMPOTENCY_KEY_RULE,
    ROUTE_RULE,
    FlightRoute,
)
from kiusys_app.stores import CounterStore


def store_of(request: Request) -> CounterStore:
    """The app's store. A plain call, not a FastAPI dependency: solving one costs every call
    more than the lookup itself."""
    store: CounterStore = request.app.state.store
    return store


RoutePath = Annotated[FlightRoute, Path(description=f"Case-insensitive; {ROUTE_RULE}.")]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description=(
            f"Optional; {IDEMPOTENCY_KEY_RULE}. A repeat for the same route within 24 hours "
            "counts nothing and is answered with `Idempotent-Replayed: true`."
        ),
    ),
]

# Documented on every route that touches the store.
STORE_RESPONSES: dict[int | str, dict[str, object]] = {
    503: {
        "description": (
            "The store is throttled or unavailable: retry after `Retry-After` seconds. Without "
            "`Retry-After`, this instance cannot use its store until its operator fixes it."
        ),
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    }
}
