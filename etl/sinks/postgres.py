"""Publishing warehouse tables to PostgreSQL: streamed through COPY into a staging table, swapped in atomically.

Each table is loaded in one transaction: create a staging table, COPY the rows in bounded Arrow batches
(written as CSV by pyarrow), then drop the live table and rename the staging one. Readers see the old table
until the commit and the new one after; a failure rolls everything back, leaving the live table as it was.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from etl.config import Settings
from etl.errors import ConfigError, LoadError
from etl.memory import batch_rows
from etl.sinks.duckdb import connect, quote_ident

logger = logging.getLogger(__name__)

DEFAULT_DSN_ENV = "ETL_PG_DSN"


@dataclass
class PublishOptions:
    """The `[publish.postgres]` section of etl.toml."""

    dsn_env: str = field(default=DEFAULT_DSN_ENV, metadata={"help": "variable holding the DSN"})
    schema: str = field(default="etl", metadata={"help": "target schema"})
    tables: list[str] = field(
        default_factory=list, metadata={"help": "dataset.table names (default: all marts)"}
    )


@dataclass
class Loaded:
    table: str
    rows: int


def mask(dsn: str) -> str:
    """The DSN with any password hidden, for messages and logs."""
    dsn = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn, flags=re.IGNORECASE)


def pg_type(duck_type: str) -> str:
    t = duck_type.upper()
    simple = {
        "BIGINT": "bigint",
        "INTEGER": "integer",
        "SMALLINT": "smallint",
        "TINYINT": "smallint",
        "UBIGINT": "numeric(20)",
        "UINTEGER": "bigint",
        "USMALLINT": "integer",
        "UTINYINT": "smallint",
        "HUGEINT": "numeric(39)",
        "DOUBLE": "double precision",
        "FLOAT": "real",
        "BOOLEAN": "boolean",
        "DATE": "date",
        "TIMESTAMP": "timestamp",
        "TIMESTAMP WITH TIME ZONE": "timestamptz",
        "TIME": "time",
        "VARCHAR": "text",
        "UUID": "uuid",
        "BLOB": "bytea",
        "INTERVAL": "interval",
    }
    if t in simple:
        return simple[t]
    if t.startswith("DECIMAL"):
        return t.replace("DECIMAL", "numeric")
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    return "jsonb"  # lists, structs and maps travel as JSON


def warehouse_tables(con) -> list[tuple[str, str]]:
    """The marts: base tables of the dataset schemas (views stay in DuckDB)."""
    return [
        tuple(r)
        for r in con.sql(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_catalog = current_database() ORDER BY 1, 2"
        ).fetchall()
    ]


def load(
    settings: Settings, dsn: str, *, schema: str = "etl", tables: list[str] | None = None
) -> list[Loaded]:
    """Publish the warehouse's tables (or `tables`, as dataset.table) to PostgreSQL under `schema`."""
    if not settings.warehouse.exists():
        raise LoadError(f"no warehouse at {settings.warehouse}", hint="Run `etl run` first")
    duck = connect(settings, settings.warehouse, read_only=True, preserve_order=True)
    try:
        available = warehouse_tables(duck)
        chosen = available
        if tables:
            names = {f"{s}.{t}": (s, t) for s, t in available}
            missing = [t for t in tables if t not in names]
            if missing:
                raise ConfigError(
                    f"no table {missing[0]!r} in the warehouse", hint=f"Tables: {', '.join(names) or 'none'}"
                )
            chosen = [names[t] for t in tables]
        try:
            pg = psycopg.connect(dsn, connect_timeout=10)
        except psycopg.Error as e:
            raise LoadError(
                f"cannot connect to {mask(dsn)}: {str(e).strip().splitlines()[0]}",
                hint="Check the DSN (ETL_PG_DSN) and that the server is up",
            ) from None
        with pg:
            return [_load_table(duck, pg, settings, ds, table, schema) for ds, table in chosen]
    finally:
        duck.close()


def _load_table(duck, pg: psycopg.Connection, settings: Settings, ds: str, table: str, schema: str) -> Loaded:
    source = f"{quote_ident(ds)}.{quote_ident(table)}"
    columns = duck.sql(f"DESCRIBE {source}").fetchall()
    target = f"{ds}_{table}"
    staging = f"{target}__staging"
    select = ", ".join(
        quote_ident(c) if pg_type(t) != "jsonb" else f"to_json({quote_ident(c)})::VARCHAR"
        for c, t, *_ in columns
    )
    ident = sql.Identifier
    col_defs = sql.SQL(", ").join(
        sql.SQL("{} {}").format(ident(c), sql.SQL(pg_type(t))) for c, t, *_ in columns
    )
    rows = 0
    per_batch = batch_rows(settings.memory_limit, 64 * len(columns))
    try:
        with pg.transaction(), pg.cursor() as cur:
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident(schema)))
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}.{}").format(ident(schema), ident(staging)))
            cur.execute(sql.SQL("CREATE TABLE {}.{} ({})").format(ident(schema), ident(staging), col_defs))
            copy_sql = sql.SQL("COPY {}.{} FROM STDIN (FORMAT csv)").format(ident(schema), ident(staging))
            options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
            with cur.copy(copy_sql) as copy:
                for batch in duck.sql(f"SELECT {select} FROM {source}").to_arrow_reader(per_batch):
                    buf = io.BytesIO()
                    pacsv.write_csv(pa.Table.from_batches([batch]), buf, options)
                    copy.write(buf.getbuffer())
                    rows += batch.num_rows
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}.{}").format(ident(schema), ident(target)))
            cur.execute(
                sql.SQL("ALTER TABLE {}.{} RENAME TO {}").format(ident(schema), ident(staging), ident(target))
            )
    except psycopg.Error as e:
        raise LoadError(
            f"loading {ds}.{table} failed, nothing was changed: {str(e).strip().splitlines()[0]}",
            file=f"{schema}.{target}",
            hint="Check the server, then run the load again",
        ) from None
    logger.info("%s.%s -> %s.%s: %d rows", ds, table, schema, target, rows)
    return Loaded(f"{schema}.{target}", rows)
