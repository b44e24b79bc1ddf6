"""The demo's fixed parameters and its vocabulary: what it draws from, and how often.

The ICP values, event types, stages and reasons come from the definitions (`Vocab`); the rest
(other industries and countries, source mix, behaviour rates) is fixed here. A seed's data
depend on every number in this module, so changing one changes every demo set.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from samepage.definitions import Definitions

DEFAULT_END = pd.Timestamp("2026-11-01T00:00:00Z")
CHUNK_LEADS = 50_000  # the default block size; a seed's data depend on it, so it stays fixed
CREATION_SPAN_DAYS = 480  # ~16 months: older leads have closed label windows, newer ones are open
POST_LEAD_DAYS = 365  # engagement is tracked for about a year after the hand-raise
DAY = 86_400.0

# Vocabulary outside the ICP; the ICP values themselves come from the definitions.
OTHER_INDUSTRIES = ["Education", "Government", "Non-profit", "Media", "Consulting", "Telecommunications"]
OTHER_COUNTRIES = ["India", "Brazil", "Australia", "Spain", "Japan", "Singapore", "Mexico", "South Africa"]
OTHER_SENIORITIES = ["Manager", "Individual Contributor"]
OTHER_DEPARTMENTS = ["Finance", "HR", "Engineering", "Product", "Customer Success"]
SOURCES = {  # source: (share of leads, intent shift)
    "Organic Search": (0.22, 0.1),
    "Paid Search": (0.16, 0.0),
    "Webinar": (0.12, 0.2),
    "Content Syndication": (0.14, -0.5),
    "Referral": (0.06, 0.6),
    "Events": (0.10, 0.1),
    "Outbound": (0.14, -0.3),
    "Partner": (0.06, 0.3),
}
# Hand-raise event at creation per source (None: a badge scan or a referral, no tracked event).
HAND_RAISE = {
    "Organic Search": "content_download",
    "Paid Search": "content_download",
    "Webinar": "webinar_registration",
    "Content Syndication": "content_download",
    "Referral": None,
    "Events": None,
    "Outbound": "email_click",
    "Partner": None,
}
# Post-lead engagement: type -> (events per day at intent 0, intent slope, decay days or None).
POST_RATES: dict[str, tuple[float, float, float | None]] = {
    "page_view": (0.07, 0.5, 120.0),
    "pricing_page_view": (0.006, 0.9, 90.0),
    "email_open": (0.05, 0.3, None),
    "content_download": (0.004, 0.4, 150.0),
    "webinar_registration": (0.003, 0.5, 200.0),
    "demo_request": (0.0006, 1.0, 90.0),
    "trial_request": (0.0004, 0.9, 90.0),
}
GENERIC_RATE = (0.005, 0.3, 120.0)  # an event type the definitions add that this model does not know
DISQUALIFY_WEIGHTS = {"no_budget": 3.0, "bad_timing": 3.0, "not_icp": 2.0, "unreachable": 3.0, "duplicate": 0.6}
PROFILE_REASONS = frozenset({"student", "competitor"})  # given only when the profile says so
AFTER_SQL_REASONS = frozenset({"no_budget", "bad_timing"})  # why a qualified lead still drops out
COLD_REASONS = frozenset({"not_icp", "unreachable", "duplicate"})  # clean-up of leads never worked
LOST_WEIGHTS = {"price": 1.0, "competitor_won": 1.2, "no_decision": 1.5}
# Event types the behaviour model derives from others (clicks from opens, attendance from registration).
DERIVED_TYPES = ["email_click", "webinar_attended", "unsubscribe"]


@dataclass(frozen=True)
class Vocab:
    """The definitions' values the generator draws from, plus the out-of-ICP rest."""

    icp_industries: list[str]
    industries: list[str]
    countries: list[str]
    icp_countries: list[str]
    seniorities: list[str]
    icp_seniorities: list[str]
    departments: list[str]
    icp_departments: list[str]
    emp_min: float
    emp_max: float
    student: str
    competitor: str
    event_types: list[str]
    stages: list[str]
    reasons: list[str]

    @classmethod
    def from_definitions(cls, defs: Definitions) -> Vocab:
        icp = defs.icp
        student = _excluded_value(defs, "seniority", "Student")
        competitor = _excluded_value(defs, "industry", "Competitor")
        stage_keys = [s.key for s in defs.stages]
        reasons = sorted({r.key for s in defs.stages for r in s.reasons})
        return cls(
            icp_industries=list(icp.industries),
            industries=union(icp.industries, OTHER_INDUSTRIES),
            countries=union(icp.countries, OTHER_COUNTRIES),
            icp_countries=list(icp.countries),
            seniorities=union(icp.personas.seniorities, OTHER_SENIORITIES),
            icp_seniorities=list(icp.personas.seniorities),
            departments=union(icp.personas.departments, OTHER_DEPARTMENTS),
            icp_departments=list(icp.personas.departments),
            emp_min=icp.employees.min if icp.employees.min is not None else 50.0,
            emp_max=icp.employees.max if icp.employees.max is not None else 5000.0,
            student=student,
            competitor=competitor,
            event_types=[e.key for e in defs.event_types],
            stages=stage_keys,
            reasons=reasons,
        )


def _excluded_value(defs: Definitions, field: str, fallback: str) -> str:
    """The value an MQL criterion excludes for `field` (e.g. seniority Student), else `fallback`."""
    for c in defs.mql.criteria:
        if c.field == field and c.not_in:
            return str(c.not_in[0])
    return fallback


def union(first: list[str], rest: list[str]) -> list[str]:
    """`first`, then the values of `rest` it lacks (order kept: value codes depend on it)."""
    return list(first) + [v for v in rest if v not in first]


def type_names(v: Vocab) -> list[str]:
    """Event type codes: the definitions' types plus the ones the behaviour model knows."""
    return union(v.event_types, list(POST_RATES) + DERIVED_TYPES)
