"""Usage for billing: an airline's or some routes' transactions per day or month, as the usage
call answers it (JSON, or CSV rows an invoice can be built from) and the invoice run writes
(`kiusys_app.invoice`).

A day is a UTC day (YYYY-MM-DD), the day on which the store applied a record; a month is its
first seven characters (YYYY-MM). Only periods that counted something are listed.
"""

import calendar
import csv
import io
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import date
from enum import StrEnum

from kiusys_app.stores import CounterStore, Usage

# At most this many days in one call: a year, leap day included.
MAX_DAYS = 366
# Routes asked of the store at a time, so that a large answer is streamed as it is read.
ROUTES_PER_READ = 50
CSV_HEADER = ("route", "period", "transactions")
DAY_RULE = "a date is YYYY-MM-DD, a day of the calendar (UTC)"
MONTH_RULE = "a month is YYYY-MM"
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")


class Granularity(StrEnum):
    DAY = "day"
    MONTH = "month"


def parse_day(value: str) -> str:
    """`value` if it is a calendar day written YYYY-MM-DD; ValueError otherwise."""
    if _DAY.fullmatch(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise ValueError(DAY_RULE)


def month_range(value: str) -> tuple[str, str]:
    """The first and last day of a month written YYYY-MM; ValueError otherwise."""
    if _MONTH.fullmatch(value):
        year, month = int(value[:4]), int(value[5:])
        if 1 <= month <= 12 and year >= 1:
            last = calendar.monthrange(year, month)[1]
            return f"{value}-01", f"{value}-{last:02d}"
    raise ValueError(MONTH_RULE)


def range_problem(first: str, last: str) -> str | None:
    """Why `first`..`last` (valid days) is not a range one call may ask; None when it is."""
    days = (date.fromisoformat(last) - date.fromisoformat(first)).days + 1
    if days < 1:
        return f"from ({first}) is after to ({last})"
    if days > MAX_DAYS:
        return f"a call covers at most {MAX_DAYS} days; from {first} to {last} is {days}"
    return None


def by_period(days: dict[str, int], granularity: Granularity) -> dict[str, int]:
    """A route's counts per day, or summed per month."""
    if granularity is Granularity.DAY:
        return days
    months: dict[str, int] = {}
    for day, count in days.items():
        months[day[:7]] = months.get(day[:7], 0) + count
    return months


async def read(
    store: CounterStore, routes: Sequence[str], first: str, last: str
) -> AsyncIterator[Usage]:
    """The routes' usage, ROUTES_PER_READ routes at a time."""
    for start in range(0, len(routes), ROUTES_PER_READ):
        yield await store.usage(routes[start : start + ROUTES_PER_READ], first, last)


def csv_lines(rows: Iterable[tuple[str, str, int]], header: bool = False) -> str:
    """CSV text (RFC 4180 line ends) of `route,period,transactions` rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_HEADER)
    writer.writerows(rows)
    return out.getvalue()


def rows_of(usage: Usage, granularity: Granularity) -> list[tuple[str, str, int]]:
    return [
        (route, period, count)
        for route, days in usage.items()
        for period, count in by_period(days, granularity).items()
    ]
