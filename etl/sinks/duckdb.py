"""DuckDB: connections under the memory budget, and the warehouse built so readers never see it half-built."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from etl.config import Settings
from etl.errors import LoadError
from etl.memory import MB, duckdb_memory_limit, duckdb_threads
from etl.sources import SINGLE_TABLE

# DuckDB is imported where used (0.13 s, ~30 MB): `etl run` loads every dataset's source, and a step that
# does not open DuckDB should not carry it.
if TYPE_CHECKING:
    import duckdb

logger = logging.getLogger(__name__)


# Building the warehouse is DuckDB's alone: it gets all but the interpreter's ~144 MB, or 48% of a larger budget.
# At 256 MB that is 112 MiB: over 3.4 GB of Parquet a GROUP BY of 20M keys peaks at 234 MB, and a join of 42M rows
# to 20M, which fails at 106 MiB, at 202 MB (bench_transform, DuckDB 2.0.1). Measured at 512 MB with cve_risk over
# 300k CVEs and a year of EPSS: RSS is DuckDB's limit + 180-220 MB (544 MB for `etl transform` with a 362 MB limit;
# 517 MB in an `etl run` that had converted first, with 297 MB).
WAREHOUSE_SHARE, WAREHOUSE_RESERVE, WAREHOUSE_RESERVE_SHARE = 1.0, 144 * MB, 0.48


def warehouse_reserve(budget: int) -> int:
    return max(WAREHOUSE_RESERVE, int(budget * WAREHOUSE_RESERVE_SHARE))


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def parse_query(con: duckdb.DuckDBPyConnection, query: str) -> dict | None:
    """DuckDB's parse tree of one SELECT (json_serialize_sql), or None where `query` is not one that parses."""
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [query]).fetchall()[0][0])
    return None if tree["error"] or len(tree["statements"]) != 1 else tree


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
    reserve: int = 170 * MB,
) -> duckdb.DuckDBPyConnection:
    """A connection with an explicit memory_limit below the budget, temp_directory under data/, and threads.

    `share` is DuckDB's part of what the budget leaves after the interpreter; stages whose Python side holds
    little (NVD's JSON) give DuckDB more.
    """
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "memory_limit": f"{duckdb_memory_limit(settings.memory_limit, share, reserve) // MB}MiB",
        "threads": duckdb_threads(settings.memory_limit, settings.threads),
        "temp_directory": str(settings.tmp_dir / "duckdb"),
        "preserve_insertion_order": preserve_order,
    }
    import duckdb

    con = duckdb.connect(str(database), read_only=read_only, config=config)
    con.execute(f"SET VARIABLE {DATA_DIR_VARIABLE} = ?", [str(settings.data_dir.resolve())])
    if not read_only:
        create_path_macro(con, settings)
    return con


# The warehouse's views name their Parquet relative to the data directory, through a macro that reads this
# variable (set by every connection above): a moved or shared data/ keeps working without a rebuild. A client
# that does not set it (the duckdb CLI) reads the data directory the warehouse was built in.
DATA_DIR_VARIABLE = "etl_data_dir"


def create_path_macro(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """`main.etl_data_path('parquet/x/y.parquet')`: that file under the connection's data directory."""
    built_in = quote_literal(str(settings.data_dir.resolve()))
    con.execute(
        f"CREATE OR REPLACE MACRO main.etl_data_path(p) AS "
        f"coalesce(getvariable({quote_literal(DATA_DIR_VARIABLE)}), {built_in}) || '/' || p"
    )


def parquet_scan(settings: Settings, files: list[Path]) -> str:
    """`read_parquet([...])` of these files, those under the data directory named through `etl_data_path()`."""
    root = settings.data_dir.resolve()
    names = []
    for f in files:
        path = f.resolve()
        names.append(
            f"main.etl_data_path({quote_literal(path.relative_to(root).as_posix())})"
            if path.is_relative_to(root)
            else quote_literal(str(path))
        )
    return f"read_parquet([{', '.join(names)}], union_by_name = true)"


@dataclass
class View:
    """A view of the warehouse: `<schema>.<name>` over a list of Parquet files."""

    schema: str
    name: str
    files: list[Path]


def transform_files(folder: Path) -> list[Path]:
    """A transform folder's files in name order: NNN_name.sql (DuckDB), .py (Polars), .csv (data dictionary)."""
    return (
        sorted(p for p in folder.iterdir() if p.suffix in (".sql", ".py", ".csv")) if folder.is_dir() else []
    )


def create_views(con: duckdb.DuckDBPyConnection, settings: Settings, views: list[View]) -> None:
    """A view per dataset table over its Parquet files (named relative to the data directory, so a moved data
    directory keeps working); `main.<dataset>` too for a single-table dataset."""
    for view in views:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(view.schema)}")
        name = f"{quote_ident(view.schema)}.{quote_ident(view.name)}"
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {parquet_scan(settings, view.files)}")
        con.execute(
            f"COMMENT ON VIEW {name} IS "
            + quote_literal(f"{len(view.files)} Parquet file(s) under parquet/{view.schema}/")
        )
        if view.name == SINGLE_TABLE:  # `SELECT … FROM <dataset>` for single-table datasets
            con.execute(f"CREATE OR REPLACE VIEW main.{quote_ident(view.schema)} AS SELECT * FROM {name}")
            con.execute(
                f"COMMENT ON VIEW main.{quote_ident(view.schema)} IS "
                + quote_literal(f"{view.schema}.{view.name}, the dataset's one table")
            )


def run_sql_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    text: str | None = None,
    out_of_memory: Callable[[duckdb.DuckDBPyConnection, str], bool] | None = None,
) -> None:
    """Run one SQL file (or `text` in its place) statement by statement; an error names the file and line.

    A statement that runs out of memory is passed to `out_of_memory`, which may run it another way (True).
    """
    import duckdb

    text = path.read_text(encoding="utf-8") if text is None else text
    try:
        statements = con.extract_statements(text)
    except duckdb.Error as e:
        raise LoadError(str(e).splitlines()[0], file=str(path), position=_line(e, 1)) from None
    pos = 0
    for statement in statements:
        found = text.find(statement.query, pos)
        pos = max(found, pos)
        body = statement.query
        start = text.count("\n", 0, pos + len(body) - len(body.lstrip())) + 1
        pos += len(body)
        try:
            try:
                con.execute(statement)
            except duckdb.OutOfMemoryException:
                if not (out_of_memory and out_of_memory(con, body)):
                    raise
        except duckdb.Error as e:
            raise LoadError(
                str(e).splitlines()[0], file=str(path), position=_line(e, start), hint=hint(e)
            ) from None


def _line(error: duckdb.Error, start: int) -> str:
    """The file line of an error: DuckDB numbers lines from the start of the failing statement."""
    m = re.search(r"^LINE (\d+):", str(error), re.MULTILINE)
    return f"line {start + int(m.group(1)) - 1 if m else start}"


def hint(error: Exception) -> str | None:
    """What to change when DuckDB runs out of memory or temp space."""
    text = str(error)
    if "max_temp_directory_size" in text or "temp directory" in text.lower() and "size" in text.lower():
        return (
            "The spill outgrew max_temp_directory_size: free disk space under data/tmp or raise that setting"
        )
    if "Out of Memory" in text:
        return (
            "Raise --memory-limit; a full ORDER BY of wide rows or a join many times the limit needs more of it "
            "than a GROUP BY; aggregations such as string_agg() or list() over a few huge groups cannot spill to "
            "disk: aggregate further first"
        )
    return None
