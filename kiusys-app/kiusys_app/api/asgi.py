"""Small helpers for the pure ASGI middlewares."""

from starlette.types import Scope


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of one request header, from the raw list (ASGI names are lower case).

    Cheaper than building a `Headers` object on every request for one or two look-ups.
    """
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None
