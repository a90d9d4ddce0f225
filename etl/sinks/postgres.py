"""Publishing warehouse tables and views to PostgreSQL: streamed through COPY into a staging table, swapped in atomically.

Any table or view of the warehouse can be published: the datasets (views over the converted Parquet), staging
views, marts and reference tables. Each is loaded in one transaction: create a staging table, COPY the rows in
bounded Arrow batches (written as CSV by pyarrow), carry the comments over, then drop the live table and rename
the staging one. Readers see the old table until the commit and the new one after; a failure rolls everything
back, leaving the live table as it was. A table whose inputs have not changed since its last load into the same
database is skipped (the `published` records of the state store, see etl/sinks/lineage.py).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from etl.config import Settings
from etl.errors import ConfigError, LoadError
from etl.memory import batch_rows
from etl.reference import SCHEMA as REF_SCHEMA
from etl.sinks.duckdb import connect, quote_ident
from etl.sinks.lineage import WarehouseObject, catalogue, fingerprint
from etl.state import StateStore

logger = logging.getLogger(__name__)

DEFAULT_DSN_ENV = "ETL_PG_DSN"


@dataclass
class PublishOptions:
    """The `[publish.postgres]` section of etl.toml."""

    dsn_env: str = field(default=DEFAULT_DSN_ENV, metadata={"help": "variable holding the DSN"})
    schema: str = field(default="etl", metadata={"help": "target schema"})
    tables: list[str] = field(
        default_factory=list,
        metadata={
            "help": "schema.name of tables or views, * as a wildcard (default: every dataset table and mart)"
        },
    )


@dataclass
class Published:
    """One warehouse object's outcome: loaded (and why) or skipped (and why)."""

    source: str  # schema.name in the warehouse
    table: str  # schema.table in PostgreSQL
    status: str  # loaded | skipped
    reason: str
    rows: int = 0
    seconds: float = 0.0


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def mask(dsn: str) -> str:
    """The DSN with any password hidden, for messages and logs."""
    dsn = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn, flags=re.IGNORECASE)


# DuckDB type id -> PostgreSQL type.
_SCALARS = {
    "boolean": "boolean",
    "tinyint": "smallint",
    "smallint": "smallint",
    "integer": "integer",
    "bigint": "bigint",
    "utinyint": "smallint",
    "usmallint": "integer",
    "uinteger": "bigint",
    "ubigint": "numeric(20)",
    "hugeint": "numeric(39)",
    "uhugeint": "numeric(39)",
    "bignum": "numeric",
    "float": "real",
    "double": "double precision",
    "date": "date",
    "time": "time",
    "time with time zone": "timetz",
    "timestamp": "timestamp",
    "timestamp_s": "timestamp",
    "timestamp_ms": "timestamp",
    "timestamp_ns": "timestamp",
    "timestamp with time zone": "timestamptz",
    "interval": "interval",
    "varchar": "text",
    "enum": "text",
    "uuid": "uuid",
    "blob": "bytea",
    "bit": "varbit",
}
# Arrow's CSV writer writes these as PostgreSQL reads them; other scalars are written as DuckDB's text for them.
_ARROW_CSV = {
    "boolean", "tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger", "ubigint",
    "float", "double", "date", "time", "timestamp", "timestamp_s", "timestamp_ms", "timestamp with time zone",
    "varchar", "decimal",
}  # fmt: skip


def _scalar_type(t: duckdb.DuckDBPyType) -> str | None:
    if t.id == "decimal":
        p = dict(t.children)
        return f"numeric({p['precision']},{p['scale']})"
    return _SCALARS.get(t.id)


def _as_text(expr: str, t: duckdb.DuckDBPyType) -> str:
    if t.id == "blob":
        return f"('\\x' || hex({expr}))"
    if t.id == "timestamp_ns":  # PostgreSQL keeps microseconds
        return f"CAST({expr} AS TIMESTAMP)::VARCHAR"
    return f"CAST({expr} AS VARCHAR)"


