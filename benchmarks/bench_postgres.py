"""PostgreSQL: loading a mart (etl vs executemany vs raw COPY of CSV) and extracting a table (etl vs fetchall).

Targets (issue 5): load >= 10x executemany and within 1.5x of a raw COPY of the same data as CSV; extract a
10M-row table with peak RSS under the budget (256 MB). Rows: ETL_BENCH_PG_ROWS (default 10,000,000);
executemany runs on ETL_BENCH_PG_SAMPLE rows (default 100,000) and is extrapolated.
"""

from __future__ import annotations

import os
import shutil
import sys

from benchmarks.common import WORK, Measure, python, run, write_table

SETUP = """
import duckdb, sys
con = duckdb.connect(sys.argv[1])
con.execute("CREATE SCHEMA IF NOT EXISTS bench")
con.execute(f"CREATE OR REPLACE TABLE bench.sales AS SELECT i AS id, 'produto ' || (i % 5000) AS name, "
            f"(i % 100000) / 100 :: DECIMAL(12, 2) AS amount, DATE '2020-01-01' + (i % 1500)::INT AS day, "
            f"i % 2 = 0 AS paid FROM range({sys.argv[2]}) t(i)")
con.execute(f"COPY bench.sales TO '{sys.argv[3]}' (HEADER false)")
"""
EXECUTEMANY = """
import duckdb, psycopg, sys
rows = duckdb.connect(sys.argv[2], read_only=True).sql(f"SELECT * FROM bench.sales LIMIT {sys.argv[3]}").fetchall()
with psycopg.connect(sys.argv[1]) as c:
    c.execute("DROP TABLE IF EXISTS naive"); c.execute("CREATE TABLE naive (id bigint, name text, amount numeric(12,2), day date, paid boolean)")
    with c.cursor() as cur:
        cur.executemany("INSERT INTO naive VALUES (%s, %s, %s, %s, %s)", rows)
"""
RAW_COPY = """
import psycopg, sys
with psycopg.connect(sys.argv[1]) as c:
    c.execute("DROP TABLE IF EXISTS raw"); c.execute("CREATE TABLE raw (id bigint, name text, amount numeric(12,2), day date, paid boolean)")
    with c.cursor() as cur, cur.copy("COPY raw FROM STDIN (FORMAT csv)") as copy, open(sys.argv[2], "rb") as f:
        while block := f.read(1 << 20):
            copy.write(block)
"""
FETCHALL = """
import psycopg, sys
with psycopg.connect(sys.argv[1]) as c:
    rows = c.execute("SELECT * FROM etl.bench_sales").fetchall()
print(len(rows))
"""


def main() -> None:
    import pgserver

    rows = int(os.environ.get("ETL_BENCH_PG_ROWS", 10_000_000))
    sample = int(os.environ.get("ETL_BENCH_PG_SAMPLE", 100_000))
    work = WORK / "pg"
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    server = pgserver.get_server(work / "pgdata", cleanup_mode="stop")
    dsn = server.get_uri()
    warehouse, csv = work / "data/warehouse.duckdb", work / "sales.csv"
    run("(setup: the mart and its CSV)", [*python(SETUP), str(warehouse), str(rows), str(csv)], csv)
    etl = [sys.executable, "-m", "etl.cli", "--quiet", "--data-dir", str(work / "data")]
    m: list[Measure] = [
        run(
            f"etl load postgres ({rows:,} rows, 256MB)",
            [*etl, "--memory-limit", "256MB", "load", "postgres", "--dsn", dsn],
            warehouse,
        ),
        run("raw COPY of the CSV (psycopg)", [*python(RAW_COPY), dsn, str(csv)], csv),
        run(
            f"executemany ({sample:,} rows)",
            [*python(EXECUTEMANY), dsn, str(warehouse), str(sample)],
            warehouse,
            note=f"extrapolated x{rows / sample:g} below",
        ),
        run(
            f"etl extract postgres ({rows:,} rows, 256MB)",
            [
                *etl,
                "--memory-limit",
                "256MB",
                "extract",
                "postgres",
                "--dsn",
                dsn,
                "--table",
                "etl.bench_sales",
                "--out",
                str(work / "out"),
            ],
            work / "out",
        ),
        run("fetchall()", [*python(FETCHALL), dsn], work / "out", note="no output written"),
    ]
    server.cleanup()
    load, raw, many, extract, fetchall = m
    many_full = many.wall * rows / sample
    notes = [
        f"- Load: etl {rows / load.wall:,.0f} rows/s; executemany {sample / many.wall:,.0f} rows/s "
        f"(~{many_full:,.0f} s for all rows): etl {many_full / load.wall:.0f}x faster (target >= 10x); "
        f"raw COPY {raw.wall:.1f} s: etl / raw = {load.wall / raw.wall:.2f}x (target <= 1.5x; etl also "
        "reads the warehouse, writes the CSV and swaps the table).",
        f"- Extract: etl peak RSS {extract.peak_rss_mb:.0f} MB at a 256 MB budget ({extract.wall:.1f} s); "
        f"fetchall() {fetchall.peak_rss_mb:.0f} MB ({fetchall.wall:.1f} s).",
    ]
    write_table("postgres", "PostgreSQL load and extract", m, notes)


if __name__ == "__main__":
    main()
