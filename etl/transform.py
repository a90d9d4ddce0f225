"""Transforms run while the warehouse is built: SQL files by DuckDB, Python files by Polars' streaming engine.

A transform folder (sql/<kind>/, sql/<dataset>/) holds files run in name order. `NNN_name.sql` runs in DuckDB
with the dataset's schema as the default. `NNN_name.py` defines `transform(tables) -> polars.LazyFrame`, where
`tables` maps the dataset's table names to lazy scans of their Parquet; the result is sunk by the streaming
engine to data/marts/<dataset>/<name>.parquet and becomes the view `<dataset>.<name>`. `NNN_name.csv` is a data
dictionary of the views before it (etl/dictionary.py): column comments, and the dataset's label policy.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
from pathlib import Path

import duckdb

from etl.config import Settings
from etl.dictionary import apply_dictionary
from etl.errors import LoadError
from etl.files import atomic_path
from etl.memory import MB, row_group_bytes
from etl.reference import load_reference
from etl.sinks.duckdb import (
    WAREHOUSE_SHARE,
    View,
    connect,
    create_views,
    hint,
    parquet_scan,
    quote_ident,
    quote_literal,
    run_sql_file,
    warehouse_reserve,
)
from etl.sinks.sort_ranges import create_sorted_in_ranges

logger = logging.getLogger(__name__)


def build_warehouse(
    settings: Settings,
    views: list[View],
    transforms: dict[str, list[Path]],
    labels: dict[str, str] | None = None,
    sql_text: dict[tuple[str, Path], str] | None = None,
) -> Path:
    """Build the warehouse into a temporary file and rename it into place.

    A notebook holding the old file open keeps reading the old, complete version; new connections see the new one.
    `transforms` maps a schema to its transform files (SQL, or Python with Polars), run in order with that schema
    as the default, under the schema's label policy (`labels`, default "text"). A failing file stops its dataset; the others still run so that every error is reported, and
    then the new warehouse is discarded: the previous one stays in place. Tables the transforms create (marts)
    are also exported as Parquet under data/marts/<dataset>/. `sql_text` holds, per (schema, file), the text to run
    instead of the file's (the Spark engine's: its marts as views over the Parquet Spark wrote).
    """
    final = settings.warehouse
    errors: list[LoadError] = []
    with atomic_path(final) as tmp:
        con = connect(settings, tmp, share=WAREHOUSE_SHARE, reserve=warehouse_reserve(settings.memory_limit))
        try:
            create_views(con, settings, views)
            load_reference(con)  # ref.municipios, ref.cid10, …: staging SQL joins them
            for schema, files in transforms.items():
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
                con.execute(f"SET schema = {quote_literal(schema)}")
                try:
                    for path in files:
                        run_transform(
                            con,
                            settings,
                            schema,
                            path,
                            [v for v in views if v.schema == schema],
                            (labels or {}).get(schema, "text"),
                            (sql_text or {}).get((schema, path)),
                        )
                except LoadError as e:
                    errors.append(e)
                con.execute("SET schema = 'main'")
            if errors:
                raise TransformFailures(errors)
            for schema in transforms:
                export_marts(con, settings, schema)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        wal = Path(str(tmp) + ".wal")
        if wal.exists():  # a clean close checkpoints; a leftover WAL would belong to the old name
            os.unlink(wal)
    return final


class TransformFailures(LoadError):
    """One or more transform files failed; the previous warehouse was kept."""

    def __init__(self, errors: list[LoadError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors), hint="The previous warehouse is still in place")


def marts_dir(settings: Settings, schema: str) -> Path:
    return settings.marts_dir / schema


def run_transform(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    schema: str,
    path: Path,
    views: list[View],
    labels: str = "text",
    text: str | None = None,
) -> None:
    """Run a transform file; `text`, when given, is run in place of a SQL file's own."""
    if path.suffix == ".py":
        run_polars_file(con, settings, schema, path, views)
    elif path.suffix == ".csv":
        apply_dictionary(con, schema, path, labels)
    else:
        run_sql_file(con, path, text, out_of_memory=create_sorted_in_ranges)


def run_polars_file(
    con: duckdb.DuckDBPyConnection, settings: Settings, schema: str, path: Path, views: list[View]
) -> None:
    # Polars reads its thread count once, at import: set it from the settings before the first import.
    os.environ.setdefault("POLARS_MAX_THREADS", str(settings.threads))
    import polars as pl

    spec = importlib.util.spec_from_file_location(f"etl_transform_{schema}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    name = re.sub(r"^\d+_", "", path.stem)
    out = marts_dir(settings, schema) / f"{name}.parquet"
    try:
        spec.loader.exec_module(module)
        tables = {v.name: pl.scan_parquet([str(f) for f in v.files]) for v in views}
        frame = module.transform(tables)
        with atomic_path(out) as tmp:
            frame.sink_parquet(tmp, engine="streaming", row_group_size=100_000)
    except Exception as e:  # a user's transform: any error is that file's error
        raise LoadError(
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", file=str(path), hint=hint(e)
        ) from None
    con.execute(
        f"CREATE OR REPLACE VIEW {quote_ident(schema)}.{quote_ident(name)} AS "
        f"SELECT * FROM {parquet_scan(settings, [out])}"
    )


def export_marts(con: duckdb.DuckDBPyConnection, settings: Settings, schema: str) -> list[Path]:
    """Every table the transforms created in `schema`, also as Parquet (row groups bounded in bytes)."""
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'",
            [schema],
        ).fetchall()
    ]
    row_group_mib = row_group_bytes(settings.memory_limit) // MB  # a row group is buffered whole
    out = []
    preserve = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
    con.execute("SET preserve_insertion_order = true")  # a mart built with ORDER BY is written in that order
    try:
        for table in tables:
            path = marts_dir(settings, schema) / f"{table}.parquet"
            # the Spark engine's folder from an earlier run: a file cannot be renamed over it
            if path.is_dir():
                shutil.rmtree(path)
            with atomic_path(path) as tmp:
                con.execute(
                    f"COPY {quote_ident(schema)}.{quote_ident(table)} TO {quote_literal(str(tmp))} "
                    f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE_BYTES '{row_group_mib}MiB')"
                )
            out.append(path)
    finally:
        con.execute(f"SET preserve_insertion_order = {bool(preserve)}")
    return out
