"""DATASUS .dbc -> Parquet: etl against pyreaddbc + dbfread (PySUS's way), each as a whole process, in one run.

Targets: `etl convert dbc` >= 10x pyreaddbc + dbfread; the DBF -> Parquet step >= 20x dbfread's rows/s and (issue
17) >= 2M records/s for a ~140-byte SIH record (NARROW_FIELDS of the same generator), timed in the process; a
5M-record `.dbf` converted whole-process in <= 2.5x the floor, `cat FILE > /dev/null` plus `zstd -1` of the same file
(Debian's zstd CLI), measured in turns with it; peak RSS < 256 MB at --memory-limit 256MB, a 2 GB DBF included.
Rows can be scaled with ETL_BENCH_DBC_ROWS (default 1,000,000) and ETL_BENCH_DBC_FLOOR_ROWS (default 5,000,000; the
floor's file repeats the records that many times over).
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


# The issue's ~140-byte SIH record: the same generator's records, 25 of the RD layout's 46 fields (140 bytes with
# the deletion flag), in the proportions of the whole: codes, ids, dates as text, counts and amounts.
NARROW_FIELDS = [
    "UF_ZI",
    "ANO_CMPT",
    "MES_CMPT",
    "ESPEC",
    "N_AIH",
    "IDENT",
    "CEP",
    "MUNIC_RES",
    "NASC",
    "SEXO",
    "UTI_MES_TO",
    "QT_DIARIAS",
    "PROC_REA",
    "VAL_SH",
    "VAL_TOT",
    "DT_INTER",
    "DT_SAIDA",
    "DIAG_PRINC",
    "COBRANCA",
    "MUNIC_MOV",
    "COD_IDADE",
    "IDADE",
    "DIAS_PERM",
    "CNES",
    "RACA_COR",
]


def make_narrow_dbf(rows: int) -> Path:
    """`rows` SIH-like records of NARROW_FIELDS only (140 bytes)."""
    from etl.samples.datasus import FIELDS, _record
    from etl.sources.dbf import write_dbf

    dbf = WORK / f"RDSP{rows}n.dbf"
    if not dbf.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        keep = [k for k, f in enumerate(FIELDS) if f[0] in NARROW_FIELDS]
        rng = random.Random(1)
        records = (_record(rng, "SP", 2023, 1, i) for i in range(rows))
        write_dbf(dbf, [FIELDS[k] for k in keep], ([rec[k] for k in keep] for rec in records))
    return dbf


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
import resource, sys, time
from pathlib import Path
from etl.config import Settings
from etl.memory import parse_size
from etl.sources import Context
from etl.sources.dbf import convert_dbf
settings = Settings(data_dir=Path(sys.argv[2]), memory_limit=parse_size("256MB"))
def cpu():
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime
seconds = []
for _ in range({STEP_RUNS}):
    start, start_cpu = time.perf_counter(), cpu()
    convert_dbf(Path(sys.argv[1]), Path(sys.argv[3]), Context(settings), encoding="latin-1",
                column_encodings={{}}, source_name=Path(sys.argv[1]).name, stem=Path(sys.argv[1]).stem)
    seconds.append(f"{{time.perf_counter() - start}}:{{cpu() - start_cpu}}")
Path(sys.argv[4]).write_text(" ".join(seconds))
"""
DBFREAD_ONLY = (
    "import sys; from dbfread import DBF; print(sum(1 for _ in DBF(sys.argv[1], encoding='latin-1')))"
)


def step(dbf: Path, rows: int, out: Path, m: list[Measure]) -> tuple[float, list[float], float]:
    """The DBF -> Parquet step on `dbf`, STEP_RUNS times in one process: appends the process's run to `m` and
    returns the median seconds, the sorted seconds of each run and the median CPU seconds (both cores)."""
    timing = out / "step_seconds"
    reclen = dbf.stat().st_size // rows
    measure = run(
        f"etl DBF -> Parquet step, {reclen}-byte records (256MB), {STEP_RUNS} runs",
        [*python(STEP), str(dbf), str(out / "data"), str(out / "etl_step"), str(timing)],
        out / "etl_step",
        note="timed in the process",
    )
    pairs = [tuple(map(float, t.split(":"))) for t in timing.read_text().split()]
    runs = sorted(wall for wall, _ in pairs)
    seconds, cpu = statistics.median(runs), statistics.median(c for _, c in pairs)
    measure.note += f": median {seconds:.2f} s ({runs[0]:.2f}-{runs[-1]:.2f}), CPU {cpu:.2f} s"
    m.append(measure)
    shutil.rmtree(out / "etl_step")
    return seconds, runs, cpu


def rate(rows: int, reclen: int, seconds: float, runs: list[float], cpu: float) -> str:
    """Records/s and MB/s of records of a step, its range, and its CPU per 1M records."""
    return (
        f"{rows / seconds / 1e6:.2f}M records/s timed in the process, median of {len(runs)} runs "
        f"({rows / runs[-1] / 1e6:.2f}-{rows / runs[0] / 1e6:.2f}M), {rows * reclen / seconds / 1e6:.0f} MB/s of "
        f"records, {cpu / rows * 1e6:.2f} CPU s per 1M records (both threads)"
    )


FLOOR_ROUNDS = 3  # etl, cat and zstd in turns: the ratio of medians, with this VM's speed drifting


def convert_dbf(dbf: Path, out: Path, folder: str) -> list[str]:
    """`etl convert dbf` of dbf into out/folder, its state under out/data."""
    return [*ETL, "--data-dir", str(out / "data"), "convert", "dbf", str(dbf), "--out", str(out / folder)]


