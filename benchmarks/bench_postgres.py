"""PostgreSQL: loading a dataset (etl vs executemany vs raw COPY of CSV) and extracting a table (etl vs fetchall).

Targets (issues 5 and 18): a 20M-row dataset (a view over Parquet, as `etl run` makes them) loaded within 1.5x
of a raw COPY of the same rows as CSV and >= 10x executemany, peak RSS under the budget; loading it again with
nothing changed is skipped; extract a table with peak RSS under the budget (256 MB).
Rows: ETL_BENCH_PG_ROWS (default 20,000,000); executemany runs on ETL_BENCH_PG_SAMPLE rows (default 100,000) and
is extrapolated; the extract reads ETL_BENCH_PG_EXTRACT_ROWS of the loaded table (default 3,000,000).
"""

from __future__ import annotations

import os
import shutil
import sys

from benchmarks.common import WORK, Measure, python, run, write_table

# A dataset shaped like DATASUS hospital admissions, in four Parquet files as a conversion writes them.
SETUP = """
import duckdb, sys
warehouse, rows, csv, parquet = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
con = duckdb.connect(warehouse)
select = (
    "SELECT i AS id, lpad(((i * 7919) % 5570)::VARCHAR, 6, '3') AS munic_res, ['M', 'F'][i % 2 + 1] AS sexo, "
    "DATE '1940-01-01' + ((i * 31) % 30000)::INT AS nasc, DATE '2020-01-01' + (i % 1500)::INT AS dt_inter, "
    "(i % 100000) / 100 :: DECIMAL(12, 2) AS val_tot, i % 37 = 0 AS morte, "
    "chr((65 + i % 26)::INTEGER) || lpad((i % 1000)::VARCHAR, 3, '0') AS diag_princ, (i % 90)::INTEGER AS idade "
    "FROM range({start}, {stop}) t(i)"
)
files = []
for k in range(4):
    path = f"{parquet}/part{k}.parquet"
    con.execute(f"COPY ({select.format(start=k * rows // 4, stop=(k + 1) * rows // 4)}) TO '{path}' (FORMAT parquet)")
    files.append(path)
con.execute("CREATE SCHEMA IF NOT EXISTS bench")
con.execute(f"CREATE OR REPLACE VIEW bench.records AS SELECT * FROM read_parquet({files!r})")
con.execute(f"COPY bench.records TO '{csv}' (HEADER false)")
"""
COLUMNS = (
    "id bigint, munic_res text, sexo text, nasc date, dt_inter date, val_tot numeric(12,2), morte boolean, "
    "diag_princ text, idade integer"
)
EXECUTEMANY = f"""
import duckdb, psycopg, sys
rows = duckdb.connect(sys.argv[2], read_only=True).sql(f"SELECT * FROM bench.records LIMIT {{sys.argv[3]}}").fetchall()
with psycopg.connect(sys.argv[1]) as c:
    c.execute("DROP TABLE IF EXISTS naive"); c.execute("CREATE TABLE naive ({COLUMNS})")
    with c.cursor() as cur:
        cur.executemany("INSERT INTO naive VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
"""
RAW_COPY = f"""
import psycopg, sys
with psycopg.connect(sys.argv[1]) as c:
    c.execute("DROP TABLE IF EXISTS raw"); c.execute("CREATE TABLE raw ({COLUMNS})")
    with c.cursor() as cur, cur.copy("COPY raw FROM STDIN (FORMAT csv)") as copy, open(sys.argv[2], "rb") as f:
        while block := f.read(1 << 20):
            copy.write(block)
"""
FETCHALL = """
import psycopg, sys
with psycopg.connect(sys.argv[1]) as c:
    rows = c.execute(f"SELECT * FROM etl.bench_records LIMIT {sys.argv[2]}").fetchall()
print(len(rows))
"""


