"""Canonical import: good CSV and Parquet files, every class of bad file, atomicity, upserts."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from samepage.data.importer import import_files
from samepage.data.problems import CanonicalDataError, Problem
from samepage.definitions import Definitions
from samepage.settings import Settings
from samepage.tables import empty_events, empty_stages, read_tables
from tests.conftest import make_event, make_lead, make_stage


def write(path: Path, rows: list[dict[str, Any]] | pd.DataFrame) -> Path:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def three_leads() -> list[dict[str, Any]]:
    return [
        make_lead(lead_id="L-1"),
        make_lead(lead_id="L-2", employees=40, country="Germany"),
        make_lead(lead_id="L-3", created_at=pd.Timestamp("2026-02-01T08:30:00Z"), industry="Retail"),
    ]


def good_files(folder: Path, suffix: str) -> dict[str, Path]:
    return {
        "leads": write(folder / f"leads{suffix}", three_leads()),
        "events": write(
            folder / f"events{suffix}",
            [make_event(), make_event(lead_id="L-2", type="demo_request", value=2.0)],
        ),
        "stages": write(
            folder / f"stages{suffix}",
            [make_stage(), make_stage(lead_id="L-3", stage="disqualified", reason="student")],
        ),
    }


def data_hash(data_dir: Path) -> str:
    digest = hashlib.sha256()
    if data_dir.exists():
        for path in sorted(data_dir.rglob("*")):
            digest.update(str(path.relative_to(data_dir)).encode())
            if path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def import_error(settings: Settings, defs: Definitions, **files: Path) -> CanonicalDataError:
    with pytest.raises(CanonicalDataError) as caught:
        import_files(settings, defs, **files)
    return caught.value


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_good_files_import_with_canonical_dtypes(
    suffix: str, tmp_path: Path, settings: Settings, definitions: Definitions
) -> None:
    files = good_files(tmp_path, suffix)
    summary = import_files(settings, definitions, **files)

    assert (summary.leads_added, summary.leads_updated) == (3, 0)
    assert (summary.events_added, summary.stages_added) == (2, 2)
    tables = read_tables(settings.data_dir)
    leads = tables.leads.set_index("lead_id")
    assert str(leads["created_at"].dtype) == "datetime64[ns, UTC]"
    assert leads.loc["L-3", "created_at"] == pd.Timestamp("2026-02-01T08:30:00Z")
    assert leads["employees"].dtype == "float64" and leads.loc["L-2", "employees"] == 40.0
    assert isinstance(leads["country"].dtype, pd.StringDtype) and leads.loc["L-2", "country"] == "Germany"
    assert tables.events.dtypes.to_dict() == empty_events().dtypes.to_dict()
    assert tables.stages.dtypes.to_dict() == empty_stages().dtypes.to_dict()
    assert tables.events.loc[tables.events["type"] == "demo_request", "value"].tolist() == [2.0]
    assert tables.stages.loc[tables.stages["stage"] == "disqualified", "reason"].tolist() == ["student"]


def test_csv_timestamps_with_offsets_become_utc_and_empty_cells_missing(
    tmp_path: Path, settings: Settings, definitions: Definitions
) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text(
        "lead_id,created_at,country,employees\nA,2026-01-05T12:00:00+02:00,,250\nB,2026-01-05,Canada,\n",
        encoding="utf-8",
    )
    import_files(settings, definitions, leads=leads)
    got = read_tables(settings.data_dir).leads.set_index("lead_id")
    assert got.loc["A", "created_at"] == pd.Timestamp("2026-01-05T10:00:00Z")
    assert got.loc["B", "created_at"] == pd.Timestamp("2026-01-05T00:00:00Z")
    assert pd.isna(got.loc["A", "country"]) and pd.isna(got.loc["B", "employees"])


# Each case: which files to write (with one problem planted), and the problem we expect.
BAD_CASES: dict[str, tuple[dict[str, list[dict[str, Any]]], str, int | None, str, str]] = {
    "missing column": (
        {"leads": [{k: v for k, v in make_lead().items() if k != "created_at"}]},
        "leads",
        None,
        "created_at",
        "required column is missing",
    ),
    "bad timestamp": (
        {"leads": [make_lead(lead_id="A"), make_lead(lead_id="B", created_at="05/01/2026")]},
        "leads",
        3,
        "created_at",
        "not an ISO 8601 timestamp",
    ),
    "duplicate id": (
        {"leads": [make_lead(lead_id="A"), make_lead(lead_id="B"), make_lead(lead_id="A")]},
        "leads",
        4,
        "lead_id",
        "duplicate lead_id 'A' (rows 2 and 4)",
    ),
    "empty id": (
        {"leads": [make_lead(lead_id="A"), make_lead(lead_id="")]},
        "leads",
        3,
        "lead_id",
        "lead_id is empty",
    ),
    "unknown stage": (
        {"leads": [make_lead()], "stages": [make_stage(), make_stage(stage="won")]},
        "stages",
        3,
        "stage",
        "stage 'won' is not one of the definitions' stages",
    ),
    "missing reason": (
        {"leads": [make_lead()], "stages": [make_stage(stage="disqualified")]},
        "stages",
        2,
        "reason",
        "stage 'disqualified' needs a reason",
    ),
    "wrong reason": (
        {"leads": [make_lead()], "stages": [make_stage(stage="disqualified", reason="bored")]},
        "stages",
        2,
        "reason",
        "reason 'bored' is not a reason for 'disqualified'",
    ),
    "unknown event type": (
        {"leads": [make_lead()], "events": [make_event(type="tweet")]},
        "events",
        2,
        "type",
        "event type 'tweet' is not one of the definitions' event_types",
    ),
    "event for unknown lead": (
        {"leads": [make_lead()], "events": [make_event(), make_event(lead_id="L-404")]},
        "events",
        3,
        "lead_id",
        "lead_id 'L-404' is not a known lead",
    ),
    "stage for unknown lead": (
        {"leads": [make_lead()], "stages": [make_stage(lead_id="L-404")]},
        "stages",
        2,
        "lead_id",
        "lead_id 'L-404' is not a known lead",
    ),
    "non-numeric value": (
        {"leads": [make_lead()], "events": [make_event(value="lots")]},
        "events",
        2,
        "value",
        "value 'lots' is not a number",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_file_names_file_row_and_column(case: str, tmp_path: Path, settings: Settings, definitions: Definitions) -> None:
    tables, bad_file, row, column, message = BAD_CASES[case]
    files = {name: write(tmp_path / f"{name}.csv", rows) for name, rows in tables.items()}
    error = import_error(settings, definitions, **files)

    expected = Problem(str(files[bad_file]), "", row, column)
    hits = [p for p in error.problems if (p.file, p.row, p.column) == (expected.file, row, column)]
    assert hits, f"no problem at {expected}: {error.problems}"
    assert message in hits[0].message
    where = f"{files[bad_file]}" + (f", row {row}" if row else "") + f", column '{column}'"
    assert where in str(error) and message in str(error)
    assert not settings.data_dir.exists(), "a failed import must not create the workspace data"


def test_all_problems_of_a_file_are_collected_and_the_message_is_capped(
    tmp_path: Path, settings: Settings, definitions: Definitions
) -> None:
    leads = write(tmp_path / "leads.csv", [make_lead(lead_id=f"L-{i}", created_at="soon") for i in range(30)])
    error = import_error(settings, definitions, leads=leads)
    assert [p.row for p in error.problems] == list(range(2, 32))
    assert "30 problems" in str(error) and "... and 10 more" in str(error)
    assert str(error).count("is not an ISO 8601 timestamp") == 20


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("leads.csv", b"lead_id,created_at\nA,2026-01-05\nB\xff\xfe,2026-01-05\n", "not UTF-8"),
        ("leads.csv", b"", "the file is empty"),
        ("leads.csv", b"lead_id,created_at\n", "header but no leads"),
        ("leads.parquet", b"this is not parquet", "cannot read the file"),
        ("leads.xlsx", b"PK", "unknown file type '.xlsx'"),
    ],
)
def test_unreadable_files_are_named(
    name: str, content: bytes, message: str, tmp_path: Path, settings: Settings, definitions: Definitions
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    error = import_error(settings, definitions, leads=path)
    assert error.problems[0].file == str(path) and message in error.problems[0].message


def test_missing_file_is_named(tmp_path: Path, settings: Settings, definitions: Definitions) -> None:
    leads = write(tmp_path / "leads.csv", [make_lead()])
    error = import_error(settings, definitions, leads=leads, events=tmp_path / "nope.csv")
    assert [(p.file, p.message) for p in error.problems] == [(str(tmp_path / "nope.csv"), "file not found")]


def test_failed_import_leaves_the_workspace_byte_for_byte(tmp_path: Path, settings: Settings, definitions: Definitions) -> None:
    import_files(settings, definitions, **good_files(tmp_path, ".csv"))
    before = data_hash(settings.data_dir)

    # Good leads (which would upsert) but one bad stage row: nothing at all may change.
    leads = write(tmp_path / "more.csv", [make_lead(lead_id="L-1", country="France"), make_lead(lead_id="L-9")])
    stages = write(
        tmp_path / "bad_stages.csv", [make_stage(lead_id="L-9"), make_stage(lead_id="L-9", stage="mql", occurred_at="later")]
    )
    error = import_error(settings, definitions, leads=leads, stages=stages)

    assert [(p.row, p.column) for p in error.problems] == [(3, "occurred_at")]
    assert data_hash(settings.data_dir) == before
    assert not list(settings.home_dir.glob(".data-*")), "no staging folder left behind"


def test_reimport_upserts_leads_and_skips_duplicate_rows(tmp_path: Path, settings: Settings, definitions: Definitions) -> None:
    files = good_files(tmp_path, ".csv")
    import_files(settings, definitions, **files)

    # L-2 changes country and gains a new column; L-4 is new; the file lacks `industry`.
    update = [
        {"lead_id": "L-2", "created_at": "2026-01-05T10:00:00Z", "country": "Canada", "plan": "pro"},
        {"lead_id": "L-4", "created_at": "2026-03-01T10:00:00Z", "country": "France", "plan": "free"},
    ]
    events = write(tmp_path / "events2.csv", [make_event(), make_event(lead_id="L-4", type="email_open")])
    update_file = write(tmp_path / "update.csv", update)
    summary = import_files(settings, definitions, leads=update_file, events=events, stages=files["stages"])

    assert (summary.leads_added, summary.leads_updated) == (1, 1)
    assert (summary.events_added, summary.events_duplicate) == (1, 1)
    assert (summary.stages_added, summary.stages_duplicate) == (0, 2)
    tables = read_tables(settings.data_dir)
    leads = tables.leads.set_index("lead_id")
    assert sorted(leads.index) == ["L-1", "L-2", "L-3", "L-4"]
    assert leads.loc["L-2", "country"] == "Canada" and leads.loc["L-2", "plan"] == "pro"
    assert leads.loc["L-2", "industry"] == "Software", "columns the file lacks keep their values"
    assert pd.isna(leads.loc["L-1", "plan"]) and pd.isna(leads.loc["L-4", "industry"])
    assert len(tables.events) == 3 and len(tables.stages) == 2


def test_events_may_refer_to_leads_already_in_the_workspace(tmp_path: Path, settings: Settings, definitions: Definitions) -> None:
    import_files(settings, definitions, leads=write(tmp_path / "a.csv", [make_lead(lead_id="OLD")]))
    events = write(tmp_path / "e.csv", [make_event(lead_id="OLD", type="email_click")])
    summary = import_files(settings, definitions, leads=write(tmp_path / "b.csv", [make_lead(lead_id="NEW")]), events=events)
    assert summary.events_added == 1
    assert read_tables(settings.data_dir).events["lead_id"].tolist() == ["OLD"]


def test_a_workspace_number_column_refuses_text(tmp_path: Path, settings: Settings, definitions: Definitions) -> None:
    import_files(settings, definitions, leads=write(tmp_path / "a.csv", [make_lead(lead_id="A", employees=10)]))
    leads = write(tmp_path / "b.csv", [make_lead(lead_id="B", employees=20), make_lead(lead_id="C", employees="many")])
    error = import_error(settings, definitions, leads=leads)
    assert [(p.row, p.column) for p in error.problems] == [(3, "employees")]
    assert "'many' is not a number" in error.problems[0].message


def test_unreadable_leads_do_not_flood_events_with_unknown_leads(
    tmp_path: Path, settings: Settings, definitions: Definitions
) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_bytes(b"")
    events = write(tmp_path / "events.csv", [make_event(lead_id="L-1"), make_event(lead_id="L-2", type="tweet")])
    error = import_error(settings, definitions, leads=leads, events=events)
    assert [(p.file, p.row, p.column) for p in error.problems] == [(str(leads), None, None), (str(events), 3, "type")]


def test_problems_are_listed_file_by_file_top_to_bottom(tmp_path: Path, settings: Settings, definitions: Definitions) -> None:
    rows = [make_lead(lead_id="A"), make_lead(lead_id="A", created_at="never"), make_lead(lead_id="", created_at="nope")]
    error = import_error(settings, definitions, leads=write(tmp_path / "leads.csv", rows))
    assert [p.row for p in error.problems] == sorted(p.row for p in error.problems if p.row is not None)
    assert {(p.row, p.column) for p in error.problems} == {(3, "lead_id"), (3, "created_at"), (4, "lead_id"), (4, "created_at")}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_demo_data_round_trips_through_files(suffix: str, tmp_path: Path, settings: Settings, definitions: Definitions) -> None:
    """What `samepage demo` writes, exported to files and imported, comes back value for value."""
    from samepage.demo import generate_demo

    demo = generate_demo(definitions, n_leads=150, seed=3)
    files = {name: write(tmp_path / f"{name}{suffix}", getattr(demo, name)) for name in ("leads", "events", "stages")}
    summary = import_files(settings, definitions, **files)

    assert (summary.leads_added, summary.events_added, summary.stages_added) == (150, len(demo.events), len(demo.stages))
    got = read_tables(settings.data_dir)
    for name in ("leads", "events", "stages"):
        want = getattr(demo, name).reset_index(drop=True)
        pd.testing.assert_frame_equal(getattr(got, name)[list(want.columns)], want, check_dtype=True)


def test_repeated_header_column_is_named(tmp_path: Path, settings: Settings, definitions: Definitions) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text("lead_id,created_at,country,country\nA,2026-01-05,France,Spain\n", encoding="utf-8")
    error = import_error(settings, definitions, leads=leads)
    found = [(p.row, p.column, p.message) for p in error.problems]
    assert found == [(1, "country", "column appears more than once in the header")]


def test_numbers_joining_a_text_column_keep_their_digits(tmp_path: Path, settings: Settings, definitions: Definitions) -> None:
    import_files(settings, definitions, leads=write(tmp_path / "a.csv", [make_lead(lead_id="A", country="France")]))
    frame = pd.DataFrame([make_lead(lead_id="B")]).assign(country=40_000_000.0)
    import_files(settings, definitions, leads=write(tmp_path / "b.parquet", frame))
    leads = read_tables(settings.data_dir).leads.set_index("lead_id")
    assert leads.loc["B", "country"] == "40000000" and isinstance(leads["country"].dtype, pd.StringDtype)


def test_parquet_timestamps_beyond_pandas_range_are_reported(
    tmp_path: Path, settings: Settings, definitions: Definitions
) -> None:
    frame = pd.DataFrame([make_lead(lead_id="A"), make_lead(lead_id="B")])
    frame["created_at"] = pd.Series(["2026-01-05T10:00:00", "3000-01-01T00:00:00"], dtype="datetime64[us]")
    error = import_error(settings, definitions, leads=write(tmp_path / "leads.parquet", frame))
    assert [(p.row, p.column) for p in error.problems] == [(2, "created_at")]


def test_a_header_repeated_up_to_spaces_is_named_not_a_traceback(
    tmp_path: Path, settings: Settings, definitions: Definitions
) -> None:
    from typer.testing import CliRunner

    from samepage.cli import app

    leads = tmp_path / "leads.csv"
    leads.write_text("lead_id,created_at,employees,employees \nA,2026-01-05,5,6\n", encoding="utf-8")
    error = import_error(settings, definitions, leads=leads)
    assert [(p.row, p.column, p.message) for p in error.problems] == [
        (1, "employees", "column appears more than once in the header")
    ]
    result = CliRunner().invoke(app, ["import", "--leads", str(leads)], env={"SAMEPAGE_HOME": str(settings.home_dir)})
    assert result.exit_code == 2 and "column appears more than once" in result.output and "Traceback" not in result.output
    assert not settings.data_dir.exists()
