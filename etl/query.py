"""Read-only queries on the warehouse under the memory budget: `etl sql`, `etl tables|describe|shell`, notebooks.

A query connection opens the warehouse read-only, gives DuckDB a memory limit sized from the budget and a spill
directory of its own under data/tmp/, then closes itself: DuckDB may read only the Parquet zone, the marts, the
reference tables and the paths the user names (`allowed_directories`/`allowed_paths` with
`enable_external_access` off), installs and loads no extension, and `lock_configuration` refuses any SET that
would undo this or lift the budget. DuckDB would still write inside the directories it may read (COPY, EXPORT,
ATTACH, `WITH … COPY`), so every statement is checked before it runs: only SELECT (node by node), EXPLAIN and
CALL of one, transactions and the pragmas that show the catalogue pass.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import decimal
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from etl.config import Settings
from etl.errors import EtlError
from etl.files import owner_alive, tmp_path
from etl.memory import MB
from etl.render import show
from etl.sinks.duckdb import connect as duckdb_connect
from etl.sinks.duckdb import hint, quote_ident

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

# A query's Python side holds one batch of results: DuckDB gets all the budget but the interpreter's share, as
# when the warehouse is built (measured: 15M rows, 7.8M groups at 256MB).
QUERY_SHARE, QUERY_RESERVE = 1.0, 190 * MB
BATCH_ROWS = 10_000
# What a query may run: SELECT and transactions (a SELECT is checked node by node: DuckDB lets `WITH … COPY` write),
# pragmas that show the catalogue, and no function that runs other SQL text or writes logs, profiles or state.
READ_PRAGMAS = {
    "collations", "database_list", "database_size", "functions", "metadata_info", "platform", "show",
    "show_databases", "show_tables", "show_tables_expanded", "storage_info", "table_info", "user_agent", "version",
}  # fmt: skip
REFUSED_FUNCTIONS = {
    "query", "json_execute_serialized_sql", "enable_logging", "disable_logging", "truncate_duckdb_logs",
    "write_log", "enable_profiling", "disable_profiling", "enable_profile", "disable_profile", "copy_database",
    "add_grammar_extension", "remove_grammar_extension", "setval", "checkpoint", "force_checkpoint",
    "enable_checkpoint_on_shutdown", "disable_checkpoint_on_shutdown",
}  # fmt: skip
EXPLAIN = re.compile(r"^\s*explain\s*(\([^)]*\)|analy[sz]e)?", re.I)
READ_ONLY = "queries on the warehouse only read (no files written, databases attached, settings changed or extensions loaded)"
READ_ONLY_HINT = "Save results with `etl sql --format csv|json … > FILE`; read other files with --allow-path"


class ReadOnlyError(EtlError):
    """A statement that would write files, attach a database or load an extension was refused."""


def spill_dir(settings: Settings) -> Path:
    """A spill directory for this connection: DuckDB names its spill files alike in every process."""
    for old in settings.tmp_dir.glob("query.*.tmp"):  # left by a query that was killed
        if not owner_alive(old):
            shutil.rmtree(old, ignore_errors=True)
    return tmp_path(settings.tmp_dir / "query")


def readable_paths(settings: Settings, allow: list[Path]) -> tuple[list[str], list[str]]:
    """(directories, files) DuckDB may read: the Parquet zone, the marts, the reference tables shipped in the
    package (schema ref), and what the user named."""
    from etl.reference import DATA_DIR as REFERENCE_DIR

    dirs = [
        settings.parquet_dir,
        settings.marts_dir,
        REFERENCE_DIR,
        *(p for p in allow if p.is_dir()),
    ]
    files = [p for p in allow if not p.is_dir()]
    for p in allow:
        if not p.exists():
            raise EtlError(f"--allow-path {p}: no such file or directory")
    return [str(d.resolve()) + "/" for d in dirs], [str(f.resolve()) for f in files]


def connect(
    settings: Settings, allow: list[Path] | None = None, *, statement: str | None = None
) -> duckdb.DuckDBPyConnection:
    """A read-only, locked-down connection to the warehouse (see the module's docstring).

    With `statement`, insertion order is relaxed when that statement's result order does not depend on it.
    """
    import duckdb

    path = settings.warehouse
    if not path.exists():
        raise EtlError(f"no warehouse at {path}", hint="Run `etl run` (or `make etl`) first")
    dirs, files = readable_paths(settings, allow or [])
    spill = spill_dir(settings)
    try:
        con = duckdb_connect(
            settings, path, read_only=True, preserve_order=True, share=QUERY_SHARE, reserve=QUERY_RESERVE
        )
    except duckdb.Error as e:
        raise EtlError(
            f"cannot open the warehouse {path}: {str(e).splitlines()[0]}",
            hint="Rebuild it from the Parquet with `etl transform`",
        ) from None
    settings_sql = [
        ("temp_directory", str(spill)),
        ("allowed_directories", dirs),
        ("allowed_paths", files),
        ("autoinstall_known_extensions", False),
        ("autoload_known_extensions", False),
        ("allow_community_extensions", False),
        ("enable_external_access", False),  # after the lists: they can only be set while access is on
    ]
    if statement is not None and order_free(con, statement):
        settings_sql.append(("preserve_insertion_order", False))
    for name, value in settings_sql:
        con.execute(f"SET {name} = ?", [value])
    con.execute("SET lock_configuration = true")
    return con


def close(con: duckdb.DuckDBPyConnection) -> None:
    """Close a query connection and remove its spill directory."""
    spill = con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
    con.close()
    shutil.rmtree(spill, ignore_errors=True)


def order_free(con: duckdb.DuckDBPyConnection, statement: str) -> bool:
    """Whether the result's order is set by the query itself (a top-level ORDER BY or GROUP BY), not by the order
    rows were stored in: then DuckDB may read in parallel without keeping that order."""
    import duckdb

    try:
        ((text,),) = con.execute("SELECT json_serialize_sql(?)", [statement]).fetchall()
    except duckdb.Error:  # not a statement DuckDB can serialize: keep the order
        return False
    tree = json.loads(text)
    if tree.get("error") or len(tree["statements"]) != 1:
        return False
    node = tree["statements"][0]["node"]
    ordered = any(m.get("type") == "ORDER_MODIFIER" for m in node.get("modifiers", []))
    return ordered or bool(node.get("group_expressions"))


def check(con: duckdb.DuckDBPyConnection, text: str) -> None:
    """Refuse a script unless every statement only reads: SELECT (its functions checked), EXPLAIN and CALL of
    one, transactions, and the pragmas that show the catalogue."""
    for statement in con.extract_statements(text):
        _check(con, statement.type.name, statement.query)


def _check(con: duckdb.DuckDBPyConnection, kind: str, text: str) -> None:
    if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs the statement it explains
        inner = EXPLAIN.sub("", text, count=1)
        if inner != text:
            return check(con, inner)
    elif kind == "CALL":  # CALL f(…) is SELECT * FROM f(…)
        return _check(con, "SELECT", re.sub(r"^\s*call\b", "SELECT * FROM", text, count=1, flags=re.I))
    elif kind == "PRAGMA":
        name = re.match(r"\s*pragma\s+(\w+)", text, flags=re.I)
        if name and name.group(1).lower() in READ_PRAGMAS:
            return None
    elif kind == "TRANSACTION":
        return None
    elif kind == "SELECT":
        problem = _select_problem(con, text)
        if problem is None:
            return None
        raise ReadOnlyError(f"{problem} is refused: {READ_ONLY}", hint=READ_ONLY_HINT)
    what = "PIVOT without an IN (…) list of values" if kind == "MULTI" else f"{kind} statements"
    raise ReadOnlyError(f"{what} are refused: {READ_ONLY}", hint=READ_ONLY_HINT)


def _select_problem(con: duckdb.DuckDBPyConnection, text: str) -> str | None:
    """What in a SELECT writes or runs other SQL (a WITH … COPY, query(), …); None when it only reads."""
    ((serialized,),) = con.execute("SELECT json_serialize_sql(?)", [text]).fetchall()
    tree = json.loads(serialized)
    if tree.get("error"):
        return "a statement that cannot be checked"
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            kind, function = node.get("type"), node.get("function_name")
            if isinstance(kind, str) and kind.endswith("_QUERY_NODE"):
                return f"a WITH clause holding {kind.removesuffix('_QUERY_NODE')}"
            if isinstance(function, str) and (
                function in REFUSED_FUNCTIONS or "external_resource" in function
            ):
                return f"{function}()"
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


def run(con: duckdb.DuckDBPyConnection, text: str) -> duckdb.DuckDBPyRelation | None:
    """Check and run a script; its last statement's relation (None when it returns nothing)."""
    import duckdb

    try:
        check(con, text)
        return con.sql(text)
    except duckdb.Error as e:
        raise query_error(_positioned(con, text, e)) from None


def _positioned(con: duckdb.DuckDBPyConnection, text: str, error: Exception) -> Exception:
    """The error with DuckDB's `LINE 1: … ^` caret: the relation API leaves it off binder and catalog errors, and
    the same (checked, failing) script run directly has it."""
    import duckdb

    if "\nLINE " in str(error) or not isinstance(error, duckdb.BinderException | duckdb.CatalogException):
        return error
    try:
        con.execute(text).fetchall()
    except duckdb.Error as again:
        return again
    return error


def query_error(error: Exception) -> EtlError:
    """DuckDB's message whole (its candidates and the `LINE 1: … ^` caret), with a hint only where one helps."""
    text = str(error)
    if "Cannot access" in text and "disabled by configuration" in text:
        return EtlError(text, hint="Queries read the data directory only: name other files with --allow-path")
    if "Out of Memory" in text:  # DuckDB's "Possible solutions" are SETs, which queries may not run
        return EtlError(text.splitlines()[0], hint=hint(error))
    return EtlError(text)


def batches(rel: duckdb.DuckDBPyRelation) -> Iterator[pa.RecordBatch]:
    """The relation's rows in bounded Arrow batches; running out of memory while fetching gets the hint too."""
    import duckdb

    try:
        with rel.to_arrow_reader(BATCH_ROWS) as reader:
            yield from reader
    except duckdb.Error as e:
        raise query_error(e) from None


def _json_value(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):  # sum() of integers is a HUGEINT, which Arrow gives as a decimal
        return int(value) if value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, uuid.UUID | dt.timedelta):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _json(value: Any) -> str:
    return json.dumps(value, default=_json_value, ensure_ascii=False)


