"""Extracting a PostgreSQL table or query to Parquet: `COPY … TO STDOUT` streamed through pyarrow's CSV reader.

No LIMIT/OFFSET paging and no result set in memory: the server streams the rows, pyarrow parses them in
blocks sized from the budget into typed batches, and the Parquet sink writes them as they come.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from etl.config import Settings
from etl.errors import ConfigError, SourceError
from etl.memory import MB, row_group_bytes
from etl.sinks.parquet import ParquetSink, with_lineage
from etl.sinks.postgres import mask
from etl.sources import ConvertResult

logger = logging.getLogger(__name__)

# PostgreSQL type -> (Arrow type read from the CSV text, SQL expression wrapper).
SIMPLE = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "uuid": pa.string(),
    "json": pa.string(),
    "jsonb": pa.string(),
    "timestamp": pa.timestamp("us"),
}


class _CopyStream(io.RawIOBase):
    """A file-like view of `COPY … TO STDOUT`, for pyarrow's streaming CSV reader."""

    def __init__(self, chunks):
        self.chunks, self.rest = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self.rest:
            try:
                self.rest = bytes(next(self.chunks))
            except StopIteration:
                return 0
        n = min(len(buf), len(self.rest))
        buf[:n], self.rest = self.rest[:n], self.rest[n:]
        return n


def _columns(cur, query: sql.Composable) -> list[tuple[str, str, int | None]]:
    """(name, type name, numeric typmod) of a query's columns, without running it."""
    cur.execute(sql.SQL("SELECT * FROM ({}) AS q LIMIT 0").format(query))
    out = []
    for d in cur.description:
        typname = cur.connection.execute(
            "SELECT typname FROM pg_type WHERE oid = %s", [d.type_code]
        ).fetchall()[0][0]
        out.append((d.name, typname, d.precision if typname == "numeric" else None, d.scale))
    return out


def _plan(columns) -> tuple[list[sql.Composable], dict[str, pa.DataType]]:
    exprs, types = [], {}
    for name, typ, precision, scale in columns:
        col = sql.Identifier(name)
        if typ == "timestamptz":  # read as UTC text, typed UTC below
            exprs.append(
                sql.SQL("to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS {}").format(col, col)
            )
            types[name] = pa.timestamp("us")
        elif typ == "numeric" and precision and precision <= 38:
            exprs.append(col)
            types[name] = pa.decimal128(precision, scale or 0)
        elif typ in SIMPLE:
            exprs.append(col)
            types[name] = SIMPLE[typ]
        else:  # unconstrained numeric, arrays, intervals, … keep PostgreSQL's text form
            exprs.append(sql.SQL("{}::text AS {}").format(col, col))
            types[name] = pa.string()
    return exprs, types


def extract(
    settings: Settings, dsn: str, out_dir: Path, *, table: str | None = None, query: str | None = None
) -> ConvertResult:
    """Stream a table (`schema.table` or `table`) or a query into `out_dir/<name>.parquet`."""
    if (table is None) == (query is None):
        raise ConfigError("give either --table or --query")
    if table:
        source = sql.SQL("SELECT * FROM {}").format(sql.Identifier(*table.split(".", 1)))
        name = table.replace(".", "_")
    else:
        source = sql.SQL(query)
        name = "query_" + hashlib.sha1(query.encode()).hexdigest()[:10]
    lineage = f"postgres:{table or name}"
    out = Path(out_dir) / f"{name}.parquet"
    try:
        pg = psycopg.connect(dsn, connect_timeout=10)
    except psycopg.Error as e:
        raise SourceError(f"cannot connect to {mask(dsn)}: {str(e).strip().splitlines()[0]}") from None
    try:
        with pg, pg.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'")
            columns = _columns(cur, source)
            exprs, types = _plan(columns)
            copy_sql = sql.SQL("COPY (SELECT {} FROM ({}) AS q) TO STDOUT (FORMAT csv)").format(
                sql.SQL(", ").join(exprs), source
            )
            block = max(1 * MB, min(16 * MB, settings.memory_limit // 256))
            with (
                cur.copy(copy_sql) as copy,
                ParquetSink(out, row_group_bytes=row_group_bytes(settings.memory_limit)) as sink,
            ):
                reader = pacsv.open_csv(
                    io.BufferedReader(_CopyStream(iter(copy)), buffer_size=1 << 20),
                    read_options=pacsv.ReadOptions(
                        column_names=list(types), block_size=block, use_threads=False
                    ),
                    parse_options=pacsv.ParseOptions(newlines_in_values=True),
                    convert_options=pacsv.ConvertOptions(
                        column_types=types,
                        strings_can_be_null=True,
                        quoted_strings_can_be_null=False,
                        true_values=["t"],
                        false_values=["f"],
                    ),
                )
                for batch in reader:
                    batch = _utc(batch, columns)
                    sink.write(with_lineage(batch, lineage, sink.rows + 1))
    except psycopg.Error as e:
        raise SourceError(f"extract failed: {str(e).strip().splitlines()[0]}", file=lineage) from None
    finally:
        pg.close()
    logger.info("%s -> %s: %d rows", lineage, out, sink.rows)
    return ConvertResult.written(sink)


def _utc(batch: pa.RecordBatch, columns) -> pa.RecordBatch:
    tz = [name for name, typ, *_ in columns if typ == "timestamptz"]
    if not tz:
        return batch
    arrays = [
        batch.column(n).cast(pa.timestamp("us", "UTC")) if n in tz else batch.column(n)
        for n in batch.schema.names
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
