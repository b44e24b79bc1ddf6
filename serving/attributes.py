"""What a request's `attributes` may hold, from the definitions: one table gives `/openapi.json` its schema
and the routes their check, so a client generated from the schema never meets a surprise.

The contract: only the names the definitions know (lead columns the features read, feature keys,
`created_at`, `last_activity_at`); a number is a finite JSON number, a boolean a JSON boolean, a
category a string, a time an RFC 3339 date-time string; `null` means missing. The feature layer's
`coerce` is more lenient (it also reads files); the HTTP contract is exactly what the schema says.
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from features.derive import override_targets, shown
from samepage.definitions import Definitions
from samepage.errors import InvalidAttribute
from serving.patterns import FIRST_YEAR, LAST_YEAR, date_time_pattern, matcher

# No lead has a value beyond ±10^15 (revenue included), and 10^15 is exact both as decimal and as
# float: with the float maximum as the bound, a schema's decimal reading and the server's binary one
# disagreed on integers a hair inside it.
LIMIT = 10**15
SURROGATES = re.compile("[\ud800-\udfff]")  # JSON lets `\ud800` through; it is no text and no database stores it

JSON_TYPES: dict[str, dict[str, Any]] = {
    "category": {"type": "string"},
    "number": {"type": "number", "minimum": -LIMIT, "maximum": LIMIT},
    "boolean": {"type": "boolean"},
    "timestamp": {"type": "string", "format": "date-time", "pattern": date_time_pattern()},
}


@dataclass(frozen=True)
class AttributeRules:
    """Accepted attribute names → (kind, description)."""

    fields: dict[str, tuple[str, str]]

    @classmethod
    def from_definitions(cls, defs: Definitions) -> AttributeRules:
        fields = {name: (kind, _describe(defs, name, field)) for name, (field, kind, _) in override_targets(defs).items()}
        return cls(fields)

    def json_schema(self) -> dict[str, Any]:
        """The `attributes` object: its keys with their types, nothing else."""
        return {
            "type": "object",
            "title": "Attributes",
            "description": "Lead attributes or feature values that override the feature store's (by feature key); "
            "null means missing",
            "properties": {
                name: {"anyOf": [dict(JSON_TYPES[kind]), {"type": "null"}], "description": description}
                for name, (kind, description) in self.fields.items()
            },
            "additionalProperties": False,
        }

    def check(self, attributes: Mapping[str, Any], where: str = "") -> None:
        """`InvalidAttribute` (422) naming `<where>attributes.<name>` for the first value the schema rejects."""
        for name, value in attributes.items():
            spot = f"{where}attributes.{name}"
            if name not in self.fields:
                raise InvalidAttribute(spot, "unknown attribute (not a lead column or feature)")
            problem = value_problem(value, self.fields[name][0])
            if problem:
                raise InvalidAttribute(spot, problem)


def value_problem(value: Any, kind: str) -> str | None:
    """Why `value` is not a JSON value of this kind (None when it is one, or null)."""
    if value is None:
        return None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {shown(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"expected a finite number, got {shown(value)}"
        if not -LIMIT <= value <= LIMIT:  # exact for integers of any length (a 401-digit one is no float at all)
            return f"expected a number from -1e15 to 1e15, got {shown(value)}"
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else f"expected true or false, got {shown(value)}"
    if not isinstance(value, str):
        return f"expected {'text' if kind == 'category' else 'an RFC 3339 date-time string'}, got {shown(value)}"
    if SURROGATES.search(value):
        return "contains an unpaired surrogate (not text)"
    if kind == "timestamp":
        if not matcher(date_time_pattern()).fullmatch(value):
            return (
                f"expected an RFC 3339 date-time between {FIRST_YEAR} and {LAST_YEAR} such as 2026-11-20T15:30:00Z, "
                f"got {shown(value)}"
            )
        try:
            datetime.fromisoformat(value.upper())
        except ValueError as exc:
            return f"not a valid date-time ({exc})"
    return None


_CACHE: dict[int, tuple[weakref.ref[Definitions], AttributeRules]] = {}


def attribute_rules(defs: Definitions) -> AttributeRules:
    """The rules of these definitions, built once per loaded definitions (a score must not rebuild them)."""
    cached = _CACHE.get(id(defs))
    if cached is not None and cached[0]() is defs:
        return cached[1]
    rules = AttributeRules.from_definitions(defs)
    _CACHE[id(defs)] = (weakref.ref(defs), rules)
    return rules


def _describe(defs: Definitions, name: str, field: str) -> str:
    try:
        return defs.feature(name).label
    except KeyError:
        return f"Lead attribute `{field}`"
