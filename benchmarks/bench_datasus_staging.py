"""Staging and exporting a SIA PA month many times the budget: `stg_producao_ambulatorial` (every column of the file
plus the decoded ones: municipalities, CID-10, CBO and code tables joined from `ref`) written to one Parquet file.

Contenders, each a child process at the same budget: etl.datasus.export (DuckDB record batches into etl's Parquet
sink, with the data dictionary as field metadata); DuckDB's own COPY of the same view (the raw engine, no field
metadata); and etl.datasus.scan sunk by Polars' streaming engine. Scale with ETL_BENCH_STAGING_ROWS (default 10M).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from benchmarks.common import WORK, Measure, python, run, write_table

BUDGET = "512MB"
BASE_ROWS = 50_000

# A real-layout SIA PA month (etl's sample generator: SP's municipalities, CID-10 and CBO codes), converted by etl,
# then repeated to the wanted size in one Parquet file with lineage rows renumbered, and recorded as converted.
SETUP = """
import random, subprocess, sys
from pathlib import Path
import duckdb
from etl.samples.datasus import SAMPLES
from etl.sources.dbc import write_dbc
from etl.sources.dbf import write_dbf
from etl.state import StateStore
work, rows, base = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sample = SAMPLES[("SIA", "PA")]
rng = random.Random(1)
dbf = write_dbf(work / "base.dbf", sample.fields, (sample.record(rng, "SP", 2023, 1, i) for i in range(base)))
dbc = write_dbc(dbf, work / "base/PASP2301.dbc")
subprocess.run([sys.executable, "-m", "etl.cli", "--quiet", "convert", "dbc", str(dbc), "--out", str(work / "base")],
               check=True)
out = work / "data/parquet/sia_pa/PASP2301.parquet"
out.parent.mkdir(parents=True, exist_ok=True)
duckdb.sql("SET preserve_insertion_order = false; SET memory_limit = '1GB'")
duckdb.sql(f"COPY (SELECT b.* REPLACE (b._source_row + r.range * {base} AS _source_row) "
           f"FROM read_parquet('{work}/base/PASP2301.parquet') b, range({rows // base}) r) "
           f"TO '{out}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000)")
state = StateStore(work / "data/state.sqlite")
state.put_file("sia_pa", "raw/sia_pa/PASP2301.dbc", "converted", rows_in=rows, rows_out=rows, rows_rejected=0,
               outputs={"records": out})
"""

EXPORT = """
from etl import datasus
print(datasus.export("SIA", "PA", "{out}", memory_limit="{budget}"))
"""

# Row groups bounded in bytes as etl's marts are: with DuckDB's default (122,880 rows) each thread's buffered row
# group of ~80 columns outgrew the 171 MiB DuckDB gets at this budget ("Out of Memory Error").
DUCKDB_COPY = """
from etl.datasus.api import _staged
from etl.memory import row_group_bytes
con, settings, schema, view = _staged("SIA", "PA", None, None, None, None, None, "{budget}", None)
mib = row_group_bytes(settings.memory_limit) // 2**20
con.execute(f"COPY (SELECT * FROM {{schema}}.{{view}}) TO '{out}' "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE_BYTES '{{mib}}MiB')")
"""

POLARS_SINK = """
from etl import datasus
datasus.scan("SIA", "PA", memory_limit="{budget}").sink_parquet("{out}", engine="streaming")
"""


def main() -> None:
    rows = int(os.environ.get("ETL_BENCH_STAGING_ROWS", 10_000_000))
    work = WORK / "datasus_staging"
    shutil.rmtree(work, ignore_errors=True)
    (work / "base").mkdir(parents=True)
    (work / "etl.toml").write_text(
        f'[etl]\ndata_dir = "data"\nmemory_limit = "{BUDGET}"\n\n'
        '[datasets.sia_pa]\nkind = "datasus"\nsystem = "SIA"\ngroup = "PA"\nstates = ["SP"]\nyears = [2023]\n'
    )
    subprocess.run([*python(SETUP), str(work), str(rows), str(BASE_ROWS)], check=True, cwd=work)
    staged = work / "data/parquet/sia_pa/PASP2301.parquet"
    m: list[Measure] = []
    for name, code in [
        ("etl.datasus.export", EXPORT),
        ("DuckDB COPY of the same view", DUCKDB_COPY),
        ("etl.datasus.scan + Polars sink_parquet", POLARS_SINK),
    ]:
        out = work / f"out-{len(m)}.parquet"
        program = code.format(budget=BUDGET, out=out)
        m.append(run(name, [sys.executable, "-c", f"import os; os.chdir({str(work)!r})\n{program}"], out))
    notes = [
        f"- {rows:,} SIA PA rows (one converted Parquet file, {staged.stat().st_size / 2**20:.0f} MB, 60 fields), "
        f"staged by `stg_producao_ambulatorial` (+18 decoded columns, 5 joins with `ref`) and written to one "
        f"Parquet file; budget {BUDGET}. Output column: the exported file's size.",
    ]
    write_table(
        "datasus_staging", "DATASUS staging: a SIA PA month staged and exported under the budget", m, notes
    )


if __name__ == "__main__":
    main()