def floor(dbf: Path, rows: int, out: Path, m: list[Measure]) -> list[str]:
    """`etl convert dbf` of `dbf` whole-process against the floor, `cat` to /dev/null plus `zstd -1` of it, in
    FLOOR_ROUNDS turns; appends the median runs to `m` and returns the notes."""
    zstd = shutil.which("zstd")
    if zstd is None:
        raise SystemExit("the floor needs the zstd CLI: apt-get install zstd")
    size = f"{rows / 1e6:g}M records, {dbf.stat().st_size / 2**30:.2f} GB"
    rounds: dict[str, list[Measure]] = {"etl": [], "cat": [], "zstd": []}
    for _ in range(FLOOR_ROUNDS):
        shutil.rmtree(out / "etl_floor", ignore_errors=True)
        rounds["etl"].append(
            run(f"etl convert dbf, {size} (256MB)", convert_dbf(dbf, out, "etl_floor"), out / "etl_floor")
        )
        rounds["cat"].append(run(f"cat > /dev/null, {size}", ["sh", "-c", f'cat "{dbf}" > /dev/null'], dbf))
        zstd_out = out / "floor.zst"
        rounds["zstd"].append(
            run(f"zstd -1, {size}", [zstd, "-1", "-q", "-f", str(dbf), "-o", str(zstd_out)], zstd_out)
        )
    medians = {}
    for name, runs in rounds.items():
        ranked = sorted(runs, key=lambda r: r.wall)
        median = ranked[len(ranked) // 2]
        median.note = f"median of {len(runs)} in turns ({ranked[0].wall:.2f}-{ranked[-1].wall:.2f} s)"
        medians[name] = median
        m.append(median)
    (out / "floor.zst").unlink(missing_ok=True)
    etl, floor_s = medians["etl"], medians["cat"].wall + medians["zstd"].wall
    ratio = etl.wall / floor_s
    return [
        f"- {size} whole-process: etl {etl.wall:.2f} s ({rows / etl.wall / 1e6:.2f}M records/s, start-up "
        f"included) at {etl.peak_rss_mb:.0f} MB peak; the floor, cat {medians['cat'].wall:.2f} s + zstd -1 "
        f"{medians['zstd'].wall:.2f} s ({shutil.which('zstd')}): **{ratio:.2f}x** the floor (target <= 2.5x: "
        f"{'met' if ratio <= 2.5 else 'NOT met'})."
    ]


def main() -> None:
    rows = int(os.environ.get("ETL_BENCH_DBC_ROWS", 1_000_000))
    load_before = os.getloadavg()[0]
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
            convert_dbf(dbf, out, "etl_dbf"),
            out / "etl_dbf",
        ),
        run("dbfread, iterate only", [*python(DBFREAD_ONLY), str(dbf)], dbf, note="no output written"),
    ]
    etl_dbc, naive, etl_dbf, dbfread = m
    step_seconds, runs, step_cpu = step(dbf, rows, out, m)
    narrow = make_narrow_dbf(rows)
    narrow_seconds, narrow_runs, narrow_cpu = step(narrow, rows, out, m)
    # The floor's file holds the records `times` over: writing 5M records record by record took over 15 minutes.
    floor_times = max(1, round(int(os.environ.get("ETL_BENCH_DBC_FLOOR_ROWS", 5_000_000)) / rows))
    floor_dbf = repeat_dbf(dbf, floor_times)
    floor_notes = floor(floor_dbf, floor_times * rows, out, m)
    floor_dbf.unlink()
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
    reclen, narrow_reclen = dbf.stat().st_size // rows, narrow.stat().st_size // rows
    notes = [
        f"- {rows:,} SIH RD-like records of {reclen} bytes, {size_mb:.0f} MB as .dbf.",
        f"- etl convert dbc vs pyreaddbc + dbfread: {naive.wall / etl_dbc.wall:.1f}x faster (target >= 10x).",
        f"- DBF -> Parquet step, {reclen}-byte records: {rate(rows, reclen, step_seconds, runs, step_cpu)} "
        f"({rows / etl_dbf.wall / 1e6:.2f}M rows/s for the whole `etl convert dbf` process, start-up included); "
        f"dbfread {rows / dbfread.wall / 1e3:.0f}k rows/s iterating only (whole process): "
        f"{dbfread.wall / step_seconds:.1f}x (target >= 20x).",
        f"- DBF -> Parquet step, the issue's {narrow_reclen}-byte SIH record (the same generator's records, "
        f"{len(NARROW_FIELDS)} of the 46 RD fields: codes, ids, text dates, counts and two amounts): "
        f"{rate(rows, narrow_reclen, narrow_seconds, narrow_runs, narrow_cpu)}; target >= 2M records/s: "
        f"{'met' if rows / narrow_seconds >= 2e6 else 'NOT met'}.",
        f"- Peak RSS at --memory-limit 256MB: {etl_dbc.peak_rss_mb:.0f} MB (dbc; its decompressor, a child "
        f"process running meanwhile, adds ~16 MB), {etl_dbf.peak_rss_mb:.0f} MB (dbf), "
        f"{m[-1].peak_rss_mb:.0f} MB for the {times * rows:,}-record DBF (target < 256 MB).",
        *floor_notes,
        # The machine's 2 cores are shared: when other work takes one, the step's two threads (reader, Parquet
        # writer) run in turns and its wall comes near its CPU seconds.
        f"- Load average (1 min) {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. Where other "
        "work holds a core, the step's reader and writer threads run in turns: its wall comes near its CPU seconds "
        "rather than half of them.",
    ]
    write_table("dbc", "DATASUS .dbc -> Parquet", m, notes)


if __name__ == "__main__":
    main()
