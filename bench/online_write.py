"""The online views' write to the SQLite online store alone, on COPIES times a workspace's leads.

    .venv/bin/python bench/online_write.py --home <workspace> [--copies 10] [--feast]

The workspace is one `samepage features` built (its registry, online store and sources). Its two
online views' sources are repeated COPIES times (ids suffixed `-0`, `-1`, ...) in a scratch copy of
its feature repo, whose online tables start empty; then each view is written in batches of
`ONLINE_BATCH_ROWS` as `samepage features` writes them (`SqliteViewWriter`): once into the empty
tables, once over them (the upsert a rebuild does), and with `--feast` over them again through
Feast's own `write_to_online_store`. A measurement, not a test: figures depend on the load.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere: this checkout's code
    sys.path.insert(0, str(REPO))


def _scratch(home: Path, under: Path, copies: int) -> tuple[Any, dict[str, Path]]:
    """A scratch workspace with the feature repo's registry and emptied online store, and the repeated sources."""
    from features.feast_repo import ONLINE_VIEWS
    from features.transform import LEAD_ID, source_path
    from samepage.settings import Settings

    source = Settings(home=home, definitions=REPO / "configs" / "definitions.yaml", _env_file=None)
    settings = Settings(home=under / "workspace", definitions=source.definitions, _env_file=None)
    settings.feature_repo_dir.mkdir(parents=True)
    for name in ("registry.db", "online_store.db"):
        shutil.copy(source.feature_repo_dir / name, settings.feature_repo_dir / name)
    conn = sqlite3.connect(settings.feature_repo_dir / "online_store.db")
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        conn.execute(f'DELETE FROM "{table}"')
    conn.commit()
    conn.execute("VACUUM")
    conn.close()
    paths = {}
    for view in ONLINE_VIEWS:
        rows = pq.read_table(source_path(source, view))
        i = rows.column_names.index(LEAD_ID)
        ids = rows.column(i)
        parts = [rows.set_column(i, LEAD_ID, pc.binary_join_element_wise(ids, pa.scalar(f"-{k}"), "")) for k in range(copies)]
        paths[view] = under / f"{view}.parquet"
        pq.write_table(pa.concat_tables(parts), paths[view])
    return settings, paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a workspace `samepage features` built")
    parser.add_argument("--copies", type=int, default=10, help="times its leads are repeated")
    parser.add_argument("--feast", action="store_true", help="also time Feast's write_to_online_store over the same rows")
    args = parser.parse_args()
    from features.feast_repo import open_store
    from features.online_write import SqliteViewWriter
    from features.streamed import ONLINE_BATCH_ROWS

    warnings.simplefilter("ignore")  # Feast: nanoseconds discarded
    with tempfile.TemporaryDirectory(prefix="online-write-") as under:
        settings, paths = _scratch(args.home, Path(under), args.copies)
        store = open_store(settings)
        rounds = ["into empty tables", "over them"] + (["over them, through Feast"] if args.feast else [])
        for label in rounds:
            for view, path in paths.items():
                writer = SqliteViewWriter(store, view)
                started = time.perf_counter()
                with pq.ParquetFile(path) as source:
                    rows = source.metadata.num_rows
                    for batch in source.iter_batches(batch_size=ONLINE_BATCH_ROWS):
                        if "Feast" in label:
                            store.write_to_online_store(view, batch.to_pandas())
                        else:
                            writer.write(batch)
                print(f"{view}, {rows:,} rows, {label}: {time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
