"""Spark engine: converting 40 generated .dbc files with engine = local vs Spark local[1] and local[2], and the
shipped NVD marts (sql/nvd/020_marts.sql) computed by DuckDB vs Spark SQL; each contender a whole `etl` process.

Peak RSS per task comes from the run's own report (each conversion is measured where it runs); the process's
peak is the kernel's for the largest process of the tree (for Spark, its JVM). Spark's overhead is the wall time
beyond the conversions themselves: session start-up, the storage probe, scheduling, the Python workers' start.
Files and rows scale with ETL_BENCH_SPARK_FILES (default 40) and ETL_BENCH_SPARK_ROWS (default 30,000 per file).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import sys
from pathlib import Path

from benchmarks.common import WORK, Measure, run, write_table

SPARK = '[spark]\nmaster = "{master}"\nconf = {{ "spark.ui.enabled" = false }}\n'


def make_dbcs(files: int, rows: int) -> Path:
    from etl.samples.datasus import FIELDS, _record
    from etl.sources.dbc import write_dbc
    from etl.sources.dbf import write_dbf

    folder = WORK / f"spark_dbc_{files}x{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    names = [(st, y, m) for y in (2022, 2023, 2024) for m in range(1, 13) for st in ("SP", "RJ", "MG")]
    for n, (state, year, month) in enumerate(names[:files]):
        dbc = folder / f"RD{state}{year % 100:02d}{month:02d}.dbc"
        if not dbc.exists():
            rng = random.Random(n)
            dbf = folder / f"{dbc.stem}.dbf"
            write_dbf(dbf, FIELDS, (_record(rng, state, year, month, i) for i in range(rows)))
            write_dbc(dbf, dbc)
            dbf.unlink()
    return folder


def project(name: str, body: str) -> Path:
    folder = WORK / "spark_runs" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "etl.toml").write_text(body)
    return folder


def etl(folder: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "etl.cli", "--config", str(folder / "etl.toml"), "--quiet", *args]


def last_run(folder: Path) -> dict:
    return json.loads((folder / "data" / "reports" / "last-run.json").read_text())


def per_task(report: dict, step: str) -> str:
    tasks = [s for s in report["steps"] if s["step"] == step and s["status"] == "ok"]
    if not tasks:
        return ""
    peaks = [s["peak_rss_mb"] for s in tasks]
    busy = sum(s["seconds"] for s in tasks)
    return (
        f"{len(tasks)} tasks, peak RSS per task median {statistics.median(peaks):.0f} / max {max(peaks):.0f} MB; "
        f"{busy:.1f} s of conversion"
    )


def main() -> None:
    files = int(os.environ.get("ETL_BENCH_SPARK_FILES", 40))
    rows = int(os.environ.get("ETL_BENCH_SPARK_ROWS", 30_000))
    dbcs = make_dbcs(files, rows)
    dbc_mb = sum(p.stat().st_size for p in dbcs.glob("*.dbc")) / 2**20
    print(f"  {files} .dbc files of {rows:,} SIH RD-like records: {dbc_mb:.1f} MB of .dbc")
    dataset = f'[datasets.rd]\nkind = "datasus"\npaths = ["{dbcs}/*.dbc"]\n'
    measures: list[Measure] = []
    walls: dict[str, float] = {}
    for name, engine, master in [
        ("local", "local", ""),
        ("spark local[1]", "spark", "local[1]"),
        ("spark local[2]", "spark", "local[2]"),
    ]:
        folder = project(name.replace(" ", "_").replace("[", "").replace("]", ""), f'[etl]\nengine = "{engine}"\n'
                         + dataset + (SPARK.format(master=master) if master else ""))  # fmt: skip
        m = run(f"convert {files} .dbc, {name}", etl(folder, "run"), folder / "data" / "parquet")
        report = last_run(folder)
        m.note = per_task(report, "convert")
        measures.append(m)
        walls[name] = m.wall

    # A shipped mart: the NVD marts over a larger generated sample, converted once, then transformed by each engine.
    nvd = project("nvd", '[etl]\nengine = "local"\n[datasets.nvd]\nkind = "nvd"\nsample = true\nsample_pages = 60\n'
                  + SPARK.format(master="local[2]"))  # fmt: skip
    run("nvd sample: convert (local)", etl(nvd, "run"), nvd / "data" / "parquet")
    cves = sum(s["rows"] for s in last_run(nvd)["steps"] if s["step"] == "convert")
    for engine in ("local", "spark"):
        m = run(
            f"nvd marts, engine {engine}", etl(nvd, "--engine", engine, "transform"), nvd / "data" / "marts"
        )
        report = last_run(nvd)
        steps = {s["step"]: s for s in report["steps"]}
        m.note = ", ".join(
            f"{k} {v['seconds']:.1f} s, peak RSS {v['peak_rss_mb']:.0f} MB" for k, v in steps.items()
        )
        measures.append(m)

    busy_local = walls["local"]
    notes = [
        f"- {files} generated SIH RD-like .dbc files, {rows:,} records each ({files * rows:,} in all), "
        f"{dbc_mb:.1f} MB of .dbc; NVD sample of 60 pages ({cves:,} CVE rows).",
        f"- Throughput of the conversions: local {dbc_mb / walls['local']:.2f} MB of .dbc/s; Spark local[1] "
        f"{dbc_mb / walls['spark local[1]']:.2f} MB/s; local[2] {dbc_mb / walls['spark local[2]']:.2f} MB/s "
        "(whole processes, start-up included).",
        f"- Spark's overhead at local[1] against local: {walls['spark local[1]'] - busy_local:.1f} s "
        "(session start-up, the storage probe, one job per file, Python workers).",
        "- The figures are one run, side by side.",
        "- Peak RSS (process) for Spark runs is the largest single process of the tree (the driver's JVM); "
        "per-task peaks are the Python worker's own, as the run report records them.",
    ]
    write_table("spark", "Spark engine: conversions and a shipped mart, local vs Spark", measures, notes)


if __name__ == "__main__":
    main()
