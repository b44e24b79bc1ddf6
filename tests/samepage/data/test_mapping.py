"""Mapping files: validation, turning an export into canonical tables, and the X Education import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from samepage.data.importer import import_files
from samepage.data.mapping import Mapping, MappingError, apply_mapping, load_mapping
from samepage.data.problems import CanonicalDataError
from samepage.definitions import Definitions, load_definitions
from samepage.settings import Settings
from samepage.tables import CanonicalTables, read_tables
from tests.conftest import REPO, XEDUCATION_CSV

XE_MAPPING = REPO / "configs" / "mappings" / "xeducation.yaml"
XE_DEFINITIONS = REPO / "configs" / "definitions-xeducation.yaml"


def mapping_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "tiny-crm",
        "lead_id": "Id",
        "created_at": {"column": "Created", "why": "the CRM records when the lead was created"},
        "missing_values": ["Select"],
        "renames": {"Source": "source", "Visits": "visits", "Opt Out": "opt_out"},
        "types": {"Visits": "number", "Opt Out": {"type": "boolean", "values": {"Yes": True, "No": False}}},
        "labels": {"Source": {"google": "Google", "n/a": None}},
        "drop": {"Rep Notes": "written by sales after the call"},
        "outcome": {
            "column": "Won",
            "positive": [1],
            "negative": [0],
            "stage": "customer",
            "days_after_created": 10,
            "why": "Won = 1 is a signed deal",
        },
    }
    data.update(overrides)
    return data


def export() -> pd.DataFrame:
    """As `read_file` gives a CSV: text cells, empty cells missing."""
    return pd.DataFrame(
        {
            "Id": ["a", "b", "c"],
            "Created": ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T12:00:00+01:00"],
            "Source": ["google", "Select", "n/a"],
            "Visits": ["3", None, "7.5"],
            "Opt Out": ["Yes", "No", None],
            "Rep Notes": ["hot", "cold", "call back"],
            "Won": ["1", "0", "1"],
        }
    )


def write_mapping(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_apply_mapping_renames_types_cleans_and_makes_stage_rows() -> None:
    tables = apply_mapping(export(), Mapping.model_validate(mapping_data()), "crm.csv")

    leads = tables.leads.set_index("lead_id")
    assert list(leads.columns) == ["created_at", "source", "visits", "opt_out"]
    assert "Rep Notes" not in tables.leads.columns
    assert leads["source"].tolist()[0] == "Google" and leads["source"].isna().tolist() == [False, True, True]
    assert leads["visits"].dtype == "float64" and leads.loc["c", "visits"] == 7.5
    assert leads["opt_out"].tolist()[:2] == [True, False] and pd.isna(leads.loc["c", "opt_out"])
    assert leads.loc["c", "created_at"] == pd.Timestamp("2026-01-03T11:00:00Z")

    stages = tables.stages
    assert sorted(stages.loc[stages["stage"] == "lead", "lead_id"]) == ["a", "b", "c"]
    won = stages[stages["stage"] == "customer"].set_index("lead_id")
    assert sorted(won.index) == ["a", "c"]
    assert won.loc["c", "occurred_at"] == leads.loc["c", "created_at"] + pd.Timedelta(days=10)


def test_fixed_as_of_gives_every_lead_the_same_created_at() -> None:
    data = mapping_data(created_at={"as_of": "2020-01-01T00:00:00Z", "why": "no timestamp in the export"})
    data["drop"]["Created"] = "a free-text date we cannot trust"
    tables = apply_mapping(export(), Mapping.model_validate(data), "crm.csv")
    assert set(tables.leads["created_at"]) == {pd.Timestamp("2020-01-01T00:00:00Z")}
    assert str(tables.leads["created_at"].dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"colour": "blue"}, "colour"),
        ({"drop": {"Rep Notes": ""}}, "drop.Rep Notes"),
        (
            {"created_at": {"column": "Created", "as_of": "2020-01-01T00:00:00Z", "why": "both given"}},
            "exactly one of column or as_of",
        ),
        ({"created_at": {"column": "Created"}}, "created_at.why"),
        ({"types": {"Visits": "integer"}}, "types.Visits"),
        ({"types": {"Rep Notes": "number"}}, "types.Rep Notes: not a kept column"),
        ({"renames": {"Source": "Lead Source"}}, "renames.Source"),
        ({"renames": {"Source": "source", "Visits": "source"}}, "two columns become 'source'"),
        ({"drop": {"Source": "not wanted"}}, "renames.Source: also in drop"),
    ],
)
def test_bad_mapping_file_names_the_key(change: dict[str, Any], where: str, tmp_path: Path) -> None:
    path = write_mapping(tmp_path / "m.yaml", mapping_data(**change))
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert str(path) in str(caught.value) and where in str(caught.value)


def test_export_problems_name_row_and_column() -> None:
    frame = export()
    frame["Visits"] = ["3", "many", "7"]
    frame["Won"] = ["1", "maybe", "0"]
    frame["Owner"] = ["x", "y", "z"]
    with pytest.raises(CanonicalDataError) as caught:
        apply_mapping(frame, Mapping.model_validate(mapping_data()), "crm.csv")
    found = {(p.row, p.column) for p in caught.value.problems}
    assert found == {(1, "Owner"), (3, "Visits"), (3, "Won")}
    assert "crm.csv, row 3, column 'Visits': 'many' is not a number" in str(caught.value)


def test_a_mapped_column_absent_from_the_export_is_named() -> None:
    with pytest.raises(CanonicalDataError) as caught:
        apply_mapping(export().drop(columns=["Rep Notes"]), Mapping.model_validate(mapping_data()), "crm.csv")
    assert [(p.column, p.row) for p in caught.value.problems] == [("Rep Notes", None)]


def test_import_through_a_mapping_and_unknown_outcome_stage(tmp_path: Path, settings: Settings, definitions: Definitions) -> None:
    source = tmp_path / "crm.csv"
    export().to_csv(source, index=False)
    good = write_mapping(tmp_path / "good.yaml", mapping_data())
    summary = import_files(settings, definitions, leads=source, mapping=good)
    assert (summary.leads_added, summary.stages_added) == (3, 5)
    assert "tiny-crm" in str(summary)

    bad = mapping_data()
    bad["outcome"]["stage"] = "won"
    error_mapping = write_mapping(tmp_path / "bad.yaml", bad)
    with pytest.raises(CanonicalDataError) as caught:
        import_files(settings, definitions, leads=source, mapping=error_mapping)
    assert "outcome.stage: unknown stage 'won' is not one of the definitions' stages" in str(caught.value)


# -- the real X Education export --------------------------------------------------------------

needs_xeducation = pytest.mark.skipif(
    not XEDUCATION_CSV.exists(), reason=f"the shared X Education export is not at {XEDUCATION_CSV}"
)


@pytest.fixture(scope="module")
def xeducation(tmp_path_factory: pytest.TempPathFactory) -> tuple[CanonicalTables, Definitions]:
    if not XEDUCATION_CSV.exists():
        pytest.skip(f"the shared X Education export is not at {XEDUCATION_CSV}")
    defs = load_definitions(XE_DEFINITIONS)
    settings = Settings(home=tmp_path_factory.mktemp("xe") / "workspace", definitions=XE_DEFINITIONS, _env_file=None)
    import_files(settings, defs, leads=XEDUCATION_CSV, mapping=XE_MAPPING)
    return read_tables(settings.data_dir), defs


@needs_xeducation
def test_xeducation_leads_and_outcome(xeducation: tuple[CanonicalTables, Definitions]) -> None:
    tables, _ = xeducation
    raw = pd.read_csv(XEDUCATION_CSV, usecols=["Prospect ID", "Converted"])
    assert len(tables.leads) == len(raw) == 9240
    assert set(tables.leads["lead_id"]) == set(raw["Prospect ID"])
    customers = set(tables.stages.loc[tables.stages["stage"] == "customer", "lead_id"])
    assert customers == set(raw.loc[raw["Converted"] == 1, "Prospect ID"])
    assert len(customers) / len(tables.leads) == pytest.approx(0.385, abs=0.005)
    assert (tables.stages["stage"] == "lead").sum() == 9240


@needs_xeducation
def test_xeducation_post_contact_columns_are_left_out(xeducation: tuple[CanonicalTables, Definitions]) -> None:
    tables, _ = xeducation
    mapping = load_mapping(XE_MAPPING)
    post_contact = ["Tags", "Lead Quality", "Lead Profile", "Last Notable Activity",
                    "Asymmetrique Activity Index", "Asymmetrique Profile Score", "I agree to pay the amount through cheque"]
    assert set(post_contact) <= set(mapping.drop)
    assert set(tables.leads.columns) == {"lead_id", "created_at", *mapping.renames.values()}
    lowered = {c.lower() for c in tables.leads.columns}
    assert not lowered & {"tags", "lead_quality", "lead_profile", "converted"}


@needs_xeducation
def test_xeducation_last_activity_is_left_out_as_post_contact(xeducation: tuple[CanonicalTables, Definitions]) -> None:
    """Last Activity records counsellor touches (SMS sent, phone call...): left out, with the reason."""
    tables, defs = xeducation
    mapping = load_mapping(XE_MAPPING)
    assert "counsellor" in mapping.drop["Last Activity"]
    assert "last_activity" not in tables.leads.columns and "last_activity" not in defs.feature_keys


@needs_xeducation
def test_every_xeducation_feature_has_its_column(xeducation: tuple[CanonicalTables, Definitions]) -> None:
    tables, defs = xeducation
    leads = tables.leads
    dtype_of = {"number": "float64", "boolean": "boolean"}
    for feature in defs.features:
        if feature.kind == "attribute":
            assert feature.column in leads.columns, feature.key
            if feature.type in dtype_of:
                assert str(leads[feature.column].dtype) == dtype_of[feature.type], feature.key
            else:
                assert isinstance(leads[feature.column].dtype, pd.StringDtype), feature.key
            assert leads[feature.column].notna().any(), f"{feature.key} is never filled"
        elif feature.kind == "icp_match":
            assert feature.match in leads.columns, feature.key
    for criterion in defs.mql.criteria:
        assert criterion.field in leads.columns or criterion.field in defs.feature_keys, criterion.key
    assert load_mapping(XE_MAPPING).check(defs) == []
    # The "Select" placeholder never survives as a value.
    for column in leads.select_dtypes("string").columns:
        assert not leads[column].isin(["Select", "Select Specialization", "Select City"]).any(), column


def test_a_repeated_key_in_a_mapping_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    repeated = "drop:\n  Won: first reason\n  Won: second reason\n"
    text = yaml.safe_dump(mapping_data(), sort_keys=False).replace("drop:\n", repeated)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert "duplicate key 'Won'" in str(caught.value)


def test_unquoted_yes_no_keys_get_a_clear_message(tmp_path: Path) -> None:
    text = yaml.safe_dump(mapping_data(), sort_keys=False).replace("'Yes': true", "Yes: true")
    assert "Yes: true" in text
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert "types.Opt Out" in str(caught.value) and "quote it" in str(caught.value)


def test_a_bad_mapping_stops_the_import_naming_the_mapping(tmp_path: Path, settings: Settings, definitions: Definitions) -> None:
    source = tmp_path / "crm.csv"
    export().to_csv(source, index=False)
    bad = write_mapping(tmp_path / "bad.yaml", mapping_data(colour="blue"))
    with pytest.raises(CanonicalDataError) as caught:
        import_files(settings, definitions, leads=source, mapping=bad)
    (problem,) = caught.value.problems
    assert problem.file == str(bad) and "colour" in problem.message
    assert str(caught.value).count(str(bad)) == 1
    assert not settings.data_dir.exists()


def test_mapping_builds_on_parsing_not_on_the_importer() -> None:
    """The importer uses mappings; a mapping never needs the importer (no import cycle)."""
    import subprocess
    import sys

    code = "import sys, samepage.data.mapping; print('samepage.data.importer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
