"""DATASUS .dbc -> Parquet: etl against pyreaddbc + dbfread (PySUS's way), each as a whole process, in one run.

Targets (issue 3): `etl convert dbc` >= 10x pyreaddbc + dbfread; the DBF -> Parquet step >= 20x dbfread's
rows/s and >= 1M rows/s for a ~150-byte record; peak RSS < 256 MB at --memory-limit 256MB.
Rows can be scaled with ETL_BENCH_DBC_ROWS (default 1,000,000).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import struct
import sys
from pathlib import Path

from benchmarks.common import WORK, Measure, python, run, write_table

ETL = [sys.executable, "-m", "etl.cli", "--quiet", "--memory-limit", "256MB"]


def make_dbc(rows: int) -> tuple[Path, Path]:
    from etl.samples.datasus import FIELDS, _record
    from etl.sources.dbc import write_dbc
    from etl.sources.dbf import write_dbf

    dbf, dbc = WORK / f"RDSP{rows}.dbf", WORK / f"RDSP{rows}.dbc"
    if not dbc.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        rng = random.Random(1)
        write_dbf(dbf, FIELDS, (_record(rng, "SP", 2023, 1, i) for i in range(rows)))
        write_dbc(dbf, dbc)
    return dbf, dbc


def repeat_dbf(dbf: Path, times: int) -> Path:
    """A DBF holding `dbf`'s records `times` over (a 2 GB file in seconds, where writing one takes minutes)."""
    big = WORK / f"{dbf.stem}x{times}.dbf"
    if not big.exists():
        with open(dbf, "rb") as f:
            head = bytearray(f.read(32))
            hlen, reclen = struct.unpack("<HH", head[8:12])
            records = struct.unpack("<I", head[4:8])[0]
            head += f.read(hlen - 32)
            body = f.read(records * reclen)
        head[4:8] = struct.pack("<I", records * times)
        tmp = big.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            out.write(head)
            for _ in range(times):
                out.write(body)
            out.write(b"\x1a")
        tmp.rename(big)
    return big


NAIVE = """
import sys, pyreaddbc, pyarrow as pa, pyarrow.parquet as pq
from dbfread import DBF
pyreaddbc.dbc2dbf(sys.argv[1], sys.argv[2])
writer, rows = None, []
for rec in DBF(sys.argv[2], encoding="latin-1"):
    rows.append(rec)
    if len(rows) == 100_000:
        t = pa.Table.from_pylist(rows); writer = writer or pq.ParquetWriter(sys.argv[3], t.schema); writer.write_table(t); rows = []
if rows:
    t = pa.Table.from_pylist(rows); writer = writer or pq.ParquetWriter(sys.argv[3], t.schema); writer.write_table(t)
writer.close()
"""
# The DBF -> Parquet step itself, timed inside the process (interpreter start-up and imports excluded), STEP_RUNS
# times: this VM's speed drifts by up to 40% from minute to minute, so the median is reported, with the range.
STEP_RUNS = 5
STEP = f"""
import sys, time
from pathlib import Path
from etl.config import Settings
from etl.memory import parse_size
from etl.sources import Context
from etl.sources.dbf import convert_dbf
settings = Settings(data_dir=Path(sys.argv[2]), memory_limit=parse_size("256MB"))
seconds = []
for _ in range({STEP_RUNS}):
    start = time.perf_counter()
    convert_dbf(Path(sys.argv[1]), Path(sys.argv[3]), Context(settings), encoding="latin-1",
                column_encodings={{}}, source_name=Path(sys.argv[1]).name, stem=Path(sys.argv[1]).stem)
    seconds.append(time.perf_counter() - start)
Path(sys.argv[4]).write_text(" ".join(map(str, seconds)))
"""
DBFREAD_ONLY = (
    "import sys; from dbfread import DBF; print(sum(1 for _ in DBF(sys.argv[1], encoding='latin-1')))"
)