def write(
    con: duckdb.DuckDBPyConnection,
    rel: duckdb.DuckDBPyRelation,
    fmt: str,
    out: IO[str],
    *,
    limit: int = 1000,
) -> int:
    """Write the relation's rows to `out` as a table (its first `limit` rows), CSV, a JSON array or JSON lines.

    Lists, structs and maps print as JSON in tables and CSV too. Return how many rows the table left out (0 when
    it showed them all; more rows than that may follow). The statement runs as written, so that DuckDB's errors
    point into the user's text.
    """
    if fmt == "table":
        import pyarrow as pa

        head: list[pa.RecordBatch] = []
        for batch in batches(rel):
            head.append(batch)
            if sum(b.num_rows for b in head) > limit:
                break
        shown = pa.Table.from_batches(head, schema=head[0].schema) if head else None
        table = _nested_as_json(shown.slice(0, limit)) if shown else rel.limit(0).to_arrow_table()
        with contextlib.redirect_stdout(out):
            show(con.from_arrow(table), max(1, table.num_rows))
        return max(0, (shown.num_rows if shown else 0) - limit)
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(rel.columns)
        for batch in batches(rel):
            w.writerows(zip(*(c.to_pylist() for c in _nested_as_json(batch).columns), strict=True))
    elif fmt == "ndjson":
        for batch in batches(rel):
            out.writelines(_json(row) + "\n" for row in batch.to_pylist())
    else:
        separator = "\n"
        out.write("[")
        for batch in batches(rel):
            for row in batch.to_pylist():
                out.write(separator + _json(row))
                separator = ",\n"
        out.write("\n]\n" if separator != "\n" else "]\n")
    return 0


