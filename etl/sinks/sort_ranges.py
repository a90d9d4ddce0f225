"""A sorted table too large for DuckDB's sort, built in ranges of its first sort key.

DuckDB's sort of rows many times its memory_limit runs out of memory where a sort of a part of them does not
(2.0.1: a full ORDER BY of 3.4 GB of Parquet needs ~150 MiB, an eighth of it sorts in 106 MiB). When a transform's
`CREATE [OR REPLACE] TABLE name AS SELECT … ORDER BY c, …` fails so, and its sort keys are columns of its result,
it runs again in parts: the query without its ORDER BY fills a temporary table (no sort: it streams, and spills);
ranges of `c` are cut at quantiles of a sample of it, as many as its size is times the memory limit; each range,
sorted by the statement's own ORDER BY, is appended to the table in the order of `c`, so the table holds the rows in
the statement's order. A range that still does not fit is cut in two at its median; one that cannot be cut (a
single value of `c`) fails with DuckDB's error.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from collections import deque

import duckdb

from etl.memory import parse_size
from etl.sinks.duckdb import parse_query, quote_ident

logger = logging.getLogger(__name__)

_NAME = r'(?:"(?:[^"]|"")*"|[^\s".()]+)'
CREATE_TABLE_AS = re.compile(
    rf"\s*CREATE\s+(?P<replace>OR\s+REPLACE\s+)?TABLE\s+(?P<name>{_NAME}(?:\.{_NAME})*)\s+AS\s+(?P<query>.*?)[\s;]*",
    re.IGNORECASE | re.DOTALL,
)
SCRATCH = "_etl_unsorted"
SAMPLE_ROWS = 100_000


def create_sorted_in_ranges(con: duckdb.DuckDBPyConnection, statement: str) -> bool:
    """Run `statement` in ranges of its first sort key; False when it is not such a statement (nothing ran)."""
    m = CREATE_TABLE_AS.fullmatch(statement)
    tree = parse_query(con, m["query"]) if m else None
    node = tree["statements"][0]["node"] if tree else None
    if (
        not node
        or node["type"] != "SELECT_NODE"
        or [x["type"] for x in node["modifiers"]] != ["ORDER_MODIFIER"]
    ):
        return False
    orders = node["modifiers"][0]["orders"]
    node["modifiers"] = []
    unsorted = _text(con, tree)
    columns = {r[0].lower(): r[0] for r in con.execute(f"DESCRIBE {unsorted}").fetchall()}
    keys = [o["expression"].get("column_names", [""])[-1].lower() for o in orders]
    if any(o["expression"]["class"] != "COLUMN_REF" for o in orders) or not all(k in columns for k in keys):
        return False
    for order, key in zip(orders, keys, strict=True):  # the keys as columns of the temporary table
        order["expression"]["column_names"] = [columns[key]]
    key = quote_ident(columns[keys[0]])
    descending, nulls_first = _direction(con, orders[0])
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SCRATCH} AS {unsorted}")
    done = 0
    try:
        ranges = deque(_ranges(con, key, descending, nulls_first))
        create = f"CREATE {m['replace'] or ''}TABLE {m['name']} AS "
        while ranges:
            lo, hi = ranges.popleft()
            where, params = _where(key, lo, hi)
            sort = parse_query(con, f"SELECT * FROM {SCRATCH} WHERE {where}")
            sort["statements"][0]["node"]["modifiers"] = [{"type": "ORDER_MODIFIER", "orders": orders}]
            try:
                con.execute((create if done == 0 else f"INSERT INTO {m['name']} ") + _text(con, sort), params)
            except duckdb.OutOfMemoryException:
                ranges.extendleft(reversed(_halves(con, key, lo, hi, descending)))
                continue
            done += 1
        logger.info(
            "%s: sorted in %d ranges of %s (the whole sort did not fit in memory)", m["name"], done, key
        )
    except duckdb.Error:
        if done:  # no half-built table (the new warehouse is discarded then, with what OR REPLACE replaced)
            con.execute(f"DROP TABLE IF EXISTS {m['name']}")
        raise
    finally:
        con.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
    return True


Range = tuple  # (lo, hi): lo <= key < hi, None unbounded; (NULL_KEYS, None) the NULL keys
NULL_KEYS = "null"


def _ranges(con: duckdb.DuckDBPyConnection, key: str, descending: bool, nulls_first: bool) -> list[Range]:
    """Ranges of the first key in the order the statement sorts it, about a memory limit of rows each."""
    rows, width, nulls = con.execute(
        f"SELECT (SELECT count(*) FROM {SCRATCH}), "
        f"(SELECT avg(strlen(CAST(t AS VARCHAR))) FROM (FROM {SCRATCH} USING SAMPLE 10000 ROWS) t), "
        f"(SELECT count(*) > 0 FROM {SCRATCH} WHERE {key} IS NULL)"
    ).fetchall()[0]
    limit = parse_size(
        con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0].replace(" ", "")
    )
    parts = max(2, math.ceil(rows * (width or 0) / limit))
    cuts = _quantiles(con, key, None, None, [i / parts for i in range(1, parts)])
    bounds = [None, *sorted({c for c in cuts or [] if c is not None}), None]
    ranges = list(itertools.pairwise(bounds))
    ranges = ranges[::-1] if descending else ranges
    if not nulls:
        return ranges
    return [(NULL_KEYS, None), *ranges] if nulls_first else [*ranges, (NULL_KEYS, None)]


def _halves(con: duckdb.DuckDBPyConnection, key: str, lo, hi, descending: bool) -> list[Range]:
    """A range that did not fit, cut at its median; DuckDB's error when it is a single value."""
    median = None if lo == NULL_KEYS else _quantiles(con, key, lo, hi, 0.5)
    if median is None or median == lo:
        value = "NULL" if lo == NULL_KEYS else repr(median)
        raise duckdb.OutOfMemoryException(
            f"Out of Memory Error: a sort of the rows where {key} is {value} does not fit in memory"
        )
    return [(median, hi), (lo, median)] if descending else [(lo, median), (median, hi)]


