"""The RFC 3339 dates and times the API takes, as patterns: `/openapi.json` states them and the server holds to them.

Patterns, not only `format`, because the server holds times to a range of years (pandas timestamps
end in 1677 and 2262; feedback starts in 1970) and no JSON Schema format says that. ASCII digits
only, real calendar dates (February 29 in leap years), hours to 23 and seconds to 59.
"""

from __future__ import annotations

import calendar
import re
from functools import cache
from itertools import groupby

# What pandas' nanosecond timestamps hold in whole years (report days and attribute times).
FIRST_YEAR, LAST_YEAR = 1678, 2261
FEEDBACK_FIRST_YEAR = 1970  # older stage changes are typos
_MONTH_DAY = (
    "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"  # every month has 28 days
    "|(?:0[13-9]|1[0-2])-(?:29|30)"  # all but February have 30
    "|(?:0[13578]|1[02])-31)"
)
_TIME = "[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?"
_OFFSET = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"


def years_regex(years: range) -> str:
    """An alternation matching exactly these four-digit years, a decade at a time (`197[0-9]|198[0-4]`)."""
    parts = []
    for decade, group in groupby(years, key=lambda y: y // 10):
        digits = "".join(str(y % 10) for y in group)
        parts.append(f"{decade}[0-9]" if digits == "0123456789" else f"{decade}[{digits}]")
    return "|".join(parts)


def date_regex(years: range | None) -> str:
    """A calendar date (YYYY-MM-DD) in these years (None: any), February 29 only in leap years; unanchored."""
    if years is None:  # the parser after this pattern refuses February 29 of a common year
        return f"[0-9]{{4}}-(?:{_MONTH_DAY}|02-29)"
    leap = "|".join(str(y) for y in years if calendar.isleap(y))
    return f"(?:(?:{years_regex(years)})-{_MONTH_DAY}|(?:{leap})-02-29)"


def day_pattern(years: range = range(FIRST_YEAR, LAST_YEAR + 1)) -> str:
    """An RFC 3339 `full-date` in these years (the report's days)."""
    return f"^{date_regex(years)}$"


def date_time_pattern(years: range | None = range(FIRST_YEAR, LAST_YEAR + 1), offset_required: bool = True) -> str:
    """An RFC 3339 `date-time` in these years; without `offset_required` the offset may be left out (UTC)."""
    return f"^{date_regex(years)}{_TIME}{_OFFSET}{'' if offset_required else '?'}$"


@cache
def matcher(pattern: str) -> re.Pattern[str]:
    """The compiled pattern (each is compiled once, on first use)."""
    return re.compile(pattern)
