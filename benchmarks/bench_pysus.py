"""DATASUS .dbc -> Parquet: etl against PySUS, the tool DATASUS analysts use today, each as a whole process.

PySUS is installed from PyPI into a virtualenv of this benchmark's own (never a dependency of etl) and runs its
own fast path (`DBC.to_parquet`: pyreaddbc's dbc2dbf, then its byte-level DBF reader in 30,000-row chunks).
Inputs: SIH RD-like files of 1M and 5M records (ETL_BENCH_PYSUS_ROWS, comma-separated, to change them) and the
real SINAN and CNES files in ../shared/samples/datasus when present.
Targets (issue 17): etl >= 5x faster whole-process and <= 60% of PySUS's peak RSS on each input.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.bench_dbc import ETL, make_dbc
from benchmarks.common import ROOT, WORK, Measure, run, write_table

PYSUS_VERSION = "2.11.7"
VENV = WORK / f"pysus-{PYSUS_VERSION}"
REAL = ROOT.parent.parent / "shared" / "samples" / "datasus"

PYSUS = """
import asyncio, sys
from pysus.api.extensions import ExtensionFactory

async def main():
    dbc = await ExtensionFactory.instantiate(sys.argv[1])
    await dbc.to_parquet(output_path=sys.argv[2])

asyncio.run(main())
"""


def pysus_python() -> Path:
    """The virtualenv's interpreter, with PySUS installed the first time."""
    python = VENV / "bin" / "python"
    if not (VENV / ".installed").exists():
        print(f"  installing PySUS {PYSUS_VERSION} into {VENV} (once)", flush=True)
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"pysus=={PYSUS_VERSION}"], check=True
        )
        (VENV / ".installed").touch()
    return python


def inputs() -> list[tuple[str, Path]]:
    sizes = [int(n) for n in os.environ.get("ETL_BENCH_PYSUS_ROWS", "1000000,5000000").split(",")]
    found = [(f"SIH RD-like, {rows:,} records", make_dbc(rows)[1]) for rows in sizes]
    for name, label in (
        ("ZIKABR21.dbc", "real SINAN ZIKA 2021"),
        ("STPI2206.dbc", "real CNES ST PI 2022-06"),
    ):
        if (REAL / name).exists():
            found.append((f"{label} ({name})", REAL / name))
    return found


def main() -> None:
    python = pysus_python()
    measures: list[Measure] = []
    notes: list[str] = []
    for label, dbc in inputs():
        out = WORK / "pysus_out" / dbc.stem
        shutil.rmtree(out, ignore_errors=True)
        (out / "pysus").mkdir(parents=True)
        # PySUS writes its scratch .dbf beside the input and deletes it: give it a copy of its own.
        theirs = out / "pysus" / dbc.name
        shutil.copyfile(dbc, theirs)
        print(f"  {label}: {dbc.stat().st_size / 2**20:.1f} MB .dbc", flush=True)
        etl = run(
            f"etl convert dbc (256MB): {label}",
            [*ETL, "--data-dir", str(out / "data"), "convert", "dbc", str(dbc), "--out", str(out / "etl")],
            out / "etl",
        )
        pysus = run(
            f"PySUS {PYSUS_VERSION} DBC.to_parquet: {label}",
            [str(python), "-c", PYSUS, str(theirs), str(out / "pysus.parquet")],
            out / "pysus.parquet",
        )
        measures += [etl, pysus]
        if etl.ok and pysus.ok:
            speed, memory = pysus.wall / etl.wall, etl.peak_rss_mb / pysus.peak_rss_mb
            verdict = "met" if speed >= 5 and memory <= 0.6 else "NOT met"
            notes.append(
                f"- {label}: etl {speed:.1f}x faster than PySUS, at {memory:.0%} of its peak RSS "
                f"({etl.peak_rss_mb:.0f} vs {pysus.peak_rss_mb:.0f} MB); target >= 5x and <= 60%: {verdict}."
            )
    notes.append(
        f"- PySUS {PYSUS_VERSION} from PyPI in its own virtualenv ({VENV.relative_to(ROOT.parent)}), its default "
        "fast path; whole processes, interpreter start-up and imports included for both."
    )
    write_table("pysus", "DATASUS .dbc -> Parquet: etl vs PySUS", measures, notes)


if __name__ == "__main__":
    main()