def _nested_as_json(data: pa.Table | pa.RecordBatch) -> pa.Table | pa.RecordBatch:
    """Lists, structs and maps as JSON text, other columns as they are."""
    import pyarrow as pa

    for i, field in enumerate(data.schema):
        if pa.types.is_nested(field.type):
            text = pa.array(
                [None if v is None else _json(v) for v in data.column(i).to_pylist()], pa.string()
            )
            data = data.set_column(i, field.name, text)
    return data


@dataclass
class Table:
    """A table or view of the warehouse: what `etl tables` lists."""

    schema: str
    name: str
    kind: str  # "table" or "view"
    rows: int | None  # None when counting failed (`error` says why)
    description: str | None
    error: str | None = None


def tables(con: duckdb.DuckDBPyConnection) -> list[Table]:
    """Every schema's tables and views with their row counts and comments."""
    import duckdb

    found = catalog(con)
    for table in found:
        try:
            table.rows = count(con, table)
        except duckdb.Error as e:
            table.error = str(e).splitlines()[0]
    return found


def count(con: duckdb.DuckDBPyConnection, table: Table) -> int:
    return con.execute(
        f"SELECT count(*) FROM {quote_ident(table.schema)}.{quote_ident(table.name)}"
    ).fetchall()[0][0]


@dataclass
class Column:
    name: str
    type: str
    nullable: bool
    description: str | None


