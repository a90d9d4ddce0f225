"""CSV -> Parquet: etl against raw DuckDB COPY, Polars streaming and pandas in chunks, in one run.

Targets (issue 17): etl within 1.0x of the faster of the raw DuckDB COPY and Polars' scan_csv().sink_parquet() on
the same file in the same run, at 1 GB and at 5 GB; the 5 GB CSV at --memory-limit 512MB with peak RSS under 512 MB.
All three write zstd (etl level 1, the others their default level 3). Sizes can be scaled with ETL_BENCH_CSV_GB
(default "1,5").
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from benchmarks.common import WORK, Measure, python, run, write_table

ETL = [sys.executable, "-m", "etl.cli", "--quiet"]


def make_csv(path: Path, gb: float) -> Path:
    """A DATASUS-like export: `;`, quoted text with delimiters, dates, codes with leading zeros, decimals."""
    if path.exists():
        return path
    import duckdb

    rows = int(gb * 2**30 / 118)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    duckdb.sql(f"""COPY (SELECT i AS N_AIH, lpad((i * 7919 % 999999)::VARCHAR, 6, '0') AS MUNIC_RES,
        DATE '2015-01-01' + (i % 3000)::INT AS DT_INTER, (i % 2) + 1 AS SEXO, (i % 120) AS IDADE,
        'CID ' || chr(65 + (i % 26)::INT) || ((i % 99))::VARCHAR AS DIAG_PRINC,
        round((i % 100000) / 7.0, 2) AS VAL_TOT, 'Hospital "' || (i % 5000)::VARCHAR || '"; ala ' || (i % 9)::VARCHAR AS NOME
        FROM range({rows}) t(i)) TO '{tmp}' (HEADER, DELIMITER ';')""")
    tmp.rename(path)
    return path


def bench(gb: float, measures: list[Measure]) -> None:
    src = make_csv(WORK / f"csv_{gb:g}gb.csv", gb)
    out = WORK / f"csv_out_{gb:g}gb"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    label = f"{gb:g} GB"
    budget = "1GB" if gb <= 1 else "512MB"
    measures.append(
        run(
            f"etl convert csv ({label}, {budget})",
            [
                *ETL,
                "--memory-limit",
                budget,
                "--data-dir",
                str(out / "data"),
                "convert",
                "csv",
                str(src),
                "--out",
                str(out / "etl"),
                "--delimiter",
                ";",
            ],
            out / "etl",
        )
    )
    measures.append(
        run(
            f"raw DuckDB COPY ({label})",
            python(
                f"import duckdb; con = duckdb.connect(config={{'threads': {os.cpu_count()}}}); "
                f"con.execute(\"COPY (SELECT * FROM read_csv('{src}', delim=';')) TO '{out}/duckdb.parquet' "
                f'(FORMAT parquet, COMPRESSION zstd)")'
            ),
            out / "duckdb.parquet",
        )
    )
    measures.append(
        run(
            f"Polars scan_csv.sink_parquet ({label})",
            python(
                f"import polars as pl; pl.scan_csv('{src}', separator=';').sink_parquet('{out}/polars.parquet', "
                f"compression='zstd')"
            ),
            out / "polars.parquet",
        )
    )
    if gb > 1:
        return  # pandas is compared on the smaller file only
    measures.append(
        run(
            f"pandas read_csv chunks ({label})",
            python(
                "import pandas as pd, pyarrow as pa, pyarrow.parquet as pq\n"
                "w = None\n"
                f"for chunk in pd.read_csv('{src}', sep=';', chunksize=500_000, dtype={{'MUNIC_RES': str}}):\n"
                "    t = pa.Table.from_pandas(chunk, preserve_index=False)\n"
                f"    w = w or pq.ParquetWriter('{out}/pandas.parquet', t.schema, compression='zstd')\n"
                "    w.write_table(t)\n"
                "w.close()"
            ),
            out / "pandas.parquet",
            note="needs pandas",
        )
    )


def main() -> None:
    sizes = [float(s) for s in os.environ.get("ETL_BENCH_CSV_GB", "1,5").split(",")]
    measures: list[Measure] = []
    for gb in sizes:
        bench(gb, measures)
    notes = []
    by = {m.tool: m for m in measures}
    for gb in sizes:
        etl = next(m for t, m in by.items() if t.startswith(f"etl convert csv ({gb:g} GB"))
        raw = by[f"raw DuckDB COPY ({gb:g} GB)"]
        polars = by[f"Polars scan_csv.sink_parquet ({gb:g} GB)"]
        fastest = min(raw.wall, polars.wall)
        notes.append(
            f"- {gb:g} GB: etl / fastest peer = {etl.wall / fastest:.2f}x (target <= 1.0x); etl / raw DuckDB = "
            f"{etl.wall / raw.wall:.2f}x, etl / Polars = {etl.wall / polars.wall:.2f}x; etl peak RSS "
            f"{etl.peak_rss_mb:.0f} MB."
        )
    notes.append(
        "- etl keeps what the peers do not: rejected rows with line and reason (a file that Arrow's reader does "
        "not take whole is read again by DuckDB's, with store_rejects), lineage columns `_source_file`/"
        "`_source_row`, type inference that rejects stray values rather than widening a column, latin-1/cp1252 "
        "input, an atomic output and a RSS budget."
    )
    write_table("csv", "CSV -> Parquet", measures, notes)


if __name__ == "__main__":
    main()