def main() -> None:
    import pgserver

    rows = int(os.environ.get("ETL_BENCH_PG_ROWS", 20_000_000))
    sample = int(os.environ.get("ETL_BENCH_PG_SAMPLE", 100_000))
    extract_rows = min(rows, int(os.environ.get("ETL_BENCH_PG_EXTRACT_ROWS", 3_000_000)))
    work = WORK / "pg"
    shutil.rmtree(work, ignore_errors=True)
    (work / "data/parquet").mkdir(parents=True)
    server = pgserver.get_server(work / "pgdata", cleanup_mode="stop")
    dsn = server.get_uri()
    warehouse, csv, parquet = work / "data/warehouse.duckdb", work / "records.csv", work / "data/parquet"
    setup = run(
        "(setup: the dataset and its CSV)",
        [*python(SETUP), str(warehouse), str(rows), str(csv), str(parquet)],
        csv,
    )
    if not setup.ok:
        raise SystemExit(f"setup failed: {setup.note}")
    etl = [sys.executable, "-m", "etl.cli", "--quiet", "--data-dir", str(work / "data")]
    load_argv = [
        *etl,
        "--memory-limit",
        "256MB",
        "load",
        "postgres",
        "--dsn",
        dsn,
        "--tables",
        "bench.records",
    ]
    # etl and the raw COPY in turn, paired: the ratio of each pair holds while the machine's speed drifts.
    pairs = [
        (
            run(f"etl load postgres ({rows:,} rows, 256MB) #{i + 1}", [*load_argv, "--force"], parquet),
            run(f"raw COPY of the CSV (psycopg) #{i + 1}", [*python(RAW_COPY), dsn, str(csv)], csv),
        )
        for i in range(int(os.environ.get("ETL_BENCH_PG_PAIRS", 2)))
    ]
    m: list[Measure] = [
        *(x for pair in pairs for x in pair),
        run("etl load postgres again (unchanged)", load_argv, parquet, note="skipped: inputs unchanged"),
        run(
            f"executemany ({sample:,} rows)",
            [*python(EXECUTEMANY), dsn, str(warehouse), str(sample)],
            parquet,
            note=f"a slice: extrapolated x{rows / sample:g} below",
        ),
        run(
            f"etl extract postgres ({extract_rows:,} rows, 256MB)",
            [
                *etl,
                "--memory-limit",
                "256MB",
                "extract",
                "postgres",
                "--dsn",
                dsn,
                "--query",
                f"SELECT * FROM etl.bench_records LIMIT {extract_rows}",
                "--out",
                str(work / "out"),
            ],
            work / "out",
        ),
        run(
            "fetchall()", [*python(FETCHALL), dsn, str(extract_rows)], work / "out", note="no output written"
        ),
    ]
    server.cleanup()
    again, many, extract, fetchall = m[-4:]
    load = min((e for e, _ in pairs), key=lambda x: x.wall)
    ratios = sorted(e.wall / r.wall for e, r in pairs)
    many_full = many.wall * rows / sample
    notes = [
        "- etl and the raw COPY ran in turn, pair by pair, in this one run.",
        f"- Load of a {rows:,}-row dataset (a view over 4 Parquet files): etl {rows / load.wall:,.0f} rows/s at "
        f"best, peak RSS {max(e.peak_rss_mb for e, _ in pairs):.0f} MB at a 256 MB budget; etl / raw COPY of the "
        f"same rows as CSV, pair by pair: {', '.join(f'{x:.2f}x' for x in ratios)} (target <= 1.5x; etl also "
        "reads the Parquet, writes the CSV and swaps the table). executemany "
        f"{sample / many.wall:,.0f} rows/s, measured on {sample:,} rows and extrapolated (~{many_full:,.0f} s for "
        f"all rows): etl {many_full / load.wall:.0f}x faster (target >= 10x).",
        f"- Loading again with nothing changed: {again.wall:.1f} s (the view's Parquet files and definition are "
        "fingerprinted; no row is read).",
        f"- Extract: etl peak RSS {extract.peak_rss_mb:.0f} MB at a 256 MB budget ({extract.wall:.1f} s); "
        f"fetchall() {fetchall.peak_rss_mb:.0f} MB ({fetchall.wall:.1f} s).",
    ]
    write_table("postgres", "PostgreSQL load and extract", m, notes)


if __name__ == "__main__":
    main()
