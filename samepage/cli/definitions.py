"""`samepage definitions ...`: what a proposed definitions file would change, before both teams sign it.

Only wiring: the words and the retrain verdict are `samepage.changes`, the figures
`training.impact` on the champion's out-of-time predictions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from samepage.changes import Preview
from samepage.definitions import DefinitionsError, load_definitions
from samepage.settings import Settings

definitions_app = typer.Typer(
    name="definitions",
    help="The shared definitions: preview what a proposed file changes before both teams sign it.",
    no_args_is_help=True,
)
console = Console(stderr=True)


@definitions_app.command()
def preview(
    proposed: Annotated[
        Path, typer.Option("--proposed", help="The proposed definitions file (YAML), compared with the current one.")
    ],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object as the last line of stdout: retrain_needed, changes, expected_mql_per_week, "
            "expected_sql_rate, capacity_share (and the details).",
        ),
    ] = False,
) -> None:
    """The diff in words, whether a retrain is needed and why, and the expected MQLs a week, SQL rate and
    share of sales capacity on the champion's out-of-time predictions."""
    try:
        settings = Settings()
        current = load_definitions(settings.definitions)
        candidate = load_definitions(proposed)
    except (DefinitionsError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(code=2) from None
    from training.impact import preview as build_preview

    result = build_preview(settings, current, candidate, str(proposed))
    if as_json:
        sys.stdout.write(json.dumps(result.as_json()) + "\n")
        return
    print_preview(result)


def print_preview(result: Preview) -> None:
    """The preview for people, on stdout."""
    out = Console()
    out.print(
        f"[bold]Proposed[/] {escape(result.proposed_source)} ({result.proposed_version}) "
        f"against the current definitions ({result.current_version})",
        highlight=False,
    )
    out.print("[bold]Changes[/]")
    for change in result.changes:
        out.print(f"  - {escape(change)}", highlight=False)
    colour = "yellow" if result.retrain_needed else "green"
    out.print(f"[bold {colour}]{escape(result.verdict)}[/]", highlight=False)
    if result.current is not None and result.proposed is not None:
        table = Table(title="The MQL rule on the champion's out-of-time predictions")
        table.add_column("")
        table.add_column("current", justify="right")
        table.add_column("proposed", justify="right")
        a, b = result.current, result.proposed
        table.add_row("MQL threshold", f"{a.threshold:.4g}", f"{b.threshold:.4g}")
        table.add_row("expected MQLs a week", f"{a.expected_mql_per_week:,.1f}", f"{b.expected_mql_per_week:,.1f}")
        table.add_row("SQL rate among them", f"{a.expected_sql_rate:.1%}", f"{b.expected_sql_rate:.1%}")
        table.add_row("sales capacity a week", f"{a.capacity_per_week:,}", f"{b.capacity_per_week:,}")
        table.add_row("share of sales capacity", f"{a.capacity_share:.0%}", f"{b.capacity_share:.0%}")
        out.print(table)
        out.print(f"Basis: {escape(result.basis)}", highlight=False)
    for note in result.notes:
        out.print(f"[dim]{escape(note)}[/]", highlight=False)