def describe(con: duckdb.DuckDBPyConnection, name: str) -> tuple[Table, list[Column]]:
    """A table or view (`schema.name`, or a name unique among the schemas, `main` first): its columns and rows."""
    schema, _, bare = name.rpartition(".")
    known = [t for t in catalog(con) if t.name == bare and (t.schema == schema or not schema)]
    if not schema and len(known) > 1:
        known = [t for t in known if t.schema == "main"] or known
    if len(known) != 1:
        candidates = ", ".join(f"{t.schema}.{t.name}" for t in known)
        raise EtlError(
            f"{'several tables are' if known else 'no table or view is'} named {name!r}"
            + (f": {candidates}" if known else ""),
            hint="`etl tables` lists them; name one as schema.name",
        )
    (table,) = known
    columns = [
        Column(n, t, nullable, comment)
        for n, t, nullable, comment in con.execute(
            "SELECT column_name, data_type, is_nullable, comment FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ? AND table_name = ? "
            "ORDER BY column_index",
            [table.schema, table.name],
        ).fetchall()
    ]
    table.rows = count(con, table)
    return table, columns


def catalog(con: duckdb.DuckDBPyConnection) -> list[Table]:
    """The warehouse's tables and views (not yet counted)."""
    return [
        Table(schema, name, kind, None, comment)
        for schema, name, kind, comment in con.execute(
            "SELECT schema_name, table_name, 'table', comment FROM duckdb_tables() "
            "WHERE database_name = current_database() AND NOT internal AND NOT temporary "
            "UNION ALL SELECT schema_name, view_name, 'view', comment FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal AND NOT temporary ORDER BY 1, 2"
        ).fetchall()
    ]


class ReadOnlyConnection:
    """What `etl.explore.warehouse()` returns: the query connection, whose SQL is checked before it runs.

    Everything else (`.table()`, `.read_parquet()`, the relations' `.pl()`, `.df()`) is DuckDB's own.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, *, cursor: bool = False):
        self._con, self._cursor = con, cursor

    def sql(self, query: Any, *args: Any, **kwargs: Any) -> duckdb.DuckDBPyRelation:
        check(self._con, getattr(query, "query", query))
        return self._con.sql(query, *args, **kwargs)

    query = from_query = sql

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> ReadOnlyConnection:
        check(self._con, getattr(query, "query", query))
        self._con.execute(query, *args, **kwargs)
        return self

    def executemany(self, query: Any, *args: Any, **kwargs: Any) -> ReadOnlyConnection:
        check(self._con, getattr(query, "query", query))
        self._con.executemany(query, *args, **kwargs)
        return self

    def cursor(self) -> ReadOnlyConnection:
        return ReadOnlyConnection(self._con.cursor(), cursor=True)

    def close(self) -> None:
        self._con.close() if self._cursor else close(self._con)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def __enter__(self) -> ReadOnlyConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
