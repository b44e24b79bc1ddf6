"""The `samepage` command line: the contract's subcommands, each a thin edge over the packages.

Settings are read here, once, from the environment (SAMEPAGE_*), and passed in. Heavy imports
happen inside commands so `samepage --help` stays quick.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from samepage.changes import Preview
from samepage.cli.definitions import definitions_app
from samepage.definitions import Definitions, DefinitionsError, load_definitions
from samepage.settings import Settings

app = typer.Typer(
    name="samepage",
    help="Lead scoring on one signed-off vocabulary (definitions → Feast → MLflow → FastAPI).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(definitions_app)
console = Console(stderr=True)
API_KEY_FILE = "api_key"


@app.callback()
def _quiet_libraries() -> None:
    """Keep the terminal for samepage's own progress: libraries' info chatter and deprecations off."""
    import logging
    import os

    # MLflow sets its own logger level when imported; this is the knob it reads (user's wins).
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    _ignore_deprecations()
    for name in ("alembic", "feast"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def _clean_errors() -> Iterator[None]:
    """Turn known, user-caused failures into one readable message and a non-zero exit."""
    try:
        yield
    except (DefinitionsError, FileNotFoundError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {_escape(str(exc))}", highlight=False)
        raise typer.Exit(code=2) from None


def _ignore_deprecations() -> None:
    """Feast re-enables DeprecationWarning when imported, so this runs again after imports."""
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _load(settings: Settings) -> Definitions:
    return load_definitions(settings.definitions)


def _settings() -> Settings:
    return Settings()


def _run(step: Callable[[Settings, Definitions], Any]) -> Any:
    _ignore_deprecations()
    with _clean_errors():
        settings = _settings()
        defs = _load(settings)
        return step(settings, defs)


@app.command()
def demo(
    leads: Annotated[int, typer.Option("--leads", help="How many synthetic leads to write.", min=1)] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed and end write the same data.")] = 0,
    end: Annotated[
        str | None,
        typer.Option("--end", help="Last day of the data (ISO date, UTC). Default: today, so the newest leads are fresh."),
    ] = None,
) -> None:
    """Write synthetic canonical data (leads, events, stages) to the workspace."""
    from samepage.demo import write_demo

    summary = _run(lambda s, d: write_demo(s, d, n_leads=leads, seed=seed, end=demo_end(end)))
    console.print(f"[green]demo data written[/] to {_settings().data_dir}: {summary}")


@app.command(name="import")
def import_(
    leads: Annotated[Path, typer.Option("--leads", help="Leads file (CSV or Parquet).")],
    events: Annotated[Path | None, typer.Option("--events", help="Events file (CSV or Parquet).")] = None,
    stages: Annotated[Path | None, typer.Option("--stages", help="Stage history file (CSV or Parquet).")] = None,
    mapping: Annotated[
        Path | None, typer.Option("--mapping", help="Mapping YAML that turns a CRM export into canonical tables.")
    ] = None,
) -> None:
    """Load canonical or mapped data; bad input is refused whole, naming file, row and column."""
    from samepage.data.importer import import_files
    from samepage.data.problems import CanonicalDataError

    try:
        summary = _run(lambda s, d: import_files(s, d, leads=leads, events=events, stages=stages, mapping=mapping))
    except CanonicalDataError as exc:
        console.print(f"[bold red]import refused, workspace unchanged:[/]\n{_escape(str(exc))}", highlight=False)
        raise typer.Exit(code=2) from None
    console.print(f"[green]imported[/] {summary}")


@app.command()
def features() -> None:
    """Build feature tables from the canonical data, `feast apply`, and materialize online."""
    from features.store import build_features

    summary = _run(lambda s, d: build_features(s, d, progress=True))
    console.print(f"[green]features ready[/]: {summary}")


@app.command()
def train(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line of stdout.")] = False,
) -> None:
    """Build the point-in-time training set, backtest the candidates, refit, log to MLflow, register, maybe promote."""
    from training.pipeline import train as run_training

    result = _run(lambda s, d: run_training(s, d, progress=not as_json))
    payload = result.as_json()
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
        return
    _print_training(payload, result.chosen, result.ages)
    # Rows are snapshots (a lead at entry and later), leads are leads: say which ages the rows cover.
    console.print(f"training rows: {result.ages_described}", highlight=False)
    console.print(
        f"n_train = {payload['n_train']:,} rows (snapshots) learned from; n_test = {payload['n_test']:,} leads "
        "(one entry row each) that the test figures and the threshold judge",
        highlight=False,
    )


def _print_training(payload: dict[str, Any], chosen: str, ages: dict[str, Any] | None) -> None:
    out = Console(width=max(Console().width, 130))  # the fold table needs the room; pipes get it too
    backtest = payload.get("backtest")
    if backtest:
        registered = backtest["candidates"][backtest["model"]].get("label", backtest["model"])
        folds = Table(title=f"Backtest ({backtest['kind']}) of {registered}: each fold tested on leads it never saw")
        for column in ("fold", "test leads from", "to", "train rows", "test rows", "positives"):
            folds.add_column(column, justify="right")
        for column in ("ROC AUC", "PR AUC", "Brier", "ECE", "lift"):
            folds.add_column(column, justify="right")
        for f in backtest["folds"]:
            folds.add_row(
                str(f["fold"]), (f["test_from"] or "-")[:10], (f["test_to"] or "-")[:10], f"{f['n_train']:,}", f"{f['n_test']:,}",
                f"{f['test_positives']:,}", f"{f['roc_auc']:.3f}", f"{f['pr_auc']:.3f}", f"{f['brier']:.3f}", f"{f['ece']:.3f}",
                f"{f['top_decile_lift']:.2f}",
            )  # fmt: skip
        out.print(folds)
        candidates = Table(title="Candidates, pooled over the folds (same rows)")
        candidates.add_column("candidate")
        candidates.add_column("ROC AUC", justify="right")
        candidates.add_column("95% interval", justify="right")
        for name, c in backtest["candidates"].items():
            lo, hi = c["roc_auc_ci"]
            mark = " (registered)" if name == backtest["model"] else ""
            candidates.add_row(c.get("label", name) + mark, f"{c['roc_auc']:.3f}", f"[{lo:.3f}, {hi:.3f}]")
        out.print(candidates)
    table = Table(title=f"{payload['model_name']} v{payload['model_version']} (definitions {payload['definitions_version']})")
    table.add_column("metric (newest slice)")
    table.add_column("value", justify="right")
    for key, value in payload["metrics"].items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    for key, value in payload["threshold"].items():
        table.add_row(f"threshold.{key}", f"{value:.4f}" if isinstance(value, float) else str(value))
    out.print(table)
    if chosen:
        out.print(f"chosen: {chosen}", highlight=False)
    reason = payload["promotion_reason"]
    verdict = f"promoted to champion ({reason})" if payload["promoted"] else reason
    out.print(f"run {payload['run_id']}: {verdict}", highlight=False)
    n_train, n_test = payload["n_train"], payload["n_test"]
    out.print(f"learned from {n_train:,} rows; test figures on the newest {n_test:,} ({payload['split']} split)")
    if ages:
        out.print(
            f"ages covered ({ages['feature']}, days at each row's as-of time): min {ages['min']:.2f}, "
            f"median {ages['median']:.2f}, max {ages['max']:.2f} over {ages['rows']:,} rows",
            highlight=False,
        )
        if ages["max"] < 1:
            out.print("  every row is a snapshot taken on the lead's first day: the model has not seen older leads")
    drift = payload.get("drift")
    if drift:
        rate = drift["base_rate"]
        said = f"base rate {rate['train']:.1%} before, {rate['recent']:.1%} recently"
        out.print(f"drift ({drift.get('basis', '')}): {said}", highlight=False)
        for warning in drift["warnings"] or ["no drift warnings"]:
            out.print(f"  - {warning}", highlight=False)


@app.command()
def score(
    output: Annotated[Path, typer.Option("--output", help="Where to write scores, verdicts and reasons (CSV or Parquet).")],
    input: Annotated[Path | None, typer.Option("--input", help="Leads to score (CSV or Parquet, canonical columns).")] = None,
    all_leads: Annotated[bool, typer.Option("--all", help="Score every lead in the workspace as of now.")] = False,
    engine: Annotated[str, typer.Option("--engine", help="With --all: local (this process) or spark (pyspark).")] = "local",
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="With --all: leads per chunk (bounds memory).", min=1)] = 20_000,
    to_pass: Annotated[
        bool, typer.Option("--to-pass/--no-to-pass", help="With --all: search mql.to_pass for leads below the bar (slow).")
    ] = True,
) -> None:
    """Batch-score a file of leads (--input) or every lead (--all) with the champion: score, MQL verdict and reasons."""
    if (input is None) == (not all_leads):
        console.print("[bold red]error:[/] give exactly one of --input F or --all", highlight=False)
        raise typer.Exit(code=2)
    if input is not None:
        if engine != "local":
            console.print("[bold red]error:[/] --engine spark scores --all only; --input uses the online store", highlight=False)
            raise typer.Exit(code=2)
        from serving.batch import score_file

        summary = _run(lambda s, d: score_file(s, d, input, output))
    else:
        from serving.score_all import score_all

        summary = _run(lambda s, d: score_all(s, d, output, engine=engine, chunk=chunk_size, suggest=to_pass))
    console.print(f"[green]scored[/] {summary}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Interface to bind (default SAMEPAGE_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default SAMEPAGE_PORT or 8000).")] = None,
    proposed: Annotated[
        Path | None,
        typer.Option(
            "--proposed",
            help="A proposed definitions file: the /definitions page previews it against the current one "
            "(diff, retrain verdict, expected MQLs a week).",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Worker processes (default SAMEPAGE_WORKERS, else one per core).", min=0)
    ] = None,
) -> None:
    """Run the HTTP service (scores, feedback, lead record pages, report, definitions)."""
    with _clean_errors():
        settings = _settings()
        update: dict[str, Any] = {"host": host or settings.host, "port": port or settings.port}
        if workers is not None:
            update["workers"] = workers
        _serve(settings.model_copy(update=update), proposed)


def _serve(settings: Settings, proposed: Path | None = None) -> None:
    from serving.app import serve

    defs = _load(settings)
    serve(
        settings,
        defs,
        proposed=proposal(settings, defs, proposed),
        proposal=None if proposed is None else ("samepage.cli.main:proposal", str(proposed)),
    )


def proposal(settings: Settings, defs: Definitions, path: Path | None) -> Callable[[], Preview] | None:
    """What the /definitions page calls to preview `path` (read and checked now: a bad file stops the start).

    Serving cannot import training, so the command line hands it the preview as a function; each call
    reads the champion of that moment.
    """
    if path is None:
        return None
    candidate = load_definitions(path)

    def _preview() -> Preview:
        from training.impact import preview

        return preview(settings, defs, candidate, str(path))

    return _preview


@app.command()
def up(
    host: Annotated[str | None, typer.Option("--host", help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default 8000).")] = None,
    leads: Annotated[int, typer.Option("--leads", help="Demo leads to make when the workspace is empty.")] = 20_000,
) -> None:
    """The main job: bootstrap an empty workspace (demo → features → train), then serve."""
    from samepage.tables import has_data

    with _clean_errors():
        settings = _settings()
        settings = settings.model_copy(update={"host": host or settings.host, "port": port or settings.port})
        defs = _load(settings)
        _ignore_deprecations()
        console.rule(f"samepage · definitions {defs.version_string}")
        if not has_data(settings.data_dir):
            from samepage.demo import write_demo

            console.print(f"workspace {settings.home_dir} is empty: writing {leads:,} demo leads")
            console.print(f"  {write_demo(settings, defs, n_leads=leads, seed=0, end=demo_end(None))}")
        if not _has_trained(settings):
            from features.store import build_features
            from training.pipeline import train as run_training

            _ignore_deprecations()
            console.print("building features (Feast apply + materialize)")
            build_features(settings, defs, progress=True)
            console.print("training the first model")
            result = run_training(settings, defs, progress=True).as_json()
            auc = result["metrics"]["test_roc_auc"]
            console.print(f"  model {result['model_name']} v{result['model_version']}: test ROC AUC {auc:.3f}")
            console.print(f"  {result['promotion_reason']}")
        from serving.auth import ensure_api_key

        key, made = ensure_api_key(settings)
        base = f"http://{settings.host}:{settings.port}"
        console.print(f"[bold]serving[/] {base}")
        console.print(f"  API docs     {base}/docs")
        console.print(f"  lead record  {base}/leads/{_example_lead(settings)}")
        console.print(f"  report       {base}/report")
        console.print(f"  ingest       PUT {base}/v1/leads/<id> · POST {base}/v1/events (counted by the next score)")
        every = settings.online_refresh_seconds
        refresh = f"checked every {every:g} s" if every > 0 else "not checked (0)"
        console.print(f"  online store {refresh} for imports (SAMEPAGE_ONLINE_REFRESH_SECONDS); counts age as they are read")
        console.print(f"  API key      {api_key_line(settings, key, made)}")
        console.print("               send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`")
        console.print(f"  MLflow UI    make mlflow-ui  (tracking store {settings.tracking_uri})")
        _serve(settings)


def demo_end(given: str | None) -> Any:
    """The demo's last day: the one given, or today (UTC midnight). Scores are taken as of now, so
    a demo that ended weeks ago would show only leads gone cold."""
    import pandas as pd

    from samepage.values import utc_timestamp

    try:
        return utc_timestamp(given or pd.Timestamp.now(tz="UTC")).normalize()
    except ValueError:
        raise ValueError(f"--end: {given!r} is not a date (use e.g. 2026-11-01)") from None


def api_key_line(settings: Settings, key: str, made: bool) -> str:
    """The key in full only when it was made just now; later starts say where it is kept, so a
    key does not end up in every terminal scroll-back and service log."""
    if made:
        return f"{key}   (made now, kept in {settings.home_dir / API_KEY_FILE})"
    if settings.keys:
        return f"{key[:4]}… (from SAMEPAGE_API_KEYS)"
    return f"{key[:4]}… (kept in {settings.home_dir / API_KEY_FILE}; `cat` it to use it)"


def _example_lead(settings: Settings) -> str:
    """A real lead id to click on, so the printed URL opens a record."""
    import pyarrow.parquet as pq

    from samepage.tables import table_path

    ids = pq.read_table(table_path(settings.data_dir, "leads"), columns=["lead_id"]).column(0)
    return str(ids[0]) if len(ids) else "<lead_id>"


def _has_trained(settings: Settings) -> bool:
    """Whether any model version was registered: `up` trains once, and a first model the quality
    floor did not promote is not retrained at every start (the points rules score meanwhile)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from samepage.bundle import MODEL_NAME

    if settings.mlflow_tracking_uri is None and not (settings.home_dir / "mlflow.db").exists():
        return False
    try:
        versions = MlflowClient(tracking_uri=settings.tracking_uri).search_model_versions(f"name='{MODEL_NAME}'", max_results=1)
    except MlflowException:
        return False
    return len(versions) > 0


if __name__ == "__main__":  # pragma: no cover
    app()
