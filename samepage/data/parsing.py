"""Reading input files and turning their cells into typed columns, shared by the importer and mappings.

Contract: readers and parsers never raise on bad content. `read_file` reports an unreadable
file as a `Problem` and returns None; the `as_*` parsers turn a value that does not parse into
a missing one, and `bad_rows` says where that happened so the caller can name the rows.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

from samepage.data.problems import Problem
from samepage.values import FALSE_WORDS, TRUE_WORDS

AttributeKind = Literal["number", "boolean", "category"]


# -- reading ---------------------------------------------------------------------------------


def read_file(path: Path, problems: list[Problem]) -> pd.DataFrame | None:
    """Read a CSV (UTF-8, header row; cells kept as text) or Parquet file; None when unreadable."""
    name = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        problems.append(Problem(name, f"unknown file type {suffix!r}: use .csv or .parquet"))
        return None
    if not path.is_file():
        problems.append(Problem(name, "file not found"))
        return None
    try:
        if suffix == ".csv":
            # Text in, so the validators see what the file says ("007" stays "007").
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig"
            )
        else:
            frame = pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        problems.append(Problem(name, f"not UTF-8 text (byte {exc.start} cannot be decoded)"))
        return None
    except pd.errors.EmptyDataError:
        problems.append(Problem(name, "the file is empty (no header row)"))
        return None
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many types for a bad file
        problems.append(Problem(name, f"cannot read the file: {exc}".strip()))
        return None
    header = _csv_header(path) if suffix == ".csv" else [str(c) for c in frame.columns]
    frame.columns = [str(c).strip() for c in frame.columns]
    duplicated = sorted({c.strip() for c in header if [h.strip() for h in header].count(c.strip()) > 1})
    for column in duplicated:
        problems.append(Problem(name, "column appears more than once in the header", 1, column))
    if duplicated:  # which of the two is meant cannot be known: nothing of this file is read
        return None
    return frame.reset_index(drop=True)


def _csv_header(path: Path) -> list[str]:
    """The header as written: pandas renames a repeated column to `name.1`, hiding the repeat."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


# -- value parsing ---------------------------------------------------------------------------


def is_blank(values: pd.Series) -> pd.Series:
    """Missing cells: NA, or text that is only whitespace."""
    blank = values.isna()
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        blank |= values.astype("string").str.strip().eq("").fillna(True)
    return blank.astype(bool)


def as_text(values: pd.Series) -> pd.Series:
    """Stripped text (pandas string dtype), blanks as NA."""
    text = values.astype("string").str.strip()
    return text.mask(is_blank(values))


def as_utc(values: pd.Series) -> pd.Series:
    """ISO 8601 timestamps to datetime64[ns, UTC]; no offset means UTC; unparseable → NaT."""
    if is_datetime64_any_dtype(values):
        series = values if values.dt.tz is not None else values.dt.tz_localize("UTC")
        try:
            return series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        except (OverflowError, pd.errors.OutOfBoundsDatetime):
            # Parquet can hold years pandas' nanoseconds cannot (e.g. 3000): report those rows.
            values = series.map(lambda v: v.isoformat() if not pd.isna(v) else None)
    return pd.to_datetime(as_text(values), utc=True, format="ISO8601", errors="coerce").astype(
        "datetime64[ns, UTC]"
    )


def as_number(values: pd.Series) -> pd.Series:
    """Numbers to float64; text that is not a finite number → NaN (callers report it)."""
    if is_numeric_dtype(values) and not is_bool_dtype(values):
        out = values.astype("float64")
    else:
        parsed = pd.to_numeric(as_text(values), errors="coerce")
        out = pd.Series(parsed.to_numpy(dtype="float64", na_value=np.nan), index=values.index)
    return out.where(np.isfinite(out))


def as_boolean(values: pd.Series) -> pd.Series:
    """Yes/no words (`samepage.values.TRUE_WORDS`/`FALSE_WORDS`) to pandas' nullable boolean; else NA."""
    if is_bool_dtype(values):
        return values.astype("boolean")
    text = as_text(values).str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[text.isin(TRUE_WORDS).fillna(False).astype(bool)] = True
    out[text.isin(FALSE_WORDS).fillna(False).astype(bool)] = False
    return out


def bad_rows(raw: pd.Series, parsed: pd.Series) -> list[int]:
    """Positions where the file had a value that did not parse."""
    mask = ~is_blank(raw) & parsed.isna()
    return [int(i) for i in np.flatnonzero(mask.to_numpy())]


def all_numbers(values: pd.Series) -> bool:
    """Some value is present and every present value reads as a number."""
    present = ~is_blank(values)
    return bool(present.any()) and bool(as_number(values)[present].notna().all())


def attribute_kind(values: pd.Series) -> AttributeKind:
    """number when every present value is numeric, boolean for a boolean column, else category."""
    if is_bool_dtype(values):
        return "boolean"
    if is_numeric_dtype(values):
        return "number"
    if isinstance(values.dtype, pd.StringDtype):
        # Already typed text (a mapping's category, or the workspace's own column).
        return "category"
    return "number" if all_numbers(values) else "category"


def coerce(values: pd.Series, kind: AttributeKind) -> pd.Series:
    """A column as `kind`: float64 numbers, nullable booleans, or stripped text."""
    if kind == "number":
        return as_number(values)
    if kind == "boolean":
        return as_boolean(values)
    if is_numeric_dtype(values) and not is_bool_dtype(values):
        return values.map(_number_text).astype("string")
    return as_text(values)


def _number_text(value: float) -> str | None:
    """A number going into a text column: 250.0 reads better as "250"."""
    if pd.isna(value):
        return None
    return str(int(value)) if float(value).is_integer() else repr(float(value))
