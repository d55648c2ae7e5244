"""The flight-route rule: the validator and the pattern the API schema publishes agree."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiusys_app.models import ROUTE_SCHEMA_PATTERN, normalize_route


def accepted(route: str) -> bool:
    try:
        normalize_route(route)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    ("route", "normalized"),
    [
        ("AR1133", "AR1133"),
        ("ar1", "AR1"),
        ("G31234", "G31234"),
        ("3k7", "3K7"),
        ("LAN0001a", "LAN0001A"),
    ],
)
def test_a_flight_designator_is_accepted_and_upper_cased(route: str, normalized: str) -> None:
    assert normalize_route(route) == normalized


@pytest.mark.parametrize(
    "route",
    [
        "AR11335",
        "12345",
        "11133",
        "AR",
        "AR1133AB",
        "ABCD1",
        "AR-1133",
        "ÅR1133",
        "AR\uff11\uff11\uff13\uff13",
        "",
    ],
)
def test_anything_else_is_refused(route: str) -> None:
    assert not accepted(route)
    assert not re.fullmatch(ROUTE_SCHEMA_PATTERN, route)


@given(st.from_regex(r"[A-Za-z0-9]{1,9}", fullmatch=True))
def test_the_schema_pattern_and_the_validator_agree(route: str) -> None:
    assert bool(re.fullmatch(ROUTE_SCHEMA_PATTERN, route)) == accepted(route)