def _quantiles(con: duckdb.DuckDBPyConnection, key: str, lo, hi, fractions):
    """quantile_disc of the key over a sample of the range's rows (a value, or a list for a list of fractions)."""
    where, params = _where(key, lo, hi)
    return con.execute(
        f"SELECT quantile_disc({key}, ?) FROM (SELECT {key} FROM {SCRATCH} WHERE {where}) "
        f"USING SAMPLE reservoir({SAMPLE_ROWS} ROWS)",
        [fractions, *params],
    ).fetchall()[0][0]


def _direction(con: duckdb.DuckDBPyConnection, order: dict) -> tuple[bool, bool]:
    """Whether the statement sorts its first key descending, and its NULLs first (DuckDB's defaults if unsaid)."""
    descending = order["type"] == "DESCENDING" or (
        order["type"] == "ORDER_DEFAULT" and _setting(con, "default_order") == "DESCENDING"
    )
    if order["null_order"] != "ORDER_DEFAULT":
        return descending, order["null_order"] == "NULLS FIRST"
    default = _setting(con, "default_null_order")  # NULLS_LAST, NULLS_FIRST, NULLS_FIRST_ON_ASC_LAST_ON_DESC…
    return descending, default.startswith("NULLS_FIRST") != (descending and "_ON_" in default)


def _where(key: str, lo, hi) -> tuple[str, list]:
    if lo == NULL_KEYS:
        return f"{key} IS NULL", []
    terms = [(f"{key} >= ?", lo), (f"{key} < ?", hi)]
    kept = [(t, v) for t, v in terms if v is not None]
    return " AND ".join([t for t, _ in kept] or [f"{key} IS NOT NULL"]), [v for _, v in kept]


def _text(con: duckdb.DuckDBPyConnection, tree: dict) -> str:
    return con.execute("SELECT json_deserialize_sql(?::JSON)", [json.dumps(tree)]).fetchall()[0][0]


def _setting(con: duckdb.DuckDBPyConnection, name: str) -> str:
    return con.execute("SELECT upper(current_setting(?))", [name]).fetchall()[0][0]