def pg_column(column: str, t: duckdb.DuckDBPyType) -> tuple[str, str]:
    """The PostgreSQL type of a DuckDB column and the SELECT expression that writes it as COPY's CSV reads it.

    Scalars map to their PostgreSQL peers, lists and arrays of scalars to PostgreSQL arrays, and structs,
    maps, unions and lists of those to jsonb.
    """
    col = quote_ident(column)
    if str(t) == "JSON":  # DuckDB's JSON is VARCHAR by id
        return "jsonb", col
    scalar = _scalar_type(t)
    if scalar:
        return scalar, col if t.id in _ARROW_CSV else _as_text(col, t)
    if t.id in ("list", "array"):
        child = dict(t.children)["child"]
        element = _scalar_type(child)
        if element:  # an array literal, every element quoted: {"1",NULL,"a \"b\""}
            quoted = (
                f"""CASE WHEN x IS NULL THEN 'NULL' ELSE '"' || replace(replace({_as_text("x", child)}, """
                """'\\', '\\\\'), '"', '\\"') || '"' END"""
            )
            return (
                f"{element}[]",
                f"('{{' || array_to_string(list_transform({col}, lambda x: {quoted}), ',') || '}}')",
            )
    if t.id in ("list", "array", "struct", "map", "union"):
        return "jsonb", f"CAST(to_json({col}) AS VARCHAR)"
    return "text", _as_text(col, t)


def default_tables(objects: dict[str, WarehouseObject]) -> list[WarehouseObject]:
    """Every dataset table and mart: all but the staging views (`stg_*`), main's `<dataset>` aliases and the
    reference tables (schema `ref`, loaded when named)."""
    return [
        o for o in objects.values() if o.schema not in ("main", REF_SCHEMA) and not o.name.startswith("stg_")
    ]


def choose(objects: dict[str, WarehouseObject], names: list[str] | None) -> list[WarehouseObject]:
    """The objects named (`schema.name`, or patterns with `*`), in the order given; all by default."""
    if not names:
        return default_tables(objects)
    chosen: dict[str, WarehouseObject] = {}
    for name in names:
        matches = fnmatch.filter(objects, name) if "*" in name else [name] if name in objects else []
        if not matches:
            raise ConfigError(
                f"no table or view {name!r} in the warehouse",
                hint=f"It has: {', '.join(objects) or 'nothing (run `etl run` first)'}",
            )
        chosen.update((m, objects[m]) for m in matches)
    return list(chosen.values())


def target_name(obj: WarehouseObject) -> str:
    return f"{obj.schema}_{obj.name}"


