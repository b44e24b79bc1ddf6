"""The shared read-time derivation: recency/age against the as-of time, ICP fit, overrides."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.derive import coerce, derive
from samepage.definitions import Definitions
from samepage.errors import InvalidAttribute

AS_OF = pd.Timestamp("2026-02-01T00:00:00Z")


def raw_row(**fields: object) -> dict[str, list[object]]:
    base: dict[str, object] = {
        "created_at": pd.Timestamp("2026-01-01T00:00:00Z"),
        "last_activity_at": pd.Timestamp("2026-01-31T12:00:00Z"),
        "industry": "Software",
        "employees": 250.0,
        "country": "Canada",
        "seniority": "Manager",
        "department": "Finance",
        "job_title": "Finance Manager",
        "page_views_30d": 4,
    }
    base.update(fields)
    return {k: [v] for k, v in base.items()}


def test_recency_and_age_are_days_before_the_as_of_time(definitions: Definitions) -> None:
    out = derive(raw_row(), [AS_OF], definitions)
    assert out["days_since_created"][0] == pytest.approx(31.0)
    assert out["days_since_last_activity"][0] == pytest.approx(0.5)
    later = derive(raw_row(), [AS_OF + pd.Timedelta(days=2)], definitions)
    assert later["days_since_created"][0] == pytest.approx(33.0)


def test_icp_fit_from_attributes(definitions: Definitions) -> None:
    out = derive(raw_row(), [AS_OF], definitions)
    assert out["icp_industry"][0] == 1.0 and out["icp_employees"][0] == 1.0 and out["icp_country"][0] == 1.0
    assert out["icp_persona"][0] == 0.0  # a finance manager is neither the seniority nor the department
    vp = derive(raw_row(seniority="VP"), [AS_OF], definitions)
    assert vp["icp_persona"][0] == 1.0
    small = derive(raw_row(employees=10.0, industry="Mining"), [AS_OF], definitions)
    assert small["icp_employees"][0] == 0.0 and small["icp_industry"][0] == 0.0


def test_missing_inputs_give_missing_fit(definitions: Definitions) -> None:
    out = derive(raw_row(industry=None, employees=None, seniority=None, department=None, job_title=None), [AS_OF], definitions)
    assert np.isnan(out["icp_industry"][0]) and np.isnan(out["icp_employees"][0]) and np.isnan(out["icp_persona"][0])
    assert out["industry"][0] is None


def test_known_lead_without_engagement_counts_zero_unknown_stays_missing(definitions: Definitions) -> None:
    known = derive(raw_row(page_views_30d=None), [AS_OF], definitions)
    assert known["page_views_30d"][0] == 0.0 and known["email_opens_30d"][0] == 0.0
    unknown = derive({}, [AS_OF], definitions)
    assert np.isnan(unknown["page_views_30d"][0]) and np.isnan(unknown["days_since_created"][0])


def test_overrides_win_before_deriving(definitions: Definitions) -> None:
    out = derive(raw_row(), [AS_OF], definitions, overrides=[{"industry": "Mining", "employees": "20"}])
    assert out["industry"][0] == "Mining" and out["icp_industry"][0] == 0.0
    assert out["employees"][0] == 20.0 and out["icp_employees"][0] == 0.0
    titled = derive(raw_row(), [AS_OF], definitions, overrides=[{"department": "Sales"}])
    assert titled["icp_persona"][0] == 1.0


def test_created_at_override_moves_the_age(definitions: Definitions) -> None:
    out = derive(raw_row(), [AS_OF], definitions, overrides=[{"created_at": "2026-01-25T00:00:00"}])
    assert out["days_since_created"][0] == pytest.approx(7.0)


def test_overrides_of_derived_keys_replace_the_result(definitions: Definitions) -> None:
    out = derive(raw_row(), [AS_OF], definitions, overrides=[{"icp_country": 0, "days_since_created": 3}])
    assert out["icp_country"][0] == 0.0 and out["days_since_created"][0] == 3.0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("employees", "many", "attributes.employees: expected a number"),
        ("employees", True, "attributes.employees: expected a number"),
        ("industry", {"a": 1}, "attributes.industry: expected text"),
        ("created_at", "yesterday-ish", "attributes.created_at: expected an ISO 8601 time"),
        ("created_at", 1700000000, "attributes.created_at: expected an ISO 8601 time"),
        ("shoe_size", 44, "attributes.shoe_size: unknown attribute"),
    ],
)
def test_bad_override_names_the_field(definitions: Definitions, field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        derive(raw_row(), [AS_OF], definitions, overrides=[{field: value}])


def test_coerce_booleans() -> None:
    assert coerce("flag", "yes", "boolean") is True
    assert coerce("flag", 0, "boolean") is False
    with pytest.raises(ValueError, match="attributes.flag"):
        coerce("flag", "maybe", "boolean")


@pytest.mark.parametrize(
    ("value", "kind", "words"),
    [
        (10**400, "number", "too large for a float"),
        (-(10**400), "number", "too large for a float"),
        ("1e400", "number", "finite"),
        (float("inf"), "number", "finite"),
    ],
)
def test_numbers_no_float_holds_are_invalid_attributes(value: object, kind: str, words: str) -> None:
    with pytest.raises(InvalidAttribute, match=f"attributes.employees: .*{words}"):
        coerce("employees", value, kind)


def test_an_overflowing_override_names_the_field_through_derive(definitions: Definitions) -> None:
    with pytest.raises(InvalidAttribute, match="attributes.employees: .*too large for a float"):
        derive(raw_row(), [AS_OF], definitions, overrides=[{"employees": 10**400}])


def test_messages_do_not_echo_long_values() -> None:
    with pytest.raises(InvalidAttribute) as caught:
        coerce("employees", "x" * 10_000, "number")
    assert len(str(caught.value)) < 200
