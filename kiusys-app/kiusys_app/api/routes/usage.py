"""The usage call: what an airline's routes, or some routes, counted per UTC day or month, as
JSON or as CSV rows (`Accept: text/csv`) an invoice can be built from."""

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema

from kiusys_app.api.auth import UNAUTHORIZED_RESPONSE
from kiusys_app.api.deps import STORE_RESPONSES, store_of
from kiusys_app.api.observability import AnswerCut
from kiusys_app.api.paths import USAGE
from kiusys_app.models import ROUTE_RULE, Airline, FlightRoute
from kiusys_app.stores import StoreError, Usage
from kiusys_app.usage import (
    DAY_RULE,
    MAX_DAYS,
    Granularity,
    by_period,
    csv_lines,
    parse_day,
    range_problem,
    read,
    rows_of,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["usage"], responses={**UNAUTHORIZED_RESPONSE, **STORE_RESPONSES})

MAX_USAGE_ROUTES = 100
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"

Day = Annotated[
    str,
    AfterValidator(parse_day),
    WithJsonSchema({"type": "string", "format": "date", "examples": ["2026-11-01"]}),
]


class UsageReport(BaseModel):
    from_: str = Field(alias="from", examples=["2026-11-01"])
    to: str = Field(examples=["2026-11-30"])
    granularity: Granularity
    routes: dict[str, dict[str, int]] = Field(
        description="Per route, each period that counted something, and its count.",
        examples=[{"AR1133": {"2026-11-01": 5, "2026-11-02": 3}, "AR0001": {"2026-11-02": 1}}],
    )
    total: int = Field(ge=0, examples=[9])


def _invalid(where: str, message: str, value: object) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", where), "msg": message, "type": "value_error", "input": value}]
    )


@router.get(
    USAGE,
    summary="Usage per route and day or month, for an invoice",
    description=(
        "What an airline's routes (`airline=`) or the routes named (`route=`, repeated) "
        "counted from `from` to `to` (inclusive, UTC days, at most "
        f"{MAX_DAYS} days), per day or month. A record counts in the UTC day on which the "
        "service accepted it. Only periods that counted something are listed; an airline's "
        "routes that counted nothing in the range are left out. With `Accept: text/csv`, "
        "the same as `route,period,transactions` rows under a header, streamed."
    ),
    response_model=UsageReport,
    responses={
        200: {
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "route,period,transactions\r\nAR1133,2026-11-01,5\r\n",
                }
            }
        }
    },
)
async def usage(
    request: Request,
    from_: Annotated[Day, Query(alias="from", description=f"The first day; {DAY_RULE}.")],
    to: Annotated[Day, Query(description=f"The last day, included; {DAY_RULE}.")],
    airline: Annotated[
        Airline | None, Query(description="Every route of this airline; or use `route`.")
    ] = None,
    route: Annotated[
        list[FlightRoute] | None,
        Query(
            max_length=MAX_USAGE_ROUTES,
            description=f"Repeat for each route, up to {MAX_USAGE_ROUTES}; {ROUTE_RULE}.",
        ),
    ] = None,
    granularity: Annotated[
        Granularity, Query(description="`day` (YYYY-MM-DD) or `month` (YYYY-MM).")
    ] = Granularity.DAY,
) -> Response:
    if (airline is None) == (route is None):
        raise _invalid(
            "airline", "name either one airline (airline=) or some routes (route=)", airline
        )
    problem = range_problem(from_, to)
    if problem:
        raise _invalid("to", problem, to)
    store = store_of(request)
    routes = await store.routes_of(airline) if airline else list(dict.fromkeys(route or ()))
    chunks = read(store, routes, from_, to)
    first: Usage = await anext(chunks, {})  # a store error before the answer begins is a JSON 503
    if "text/csv" in request.headers.get("accept", ""):
        return StreamingResponse(_csv(first, chunks, granularity), media_type=CSV_MEDIA_TYPE)
    report: dict[str, dict[str, int]] = {}
    async for chunk in _then(first, chunks):
        for name, days in chunk.items():
            if days or not airline:
                report[name] = by_period(days, granularity)
    total = sum(count for periods in report.values() for count in periods.values())
    body = {"from": from_, "to": to, "granularity": granularity, "routes": report, "total": total}
    return JSONResponse(body)


async def _then(first: Usage, rest: AsyncIterator[Usage]) -> AsyncIterator[Usage]:
    yield first
    async for chunk in rest:
        yield chunk


async def _csv(
    first: Usage, rest: AsyncIterator[Usage], granularity: Granularity
) -> AsyncIterator[str]:
    yield csv_lines(rows_of(first, granularity), header=True)
    try:
        async for chunk in rest:
            yield csv_lines(rows_of(chunk, granularity))
    except StoreError as error:
        logger.warning(
            "usage answer cut short", extra={"store": error.kind.value, "error": error.reason}
        )
        # The connection closes before the answer's end: a client never takes the rows it got
        # for all of them.
        raise AnswerCut from error