def main() -> None:
    rows = int(os.environ.get("ETL_BENCH_DBC_ROWS", 1_000_000))
    dbf, dbc = make_dbc(rows)
    out = WORK / "dbc_out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    size_mb = dbf.stat().st_size / 2**20
    print(
        f"  {rows:,} records of {dbf.stat().st_size // rows} bytes: {size_mb:.0f} MB .dbf, "
        f"{dbc.stat().st_size / 2**20:.0f} MB .dbc"
    )
    m: list[Measure] = [
        run(
            "etl convert dbc (256MB)",
            [*ETL, "--data-dir", str(out / "data"), "convert", "dbc", str(dbc), "--out", str(out / "etl")],
            out / "etl",
        ),
        run(
            "pyreaddbc + dbfread -> Parquet",
            [*python(NAIVE), str(dbc), str(out / "naive.dbf"), str(out / "naive.parquet")],
            out / "naive.parquet",
        ),
        run(
            "etl convert dbf (256MB)",
            [
                *ETL,
                "--data-dir",
                str(out / "data"),
                "convert",
                "dbf",
                str(dbf),
                "--out",
                str(out / "etl_dbf"),
            ],
            out / "etl_dbf",
        ),
        run("dbfread, iterate only", [*python(DBFREAD_ONLY), str(dbf)], dbf, note="no output written"),
    ]
    etl_dbc, naive, etl_dbf, dbfread = m
    timing = out / "step_seconds"
    step = run(
        f"etl DBF -> Parquet step (256MB), {STEP_RUNS} runs",
        [*python(STEP), str(dbf), str(out / "data"), str(out / "etl_step"), str(timing)],
        out / "etl_step",
        note="timed in the process",
    )
    runs = sorted(float(t) for t in timing.read_text().split())
    step_seconds = statistics.median(runs)
    step.note += f": median {step_seconds:.2f} s ({runs[0]:.2f}-{runs[-1]:.2f})"
    m.append(step)
    times = max(1, round(2 * 2**30 / dbf.stat().st_size))
    big = repeat_dbf(dbf, times)
    m.append(
        run(
            f"etl convert dbf, {big.stat().st_size / 2**30:.1f} GB (256MB)",
            [
                *ETL,
                "--data-dir",
                str(out / "data"),
                "convert",
                "dbf",
                str(big),
                "--out",
                str(out / "etl_big"),
            ],
            out / "etl_big",
        )
    )
    big.unlink()
    notes = [
        f"- {rows:,} SIH RD-like records, {size_mb:.0f} MB as .dbf.",
        f"- etl convert dbc vs pyreaddbc + dbfread: {naive.wall / etl_dbc.wall:.1f}x faster (target >= 10x).",
        f"- DBF -> Parquet step: etl {rows / step_seconds / 1e6:.2f}M rows/s timed in the process, median of "
        f"{STEP_RUNS} runs ({rows / runs[-1] / 1e6:.2f}-{rows / runs[0] / 1e6:.2f}M) "
        f"({rows / etl_dbf.wall / 1e6:.2f}M rows/s for the whole `etl convert dbf` process, start-up included); "
        f"dbfread {rows / dbfread.wall / 1e3:.0f}k rows/s iterating only (whole process): "
        f"{dbfread.wall / step_seconds:.1f}x (targets >= 20x and >= 1M rows/s).",
        f"- Peak RSS at --memory-limit 256MB: {etl_dbc.peak_rss_mb:.0f} MB (dbc; its decompressor, a child "
        f"process running meanwhile, adds ~16 MB), {etl_dbf.peak_rss_mb:.0f} MB (dbf), "
        f"{m[-1].peak_rss_mb:.0f} MB for the {times * rows:,}-record DBF (target < 256 MB).",
    ]
    write_table("dbc", "DATASUS .dbc -> Parquet", m, notes)


if __name__ == "__main__":
    main()
