"""Request and response types shared by the routers."""

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema

# An airline code, upper-cased: the start of every route, and what a client may be scoped to.
AIRLINE_PATTERN = r"[A-Z]{3}|[A-Z][A-Z0-9]|[0-9][A-Z]"
AIRLINE_RULE = "an airline code (2 letters or digits, not both digits, or 3 letters)"
ROUTE_RULE = (
    f"a flight route is {AIRLINE_RULE}, then 1 to 4 digits, then an optional letter, e.g. AR1133"
)
_ROUTE_PATTERN = re.compile(rf"(?P<airline>{AIRLINE_PATTERN})[0-9]{{1,4}}[A-Z]?")
# The same rule before upper-casing, as the API schema states it.
ROUTE_SCHEMA_PATTERN = r"^(?:[A-Za-z]{3}|[A-Za-z][A-Za-z0-9]|[0-9][A-Za-z])[0-9]{1,4}[A-Za-z]?$"

IDEMPOTENCY_KEY_MAX_LENGTH = 255
IDEMPOTENCY_KEY_PATTERN = r"^[\x20-\x7e]+$"
IDEMPOTENCY_KEY_RULE = f"1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters"


def normalize_route(value: str) -> str:
    """Upper-case a flight route and check it is a flight designator."""
    if value.isascii():
        candidate = value.upper()
        if _ROUTE_PATTERN.fullmatch(candidate):
            return candidate
    raise ValueError(ROUTE_RULE)


_AIRLINE = re.compile(AIRLINE_PATTERN)


def normalize_airline(value: str) -> str:
    """Upper-case an airline code and check it is one."""
    if value.isascii() and _AIRLINE.fullmatch(value.upper()):
        return value.upper()
    raise ValueError(f"an airline is {AIRLINE_RULE}, e.g. AR")


def airline_of(route: str) -> str:
    """The airline code of a normalized route: `AR` of `AR1133`, `G3` of `G31234`, `ABC` of
    `ABC123` (three letters are a code of their own, as two letters and a digit never are)."""
    match = _ROUTE_PATTERN.fullmatch(route)
    if match is None:
        raise ValueError(ROUTE_RULE)
    return match["airline"]


FlightRoute = Annotated[
    str,
    AfterValidator(normalize_route),
    WithJsonSchema({"type": "string", "pattern": ROUTE_SCHEMA_PATTERN, "examples": ["AR1133"]}),
]


Airline = Annotated[
    str,
    AfterValidator(normalize_airline),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^(?:[A-Za-z]{3}|[A-Za-z][A-Za-z0-9]|[0-9][A-Za-z])$",
            "examples": ["AR"],
        }
    ),
]


class RouteCount(BaseModel):
    route: str = Field(examples=["AR1133"])
    transactions: int = Field(ge=0, examples=[6])


class Health(BaseModel):
    status: str = Field(examples=["ok"])
