"""DuckDB: connections under the memory budget, and the warehouse built so readers never see it half-built."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from etl.config import Settings
from etl.errors import LoadError
from etl.memory import MB, duckdb_memory_limit, duckdb_threads
from etl.sinks.parquet import atomic_path
from etl.sources import SINGLE_TABLE

logger = logging.getLogger(__name__)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A SQL string literal, for the few places DuckDB takes no parameters (DDL such as CREATE VIEW, COPY)."""
    return "'" + text.replace("'", "''") + "'"


def connect(
    settings: Settings,
    database: str | Path = ":memory:",
    *,
    read_only: bool = False,
    preserve_order: bool = False,
    share: float = 0.5,
) -> duckdb.DuckDBPyConnection:
    """A connection with an explicit memory_limit below the budget, temp_directory under data/, and threads.

    `share` is DuckDB's part of what the budget leaves after the interpreter; stages whose Python side holds
    little (NVD's JSON) give DuckDB more.
    """
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "memory_limit": f"{duckdb_memory_limit(settings.memory_limit, share) // MB}MB",
        "threads": duckdb_threads(settings.memory_limit, settings.threads),
        "temp_directory": str(settings.tmp_dir / "duckdb"),
        "preserve_insertion_order": preserve_order,
    }
    return duckdb.connect(str(database), read_only=read_only, config=config)


@dataclass
class View:
    """A view of the warehouse: `<schema>.<name>` over a list of Parquet files."""

    schema: str
    name: str
    files: list[Path]


def sql_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.sql")) if folder.is_dir() else []


def build_warehouse(settings: Settings, views: Iterable[View], transforms: dict[str, list[Path]]) -> Path:
    """Build the warehouse into a temporary file and rename it into place.

    A notebook holding the old file open keeps reading the old, complete version; new connections see the new one.
    `transforms` maps a schema to the SQL files run, in order, with that schema as the default.
    """
    final = settings.warehouse
    with atomic_path(final) as tmp:
        con = connect(settings, tmp)
        try:
            for view in views:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(view.schema)}")
                files = ", ".join(quote_literal(str(f.resolve())) for f in view.files)
                con.execute(
                    f"CREATE OR REPLACE VIEW {quote_ident(view.schema)}.{quote_ident(view.name)} AS "
                    f"SELECT * FROM read_parquet([{files}], union_by_name = true)"
                )
                if view.name == SINGLE_TABLE:  # `SELECT … FROM <dataset>` for single-table datasets
                    con.execute(
                        f"CREATE OR REPLACE VIEW main.{quote_ident(view.schema)} AS "
                        f"SELECT * FROM {quote_ident(view.schema)}.{quote_ident(view.name)}"
                    )
            for schema, files in transforms.items():
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
                con.execute(f"SET schema = {quote_literal(schema)}")
                for path in files:
                    run_sql_file(con, path)
                con.execute("SET schema = 'main'")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        wal = Path(str(tmp) + ".wal")
        if wal.exists():  # a clean close checkpoints; a leftover WAL would belong to the old name
            os.unlink(wal)
    return final


def run_sql_file(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Run one SQL file; an error names the file and the line."""
    text = path.read_text(encoding="utf-8")
    try:
        con.execute(text)
    except duckdb.Error as e:
        line = re.search(r"^LINE (\d+):", str(e), re.MULTILINE)
        raise LoadError(
            str(e).splitlines()[0], file=str(path), position=line and f"line {line.group(1)}", hint=_hint(e)
        ) from None


def _hint(error: duckdb.Error) -> str | None:
    if isinstance(error, duckdb.OutOfMemoryException):
        return "Raise --memory-limit, or rewrite aggregations such as string_agg/list over huge groups"
    return None
