"""What the warehouse holds and what each object is built from, as a fingerprint that changes when its inputs do.

A view's inputs are its definition, the files it reads (every string constant of its query that names an
existing file or a glob matching some: `read_parquet([...])`, `read_csv('…')`) and the objects it selects from,
followed down to base tables. DuckDB's own parser (`json_serialize_sql`) finds them. A base table has no
definition left once built, so its fingerprint is a hash of its rows, computed by DuckDB in one streaming scan.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from etl.sinks.duckdb import parse_query, quote_ident

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class WarehouseObject:
    """A table or view of the warehouse."""

    schema: str
    name: str
    kind: str  # table | view
    sql: str
    comment: str | None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


def catalogue(con: duckdb.DuckDBPyConnection) -> dict[str, WarehouseObject]:
    """Every table and view of the warehouse, by `schema.name`."""
    rows = con.execute(
        "SELECT schema_name, table_name, 'table', sql, comment FROM duckdb_tables() "
        "WHERE NOT internal AND NOT temporary AND database_name = current_database() "
        "UNION ALL SELECT schema_name, view_name, 'view', sql, comment FROM duckdb_views() "
        "WHERE NOT internal AND NOT temporary AND database_name = current_database() ORDER BY 1, 2"
    ).fetchall()
    objects = [WarehouseObject(*r) for r in rows]
    return {o.qualified: o for o in objects}


def fingerprint(
    con: duckdb.DuckDBPyConnection, obj: WarehouseObject, objects: dict[str, WarehouseObject], data_dir: Path
) -> str:
    """A hash of what `obj` is built from: definitions, the files read (name, size, mtime) and base tables' rows.

    A file is named as it is or relative to the data directory (the warehouse's views name theirs so).
    """
    h = hashlib.sha256()
    seen: set[str] = set()

    def visit(o: WarehouseObject) -> None:
        if o.qualified in seen:
            return
        seen.add(o.qualified)
        h.update(json.dumps([o.kind, o.qualified, o.sql]).encode())
        if o.kind == "table":
            h.update(repr(_rows_hash(con, o)).encode())
            return
        refs, constants = _references(con, o)
        for path in sorted(_files(constants, data_dir)):
            st = os.stat(path)
            h.update(json.dumps([path, st.st_size, st.st_mtime_ns]).encode())
        for ref in sorted({_resolve(r, o.schema, objects) for r in refs} - {None}):
            visit(objects[ref])

    visit(obj)
    return h.hexdigest()


def _rows_hash(con: duckdb.DuckDBPyConnection, table: WarehouseObject) -> tuple:
    """Row count and an order-independent sum of row hashes (duplicates count, unlike a XOR)."""
    return con.execute(f"SELECT count(*), sum(hash(__row)::HUGEINT) FROM {table.ident} AS __row").fetchall()[
        0
    ]


def _references(
    con: duckdb.DuckDBPyConnection, view: WarehouseObject
) -> tuple[set[tuple[str, str]], set[str]]:
    """The (schema, name) pairs a view selects from and the string constants of its query."""
    tree = _parse_body(con, view.sql)
    refs: set[tuple[str, str]] = set()
    constants: set[str] = set()
    for node in _nodes(tree):
        if node.get("type") == "BASE_TABLE":
            refs.add((node.get("schema_name") or "", node["table_name"]))
        elif node.get("class") == "CONSTANT" and node.get("literal", {}).get("kind") == "STRING":
            constants.add(node["literal"]["text"])
    return refs, constants


def _parse_body(con: duckdb.DuckDBPyConnection, create_view: str) -> dict:
    """The parse tree of `CREATE VIEW name AS <query>`'s query (DuckDB serialises SELECTs only)."""
    at = create_view.find(" AS ")
    while at >= 0:  # the first " AS " whose rest parses: a quoted view name may itself hold " AS "
        tree = parse_query(con, create_view[at + 4 :].rstrip().rstrip(";"))
        if tree:
            return tree
        at = create_view.find(" AS ", at + 1)
    return {}


def _nodes(tree: object) -> Iterator[dict]:
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _files(constants: set[str], data_dir: Path) -> set[str]:
    found = set()
    for text in constants:
        for name in (text, os.path.join(data_dir, text)):
            if any(c in name for c in "*?["):
                found.update(p for p in glob.glob(name, recursive=True) if os.path.isfile(p))
            elif os.path.isfile(name):
                found.add(name)
    return found


def _resolve(ref: tuple[str, str], schema: str, objects: dict[str, WarehouseObject]) -> str | None:
    """An unqualified name is looked up in the view's own schema, then in main, as DuckDB binds it."""
    ref_schema, name = ref
    for candidate in [ref_schema] if ref_schema else [schema, "main"]:
        if f"{candidate}.{name}" in objects:
            return f"{candidate}.{name}"
    return None  # a CTE, or a name outside the warehouse
