"""etl.datasus.scan over SIH RD staged rows many times the budget: the lazy DuckDB-to-Polars frame it returns,
beside materialising the staged rows to Parquet once and scanning that, and beside loading them whole.

Each contender computes admissions per state, sex and month from `stg_internacoes` and, in a second query, the
women's admissions over 60 (a filter Polars pushes down). Scale with ETL_BENCH_SCAN_ROWS (default 6M).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from benchmarks.common import WORK, Measure, python, run, write_table

BUDGET = "512MB"

SETUP = """
import random, sys
from pathlib import Path
import duckdb
from etl.samples.datasus import FIELDS, _record
from etl.sources.dbc import write_dbc
from etl.sources.dbf import write_dbf
from etl.state import StateStore
work, rows = Path(sys.argv[1]), int(sys.argv[2])
rng = random.Random(1)
dbf = write_dbf(work / "base.dbf", FIELDS, (_record(rng, "SP", 2023, 1, i) for i in range(20_000)))
dbc = write_dbc(dbf, work / "data/raw/sih_rd/RDSP2301.dbc")
import subprocess
subprocess.run([sys.executable, "-m", "etl.cli", "--quiet", "convert", "dbc", str(dbc), "--out", str(work / "base")],
               check=True)
out = work / "data/parquet/sih_rd/RDSP2301.parquet"
out.parent.mkdir(parents=True, exist_ok=True)
duckdb.sql(f"SET preserve_insertion_order = false; SET memory_limit = '1GB'")
duckdb.sql(f"COPY (SELECT b.* FROM read_parquet('{work}/base/RDSP2301.parquet') b, range({rows // 20_000})) "
           f"TO '{out}' (FORMAT parquet, ROW_GROUP_SIZE 100000)")
state = StateStore(work / "data/state.sqlite")
state.put_file("sih_rd", "raw/sih_rd/RDSP2301.dbc", "converted", rows_in=rows, rows_out=rows, rows_rejected=0,
               outputs={"records": out})
"""

QUERIES = """
import polars as pl
by_month = frame.group_by("uf_residencia", "sexo", "competencia").len().collect(engine="streaming")
old_women = frame.filter((pl.col("sexo") == "Feminino") & (pl.col("idade_anos") > 60)).select(pl.len())
print(by_month.height, old_women.collect(engine="streaming").item())
"""

SCAN = """
from etl import datasus
frame = datasus.scan("SIH", "RD", memory_limit="{budget}")
"""

MATERIALISED = """
import polars as pl
from etl import datasus
lazy = datasus.scan("SIH", "RD", memory_limit="{budget}")
lazy.sink_parquet("{work}/staged.parquet", engine="streaming")
frame = pl.scan_parquet("{work}/staged.parquet")
"""

EAGER = """
from etl import datasus
frame = datasus.scan("SIH", "RD", memory_limit="{budget}").collect().lazy()
"""


def main() -> None:
    rows = int(os.environ.get("ETL_BENCH_SCAN_ROWS", 6_000_000))
    work = WORK / "datasus_scan"
    shutil.rmtree(work, ignore_errors=True)
    (work / "data/raw/sih_rd").mkdir(parents=True)
    (work / "etl.toml").write_text(f'[etl]\ndata_dir = "data"\nmemory_limit = "{BUDGET}"\n')
    subprocess.run([*python(SETUP), str(work), str(rows)], check=True, cwd=work)
    staged = work / "data/parquet/sih_rd/RDSP2301.parquet"
    m: list[Measure] = []
    for name, code in [
        ("etl.datasus.scan (lazy, streamed)", SCAN),
        ("staged to Parquet once, scan_parquet", MATERIALISED),
        ("staged rows collected whole", EAGER),
    ]:
        program = code.format(budget=BUDGET, work=work) + QUERIES
        m.append(run(name, [sys.executable, "-c", f"import os; os.chdir({str(work)!r})\n{program}"], staged))
    notes = [
        f"- {rows:,} SIH RD admissions (one Parquet file, {staged.stat().st_size / 2**20:.0f} MB) staged by "
        f"`stg_internacoes`; budget {BUDGET}. Output column: the converted Parquet's size.",
        "- Queries: admissions per state, sex and competence month; women over 60 (a filter pushed into DuckDB).",
    ]
    write_table("datasus_scan", "etl.datasus.scan: staged SIH RD rows in Polars under the budget", m, notes)


if __name__ == "__main__":
    main()
