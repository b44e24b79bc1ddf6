"""What is wrong with an input file, said the way a person finds it: file, row, column, message.

Every reader and validator of `samepage.data` appends `Problem`s to one list instead of raising
at the first, so an import reports everything wrong with a set of files at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAX_LISTED_PROBLEMS = 20  # per error message, and per column for repeated value problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file; `row` counts like a person reading the file."""

    file: str
    message: str
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: {self.message}"


class CanonicalDataError(ValueError):
    """Input that cannot be imported; `.problems` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = [f"  - {p}" for p in problems[:MAX_LISTED_PROBLEMS]]
        more = len(problems) - len(shown)
        if more > 0:
            shown.append(f"  ... and {more} more")
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"nothing was imported: {len(problems)} {noun} found\n" + "\n".join(shown))


class RowNumbers:
    """Maps a frame position to the row a person sees: header is row 1 in a CSV."""

    def __init__(self, path: Path) -> None:
        self.offset = 2 if path.suffix.lower() == ".csv" else 1

    def __call__(self, position: int) -> int:
        return position + self.offset


def in_file_order(problems: list[Problem]) -> list[Problem]:
    """Files in the order first seen, each file's problems top to bottom (stable)."""
    order = {file: n for n, file in reversed(list(enumerate(p.file for p in problems)))}
    return sorted(problems, key=lambda p: (order[p.file], p.row or 0))
