"""`etl sql`: a query over the warehouse, opened read-only under the budget, written as a table, CSV or JSON."""

from __future__ import annotations

import csv
import json
import logging
from typing import TextIO

from etl.config import Settings
from etl.errors import EtlError

logger = logging.getLogger(__name__)

FORMATS = ("table", "csv", "json")


def run_query(settings: Settings, query: str, fmt: str, limit: int, out: TextIO) -> None:
    """Run query on the warehouse and write its rows to out; the table format shows the first `limit` rows."""
    from etl.sinks.duckdb import connect

    if not settings.warehouse.exists():
        raise EtlError(f"no warehouse at {settings.warehouse}", hint="Run `etl run` (or `make etl`) first")
    con = connect(settings, settings.warehouse, read_only=True, preserve_order=True)
    try:
        try:
            rel = con.sql(query)
        except Exception as e:
            raise EtlError(
                str(e).splitlines()[0], hint="Check the query; `etl sql 'SHOW ALL TABLES'` lists tables"
            ) from None
        if rel is None:
            return
        if fmt == "table":
            from etl.render import show

            head = rel.limit(limit + 1).to_arrow_table()  # one more row says whether there are more
            show(con.from_arrow(head.slice(0, limit)), limit)
            if head.num_rows > limit:
                logger.warning("first %d rows shown; use --limit or --format csv for all", limit)
            return
        reader = rel.to_arrow_reader(10_000)
        if fmt == "csv":
            w = csv.writer(out, lineterminator="\n")
            w.writerow(reader.schema.names)
            for batch in reader:
                w.writerows(zip(*(c.to_pylist() for c in batch.columns), strict=True))
        else:
            for batch in reader:
                for row in batch.to_pylist():
                    out.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
    finally:
        con.close()