class Publisher:
    """The warehouse (read-only), a PostgreSQL connection and the state store, publishing one object at a time."""

    def __init__(self, settings: Settings, dsn: str, *, schema: str = "etl", force: bool = False):
        if not settings.warehouse.exists():
            raise LoadError(f"no warehouse at {settings.warehouse}", hint="Run `etl run` first")
        self.settings, self.schema, self.force = settings, schema, force
        # Order is not kept: a PostgreSQL table has none, and DuckDB then streams without buffering batches.
        self.duck = connect(settings, settings.warehouse, read_only=True)
        try:
            self.objects = catalogue(self.duck)
            self.pg = psycopg.connect(dsn, connect_timeout=10, autocommit=True)
        except psycopg.Error as e:
            self.duck.close()
            raise LoadError(
                f"cannot connect to {mask(dsn)}: {_first_line(e)}",
                hint="Check the DSN (ETL_PG_DSN) and that the server is up",
            ) from None
        info = self.pg.info
        self.destination = f"{info.host}:{info.port}/{info.dbname}"
        self.state = StateStore(settings.state_db)

    def close(self) -> None:
        self.state.close()
        self.pg.close()
        self.duck.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def chosen(self, names: list[str] | None) -> list[WarehouseObject]:
        objects = choose(self.objects, names)
        targets: dict[str, str] = {}
        for o in objects:
            other = targets.setdefault(target_name(o), o.qualified)
            if other != o.qualified:
                raise ConfigError(
                    f"{other} and {o.qualified} would both be published as {self.schema}.{target_name(o)}",
                    hint="Publish one of them, or rename it in the warehouse",
                )
        return objects

    def publish(self, obj: WarehouseObject) -> Published:
        """Load one table or view, unless its inputs are those of its last load into this database."""
        start = time.perf_counter()
        target = target_name(obj)
        try:
            relation = self.duck.sql(f"SELECT * FROM {obj.ident}")
            columns = [(c, *pg_column(c, t)) for c, t in zip(relation.columns, relation.types, strict=True)]
            comments = self._column_comments(obj)
            digest = hashlib.sha256(
                json.dumps(
                    [fingerprint(self.duck, obj, self.objects), columns, obj.comment, comments]
                ).encode()
            ).hexdigest()
        except duckdb.Error as e:
            raise LoadError(
                f"cannot read {obj.qualified} in the warehouse: {_first_line(e)}",
                hint="Rebuild the warehouse (`etl run` or `etl transform`) and check its SQL",
            ) from None
        qualified = f"{self.schema}.{target}"
        reason = self._reason(target, digest)
        if reason.startswith("unchanged"):
            logger.info("%s -> %s: skipped, %s", obj.qualified, qualified, reason)
            return Published(obj.qualified, qualified, "skipped", reason)
        rows = self._copy(obj, target, columns, comments)
        self.state.put_published(self.destination, qualified, obj.qualified, digest, rows)
        seconds = round(time.perf_counter() - start, 3)
        logger.info("%s -> %s: %d rows (%s), %.1fs", obj.qualified, qualified, rows, reason, seconds)
        return Published(obj.qualified, qualified, "loaded", reason, rows, seconds)

    def _reason(self, target: str, digest: str) -> str:
        last = self.state.get_published(self.destination, f"{self.schema}.{target}")
        if self.force:
            return "forced"
        if last is None:
            return "first load"
        exists = self.pg.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (self.schema, target),
        ).fetchone()
        if not exists:
            return "missing in PostgreSQL"
        if last["fingerprint"] != digest:
            return "inputs changed"
        loaded_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(last["loaded_at"]))
        return f"unchanged since its load at {loaded_at}"

    def _column_comments(self, obj: WarehouseObject) -> dict[str, str]:
        return dict(
            self.duck.execute(
                "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                "AND comment IS NOT NULL AND database_name = current_database()",
                [obj.schema, obj.name],
            ).fetchall()
        )

    def _copy(self, obj: WarehouseObject, target: str, columns: list, comments: dict[str, str]) -> int:
        ident, schema = sql.Identifier, sql.Identifier(self.schema)
        staging = ident(f"{target}__staging")
        col_defs = sql.SQL(", ").join(sql.SQL("{} {}").format(ident(c), sql.SQL(t)) for c, t, _ in columns)
        select = ", ".join(expr for _, _, expr in columns)
        per_batch = batch_rows(self.settings.memory_limit, 64 * len(columns))
        options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
        rows = 0
        try:
            with self.pg.transaction(), self.pg.cursor() as cur:
                cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}.{}").format(schema, staging))
                cur.execute(sql.SQL("CREATE TABLE {}.{} ({})").format(schema, staging, col_defs))
                copy_sql = sql.SQL("COPY {}.{} FROM STDIN (FORMAT csv)").format(schema, staging)
                reader = self.duck.sql(f"SELECT {select} FROM {obj.ident}").to_arrow_reader(per_batch)
                with cur.copy(copy_sql) as copy:
                    for block, n in _csv_blocks(reader, options):
                        copy.write(block)
                        rows += n
                if obj.comment:
                    cur.execute(
                        sql.SQL("COMMENT ON TABLE {}.{} IS {}").format(
                            schema, staging, sql.Literal(obj.comment)
                        )
                    )
                for column, comment in comments.items():
                    cur.execute(
                        sql.SQL("COMMENT ON COLUMN {}.{}.{} IS {}").format(
                            schema, staging, ident(column), sql.Literal(comment)
                        )
                    )
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}.{}").format(schema, ident(target)))
                cur.execute(sql.SQL("ALTER TABLE {}.{} RENAME TO {}").format(schema, staging, ident(target)))
        except (psycopg.Error, duckdb.Error) as e:  # DuckDB's: a Parquet file gone or unreadable mid-load
            raise LoadError(
                f"loading {obj.qualified} failed, nothing was changed: {_first_line(e)}",
                file=f"{self.schema}.{target}",
                hint="Check the server and the warehouse's files, then run the load again",
            ) from None
        return rows


_DONE = object()


def _csv_blocks(
    reader: pa.RecordBatchReader, options: pacsv.WriteOptions
) -> Iterator[tuple[memoryview, int]]:
    """The reader's batches as CSV blocks (and their rows), made in a thread of their own.

    DuckDB and pyarrow release the GIL, so the next block is read and written while this one goes to the server;
    at most two blocks wait, which bounds the memory.
    """
    blocks: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                blocks.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for batch in reader:
                buf = io.BytesIO()
                pacsv.write_csv(batch, buf, options)
                if not put((buf.getbuffer(), batch.num_rows)):
                    return
        except BaseException as e:  # handed to the consumer, which raises it
            put(e)
            return
        put(_DONE)

    worker = threading.Thread(target=produce, name="csv-blocks", daemon=True)
    worker.start()
    try:
        while (item := blocks.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def load(
    settings: Settings, dsn: str, *, schema: str = "etl", tables: list[str] | None = None, force: bool = False
) -> Iterator[Published]:
    """Publish the warehouse's tables and views (`tables`, or every dataset table and mart) under `schema`."""
    with Publisher(settings, dsn, schema=schema, force=force) as publisher:
        for obj in publisher.chosen(tables):
            yield publisher.publish(obj)
