"""Re-derive the shipped reference tables (etl/reference/data/*.parquet) from the shared CSVs.

    python -m etl.reference.build [SHARED_REFERENCE_DIR]   # default: ../shared/reference from the repository

The CSVs are read as text (codes keep their leading zeros), build.sql derives the tables, and each is written
sorted by its key with atomic renames, so a rebuild from unchanged sources gives the same rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

from etl.files import atomic_path
from etl.reference import DATA_DIR, TABLES, data_file
from etl.sinks.duckdb import quote_ident, quote_literal, run_sql_file

BUILD_SQL = Path(__file__).with_name("build.sql")
DEFAULT_SOURCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"


def build(source: Path, out_dir: Path = DATA_DIR) -> dict[str, int]:
    """Write every table of TABLES under out_dir from the CSVs in `source`; return their row counts."""
    con = duckdb.connect()
    try:
        for csv in sorted({f for files, _, _ in TABLES.values() for f in files}):
            path = Path(source) / csv
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing reference CSV")
            con.execute(
                f"CREATE TABLE {quote_ident('src_' + path.stem)} AS SELECT * FROM "
                f"read_csv({quote_literal(str(path))}, header = true, all_varchar = true, encoding = 'utf-8')"
            )
        run_sql_file(con, BUILD_SQL)
        counts = {}
        for table, (_, key, _) in TABLES.items():
            final = out_dir / data_file(table).name
            with atomic_path(final) as tmp:
                con.execute(
                    f"COPY (SELECT * FROM {quote_ident(table)} ORDER BY {quote_ident(key)}) "
                    f"TO {quote_literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd)"
                )
            counts[table] = con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()[0]
        return counts
    finally:
        con.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "source", nargs="?", type=Path, default=DEFAULT_SOURCE, help="the shared CSVs' folder"
    )
    args = parser.parse_args(argv)
    for table, rows in build(args.source).items():
        print(f"{table}: {rows:,} rows")


if __name__ == "__main__":
    main()
