"""Data dictionaries: CSV files in a transform folder that describe its views' columns.

A `NNN_name.csv` transform file has the header `view,column,kind,source,descricao,description`, one row per column:
`kind` is `original` (a field of the file), `derived` (typed or computed from codes: dates, ages, IBGE codes,
states) or `label` (text looked up from a code table). Run after the views, it puts each description on its column
as a DuckDB comment (`descricao / description`), which DESCRIBE, duckdb_columns() and `etl sql` show, and which
`export_view` writes as Parquet field metadata.

A dataset's label policy (`labels` in etl.toml) is applied here too: under `labels = "codes"` each view loses its
`label` columns, and an `original` column kept under another name beside its label (SIH's `SEXO_COD`) gets its
file name back (`SEXO`): the view is then the file's columns plus the derived ones.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from etl.errors import LoadError
from etl.sinks.duckdb import quote_ident, quote_literal

if TYPE_CHECKING:
    import duckdb

    from etl.config import Settings

HEADER = ["view", "column", "kind", "source", "descricao", "description"]
KINDS = ("original", "derived", "label")
LABELS = ("text", "codes")


def read_dictionary(path: Path) -> list[dict[str, str]]:
    """The rows of a dictionary CSV, checked: its header, and a known kind on every line."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != HEADER:
            raise LoadError(
                f"a data dictionary's header must be {','.join(HEADER)}", file=str(path), position="line 1"
            )
        rows = list(reader)
    for line, row in enumerate(rows, start=2):
        if row["kind"] not in KINDS or not row["view"] or not row["column"]:
            raise LoadError(
                f"bad dictionary row: kind must be one of {', '.join(KINDS)}, view and column given",
                file=str(path),
                position=f"line {line}",
            )
    return rows


def _columns(con: duckdb.DuckDBPyConnection, schema: str, view: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
            [schema, view],
        ).fetchall()
    ]


def apply_dictionary(con: duckdb.DuckDBPyConnection, schema: str, path: Path, labels: str = "text") -> None:
    """Apply the label policy to the dictionary's views, then comment their columns."""
    rows = read_dictionary(path)
    views: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for line, row in enumerate(rows, start=2):
        views.setdefault(row["view"], []).append((line, row))
    for view, entries in views.items():
        present = {c.lower() for c in _columns(con, schema, view)}
        if not present:
            raise LoadError(
                f"the dictionary describes {schema}.{view}, which no SQL file created", file=str(path)
            )
        for line, row in entries:
            # The file's own fields vary with its layout; what the views compute must be there.
            if row["kind"] != "original" and row["column"].lower() not in present:
                raise LoadError(
                    f"{schema}.{view} has no column {row['column']!r}",
                    file=str(path),
                    position=f"line {line}",
                )
        if labels == "codes":
            _codes_only(con, schema, view, [row for _, row in entries], present)
        target = f"{quote_ident(schema)}.{quote_ident(view)}"
        names = {c.lower(): c for c in _columns(con, schema, view)}
        for _, row in entries:
            if labels == "codes" and row["kind"] == "label":
                continue  # not in the view; its name may be the original's (sexo, SEXO)
            name = row["column"]
            if labels == "codes" and row["kind"] == "original" and row["source"]:
                name = row["source"]  # renamed back to the file's name
            if name.lower() in names:
                con.execute(
                    f"COMMENT ON COLUMN {target}.{quote_ident(names[name.lower()])} IS {quote_literal(comment(row))}"
                )


def comment(row: dict[str, str]) -> str:
    return " / ".join(t for t in (row["descricao"].strip(), row["description"].strip()) if t)


def _codes_only(
    con: duckdb.DuckDBPyConnection, schema: str, view: str, rows: list[dict[str, str]], present: set[str]
) -> None:
    """Redefine `view` without its label columns, over the labelled one renamed `_<view>_rotulado`."""
    dropped = [r["column"] for r in rows if r["kind"] == "label" and r["column"].lower() in present]
    renamed = [
        (r["column"], r["source"])
        for r in rows
        if r["kind"] == "original" and r["source"] and r["column"].lower() in present
    ]
    if not dropped and not renamed:
        return
    labelled = f"_{view}_rotulado"
    con.execute(f"ALTER VIEW {quote_ident(schema)}.{quote_ident(view)} RENAME TO {quote_ident(labelled)}")
    exclude = f" EXCLUDE ({', '.join(map(quote_ident, dropped))})" if dropped else ""
    rename = (
        f" RENAME ({', '.join(f'{quote_ident(a)} AS {quote_ident(b)}' for a, b in renamed)})"
        if renamed
        else ""
    )
    con.execute(
        f"CREATE VIEW {quote_ident(schema)}.{quote_ident(view)} AS "
        f"SELECT *{exclude}{rename} FROM {quote_ident(schema)}.{quote_ident(labelled)}"
    )


def descriptions(con: duckdb.DuckDBPyConnection, schema: str, view: str) -> dict[str, str]:
    """Each commented column of a view or table and its comment."""
    return dict(
        con.execute(
            "SELECT column_name, comment FROM duckdb_columns() "
            "WHERE schema_name = ? AND table_name = ? AND comment IS NOT NULL",
            [schema, view],
        ).fetchall()
    )


def export_view(
    con: duckdb.DuckDBPyConnection, schema: str, view: str, path: Path, settings: Settings
) -> int:
    """Stream a view's rows into one Parquet file, each column's comment as its field metadata `description`.

    DuckDB hands record batches of a size bounded by the budget; the sink writes them in row groups bounded in
    bytes and renames the file into place when complete. Returns the rows written.
    """
    import pyarrow as pa

    from etl.memory import row_group_bytes
    from etl.sinks.parquet import ParquetSink

    notes = descriptions(con, schema, view)
    rel = con.sql(f"SELECT * FROM {quote_ident(schema)}.{quote_ident(view)}")
    reader = rel.to_arrow_reader(batch_rows(settings.memory_limit))
    fields = [
        f.with_metadata({"description": notes[f.name]}) if f.name in notes else f for f in reader.schema
    ]
    schema_ = pa.schema(fields, metadata=reader.schema.metadata)
    with ParquetSink(path, schema_, row_group_bytes=row_group_bytes(settings.memory_limit)) as sink:
        for batch in reader:
            sink.write(pa.RecordBatch.from_arrays(batch.columns, schema=schema_))
    return sink.rows


def batch_rows(budget: int) -> int:
    """Rows per DuckDB record batch: 8k per 512 MB of budget (staged DATASUS rows run to ~1 KB in Arrow; 32k rows
    peaked 40 MB higher exporting SIA PA at 512 MB, in the same time)."""
    return max(2048, min(122_880, budget // (64 * 1024)))
