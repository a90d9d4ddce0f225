"""CSV -> Parquet: etl against raw DuckDB COPY, Polars streaming and pandas in chunks, in one run.

Targets (issue 17): etl within 1.0x of the faster of the raw DuckDB COPY and Polars' scan_csv().sink_parquet() on
the same file in the same run, at 1 GB and at 5 GB; the 5 GB CSV at --memory-limit 512MB with peak RSS under 512 MB.
All three write zstd (etl level 1, the others their default level 3). The three run in turn, ETL_BENCH_CSV_ROUNDS
rounds (default 5) per size: on a shared machine a ratio counts only between runs made under the same load, so the
verdict is the median of the rounds' ratios. Sizes can be scaled with ETL_BENCH_CSV_GB (default "1,5").
"""

from __future__ import annotations

import os
import shutil
import statistics
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


def commands(gb: float, src: Path, out: Path) -> dict[str, tuple[list[str], Path]]:
    """Each contender's command and output, by the name the table gives it."""
    label = f"{gb:g} GB"
    budget = "1GB" if gb <= 1 else "512MB"
    etl = [*ETL, "--memory-limit", budget, "--data-dir", str(out / "data"), "convert", "csv", str(src)]
    return {
        f"etl convert csv ({label}, {budget})": (
            [*etl, "--out", str(out / "etl"), "--delimiter", ";"],
            out / "etl",
        ),
        f"raw DuckDB COPY ({label})": (
            python(
                f"import duckdb; con = duckdb.connect(config={{'threads': {os.cpu_count()}}}); "
                f"con.execute(\"COPY (SELECT * FROM read_csv('{src}', delim=';')) TO '{out}/duckdb.parquet' "
                f'(FORMAT parquet, COMPRESSION zstd)")'
            ),
            out / "duckdb.parquet",
        ),
        f"Polars scan_csv.sink_parquet ({label})": (
            python(
                f"import polars as pl; pl.scan_csv('{src}', separator=';').sink_parquet('{out}/polars.parquet', "
                f"compression='zstd')"
            ),
            out / "polars.parquet",
        ),
    }


PANDAS = (
    "import pandas as pd, pyarrow as pa, pyarrow.parquet as pq\n"
    "w = None\n"
    "for chunk in pd.read_csv('{src}', sep=';', chunksize=500_000, dtype={{'MUNIC_RES': str}}):\n"
    "    t = pa.Table.from_pandas(chunk, preserve_index=False)\n"
    "    w = w or pq.ParquetWriter('{out}', t.schema, compression='zstd')\n"
    "    w.write_table(t)\n"
    "w.close()"
)


def bench(gb: float, rounds: int, measures: list[Measure], notes: list[str]) -> None:
    """`rounds` rounds of etl and its two peers in turn (the order rotating), so that each round's ratios compare
    runs made under the same load; the table gives each tool's median."""
    src = make_csv(WORK / f"csv_{gb:g}gb.csv", gb)
    out = WORK / f"csv_out_{gb:g}gb"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    contenders = commands(gb, src, out)
    runs: dict[str, list[Measure]] = {tool: [] for tool in contenders}
    names = list(contenders)
    for r in range(rounds):
        for tool in names[r % len(names) :] + names[: r % len(names)]:
            argv, output = contenders[tool]
            runs[tool].append(run(tool, argv, output))
    for tool, ms in runs.items():
        walls = sorted(m.wall for m in ms)
        note = f"median of {rounds} ({walls[0]:.1f}-{walls[-1]:.1f} s)" if rounds > 1 else ""
        failed = [m.note for m in ms if not m.ok]
        measures.append(
            Measure(
                tool,
                statistics.median(walls),
                max(m.peak_rss_mb for m in ms),
                ms[-1].output_mb,
                not failed,
                "; ".join([note, *failed]).strip("; "),
            )
        )
    etl, duck, polars = runs.values()
    fastest = [e.wall / min(d.wall, p.wall) for e, d, p in zip(etl, duck, polars, strict=True)]
    to_duck = statistics.median(e.wall / d.wall for e, d in zip(etl, duck, strict=True))
    to_polars = statistics.median(e.wall / p.wall for e, p in zip(etl, polars, strict=True))
    peak = max(m.peak_rss_mb for m in etl)
    budget = 1024 if gb <= 1 else 512
    notes.append(
        f"- {gb:g} GB: etl / fastest peer, round by round = {statistics.median(fastest):.2f}x "
        f"({min(fastest):.2f}-{max(fastest):.2f}; target <= 1.0x); etl / raw DuckDB = {to_duck:.2f}x, etl / Polars "
        f"= {to_polars:.2f}x; etl peak RSS {peak:.0f} MB (budget {budget} MB: {'within' if peak < budget else 'OVER'})."
    )
    if gb <= 1:  # pandas is compared on the smaller file only, once
        measures.append(
            run(
                f"pandas read_csv chunks ({gb:g} GB)",
                python(PANDAS.format(src=src, out=out / "pandas.parquet")),
                out / "pandas.parquet",
                note="needs pandas",
            )
        )


def main() -> None:
    sizes = [float(s) for s in os.environ.get("ETL_BENCH_CSV_GB", "1,5").split(",")]
    rounds = int(os.environ.get("ETL_BENCH_CSV_ROUNDS", "5"))
    measures: list[Measure] = []
    notes: list[str] = []
    for gb in sizes:
        bench(gb, rounds, measures, notes)
    notes.append(
        "- etl keeps what the peers do not: rejected rows with line and reason (a file that Arrow's reader does "
        "not take whole is read again by DuckDB's, with store_rejects), lineage columns `_source_file`/"
        "`_source_row`, type inference that rejects stray values rather than widening a column, latin-1/cp1252 "
        "input, an atomic output and a RSS budget."
    )
    write_table("csv", "CSV -> Parquet", measures, notes)


if __name__ == "__main__":
    main()
