"""DATASUS .dbc -> Parquet: etl against PySUS, the tool DATASUS analysts use today, each as a whole process.

PySUS is installed from PyPI into a virtualenv of this benchmark's own (never a dependency of etl) and runs its
own fast path (`DBC.to_parquet`: pyreaddbc's dbc2dbf, then its byte-level DBF reader in 30,000-row chunks).
Inputs: SIH RD-like files of 1M, 5M and 20M records (ETL_BENCH_PYSUS_ROWS, record counts comma-separated, to change
them; empty for the real files only), generated in benchmarks/work/ and reused, and the real SINAN and CNES files in ../shared/samples/datasus when
present. Writes benchmarks/results/pysus.md and pysus.png: wall and peak RSS per tool
against the records.
Targets (issue 17): etl >= 5x faster whole-process and <= 60% of PySUS's peak RSS on each input.
"""

from __future__ import annotations

import itertools
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

from benchmarks.bench_dbc import ETL, make_dbc, repeat_dbf
from benchmarks.common import RESULTS, ROOT, WORK, Measure, du_mb, write_table

PYSUS_VERSION = "2.11.7"
VENV = WORK / f"pysus-{PYSUS_VERSION}"
REAL = ROOT.parent.parent / "shared" / "samples" / "datasus"
SIZES = "1000000,5000000,20000000"
# Writing distinct records takes ~4 min per million here: larger inputs repeat the first size's records.
GENERATED = 1_000_000
SMALL_MB = 64  # inputs below this run TURNS times in turns, the median reported: one run of either is noise
TURNS = 5

PYSUS = """
import asyncio, sys
from pysus.api.extensions import ExtensionFactory

async def main():
    dbc = await ExtensionFactory.instantiate(sys.argv[1])
    await dbc.to_parquet(output_path=sys.argv[2])

asyncio.run(main())
"""
# The child's own wall time, read by the small process that waits for it (peak RSS from the kernel's accounting of
# that child): the launcher's start-up is neither tool's, and on the small real files it would be a tenth of etl's.
TIMED = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(f"wall_s={time.perf_counter() - start} peak_rss_mb={usage.ru_maxrss / 1024}", file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""
# As a user's Python runs them: each module's bytecode cached once (this workplace sets PYTHONDONTWRITEBYTECODE,
# which would make etl compile pyarrow's and numpy's sources on every run, while pip byte-compiled PySUS's).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def pysus_python() -> Path:
    """The virtualenv's interpreter, with PySUS installed the first time."""
    python = VENV / "bin" / "python"
    if not (VENV / ".installed").exists():
        print(f"  installing PySUS {PYSUS_VERSION} into {VENV} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"pysus=={PYSUS_VERSION}"], check=True
        )
        (VENV / ".installed").touch()
    return python


def sih_dbc(rows: int) -> Path:
    """A SIH RD-like .dbc of `rows` records: GENERATED distinct ones, repeated up to `rows`."""
    from etl.sources.dbc import write_dbc

    if rows <= GENERATED:
        return make_dbc(rows)[1]
    if rows % GENERATED:
        raise SystemExit(f"ETL_BENCH_PYSUS_ROWS: {rows} is not a multiple of {GENERATED}")
    dbc = WORK / f"RDSP{rows}r.dbc"
    if not dbc.exists():
        print(f"  writing {dbc.name} (once)", flush=True)
        big = repeat_dbf(make_dbc(GENERATED)[0], rows // GENERATED)
        # Renamed once whole: a run cut short (a full disk) leaves no input behind
        partial = dbc.with_suffix(".dbc.tmp")
        try:
            write_dbc(big, partial)
            partial.rename(dbc)
        finally:
            big.unlink()
            partial.unlink(missing_ok=True)
    return dbc


def records(dbc: Path) -> int:
    with open(dbc, "rb") as f:
        return struct.unpack("<I", f.read(8)[4:8])[0]


def inputs() -> list[tuple[str, Path]]:
    """The real files first, then the SIH RD-like sizes, smallest first (a long run cut short keeps the most)."""
    found = [
        (f"{label} ({name})", REAL / name)
        for name, label in (
            ("ZIKABR21.dbc", "real SINAN ZIKA 2021"),
            ("STPI2206.dbc", "real CNES ST PI 2022-06"),
        )
        if (REAL / name).exists()
    ]
    sizes = sorted(int(n) for n in os.environ.get("ETL_BENCH_PYSUS_ROWS", SIZES).split(",") if n.strip())
    return found + [(f"SIH RD-like, {rows:,} records", sih_dbc(rows)) for rows in sizes]


def warm(path: Path) -> None:
    """Read a file through once, so that each tool starts with its input in the page cache (as after a download):
    otherwise the first tool on a large input reads it from disk, and the second finds it cached."""
    with open(path, "rb") as f:
        while f.read(8 * 2**20):
            pass


def timed(tool: str, argv: list[str], output: Path) -> Measure:
    """Run argv as a child of a small launcher; its wall time and peak RSS as that launcher saw them."""
    proc = subprocess.run(
        [sys.executable, "-c", TIMED, *argv], env=ENV, stderr=subprocess.PIPE, text=True, errors="replace"
    )
    *err, last = proc.stderr.rstrip("\n").split("\n")
    figures = dict(p.split("=") for p in last.split()) if last.startswith("wall_s=") else {}
    ok = proc.returncode == 0 and bool(figures)
    note = "" if ok else f"FAILED: {err[-1] if err else last or 'no message'}"
    return Measure(
        tool,
        float(figures.get("wall_s", "nan")),
        float(figures.get("peak_rss_mb", "nan")),
        du_mb(output),
        ok,
        note,
    )


def median(runs: list[Measure]) -> Measure:
    ranked = sorted(runs, key=lambda m: m.wall)
    chosen = ranked[len(ranked) // 2]
    if len(runs) > 1:
        chosen.note = (
            chosen.note + f" median of {len(runs)} in turns ({ranked[0].wall:.2f}-{ranked[-1].wall:.2f} s)"
        ).strip()
    return chosen


def compare(label: str, dbc: Path, python: Path, turns: int) -> tuple[Measure, Measure]:
    """etl and PySUS on one .dbc, `turns` times in turns; the median run of each."""
    out = WORK / "pysus_out" / dbc.stem
    runs: dict[str, list[Measure]] = {"etl": [], "pysus": []}
    for _ in range(turns):
        subprocess.run(["rm", "-rf", str(out)], check=True)
        (out / "pysus").mkdir(parents=True)
        # PySUS writes its scratch .dbf beside the input and deletes it: a folder of its own, and a copy (a link
        # for a large input, under WORK as this folder is).
        theirs = out / "pysus" / dbc.name
        if turns > 1:
            shutil.copyfile(dbc, theirs)
        else:
            os.link(dbc, theirs)
        etl_args = ["--data-dir", str(out / "data"), "convert", "dbc", str(dbc), "--out", str(out / "etl")]
        warm(dbc)
        runs["etl"].append(timed(f"etl convert dbc (256MB): {label}", [*ETL, *etl_args], out / "etl"))
        warm(theirs)
        runs["pysus"].append(
            timed(
                f"PySUS {PYSUS_VERSION} DBC.to_parquet: {label}",
                [str(python), "-c", PYSUS, str(theirs), str(out / "pysus.parquet")],
                out / "pysus.parquet",
            )
        )
    etl, pysus = median(runs["etl"]), median(runs["pysus"])
    for m in (etl, pysus):
        print(f"  {m.tool:<70} {m.wall:8.2f} s {m.peak_rss_mb:6.0f} MB {m.note}", flush=True)
    subprocess.run(["rm", "-rf", str(out)], check=True)
    return etl, pysus


def verdict(label: str, etl: Measure, pysus: Measure) -> str:
    if not (etl.ok and pysus.ok):
        return f"- {label}: a run failed; target >= 5x and <= 60%: NOT met."
    speed, memory = pysus.wall / etl.wall, etl.peak_rss_mb / pysus.peak_rss_mb
    met = "met" if speed >= 5 and memory <= 0.6 else "NOT met"
    return (
        f"- {label}: etl **{speed:.1f}x** faster than PySUS, at **{memory:.0%}** of its peak RSS "
        f"({etl.peak_rss_mb:.0f} vs {pysus.peak_rss_mb:.0f} MB); target >= 5x and <= 60%: **{met}**."
    )


def growth(points: list[tuple[int, Measure, Measure]]) -> list[str]:
    """How each tool's time and memory grow with the records of the SIH RD-like inputs."""
    lines = []
    for name, pick in (("etl", lambda p: p[1]), ("PySUS", lambda p: p[2])):
        steps = ", ".join(
            f"{a[0] / 1e6:g}M -> {b[0] / 1e6:g}M records: wall x{pick(b).wall / pick(a).wall:.1f}, "
            f"peak RSS x{pick(b).peak_rss_mb / pick(a).peak_rss_mb:.2f}"
            for a, b in itertools.pairwise(points)
        )
        per_m = ", ".join(f"{pick(p).wall / (p[0] / 1e6):.2f}" for p in points)
        lines.append(f"- {name} cost growth: {steps}; seconds per million records {per_m}.")
    return lines


def plot(points: list[tuple[int, Measure, Measure]], real: list[tuple[str, int, Measure, Measure]]) -> Path:
    """Two panels, wall seconds and peak RSS MB against the records, a line per tool (real files as points)."""
    from matplotlib.figure import Figure  # no pyplot: a file, no screen
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(11, 4.5), layout="constrained")
    panels = fig.subplots(1, 2)
    for ax, what, unit in ((panels[0], "wall", "wall (s)"), (panels[1], "peak_rss_mb", "peak RSS (MB)")):
        for i, (name, color) in enumerate(
            (("etl (--memory-limit 256MB)", "C0"), (f"PySUS {PYSUS_VERSION}", "C3"))
        ):
            xs = [p[0] for p in points]
            ys = [getattr(p[1 + i], what) for p in points]
            ax.plot(xs, ys, "o-", color=color, label=f"{name}, SIH RD-like")
            if real:
                rx = [r[1] for r in real]
                ry = [getattr(r[2 + i], what) for r in real]
                ax.plot(rx, ry, "s", color=color, fillstyle="none", label=f"{name}, real files")
        ax.set(xscale="log", yscale="log", xlabel="records", ylabel=unit)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.grid(True, which="both", alpha=0.3)
    panels[0].set_title("wall time, whole process")
    panels[1].set_title("peak RSS")
    panels[0].legend(fontsize="small")
    fig.suptitle("DATASUS .dbc -> Parquet: etl vs PySUS")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "pysus.png"
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    python = pysus_python()
    chosen = inputs()
    # One untimed run of each on the smallest input: what a user's first run does once (bytecode cached, the
    # libraries read from disk), so that neither tool pays it in the table.
    compare("warm-up", min((p for _, p in chosen), key=lambda p: p.stat().st_size), python, 1)
    measures: list[Measure] = []
    verdicts: list[str] = []
    points: list[tuple[int, Measure, Measure]] = []
    real: list[tuple[str, int, Measure, Measure]] = []
    for label, dbc in chosen:
        print(f"  {label}: {dbc.stat().st_size / 2**20:.1f} MB .dbc, {records(dbc):,} records", flush=True)
        turns = TURNS if dbc.stat().st_size < SMALL_MB * 2**20 else 1
        etl, pysus = compare(label, dbc, python, turns)
        measures += [etl, pysus]
        verdicts.append(verdict(label, etl, pysus))
        if label.startswith("SIH"):
            points.append((records(dbc), etl, pysus))
        else:
            real.append((label, records(dbc), etl, pysus))
        report(measures, verdicts, points, real)  # after each input: a run cut short keeps what it measured


def report(
    measures: list[Measure],
    verdicts: list[str],
    points: list[tuple[int, Measure, Measure]],
    real: list[tuple[str, int, Measure, Measure]],
) -> None:
    png = plot(points, real)
    notes = [
        *verdicts,
        *growth(points),
        f"- Plot: [{png.name}]({png.name}), wall and peak RSS against the records, a line per tool.",
        f"- PySUS {PYSUS_VERSION} from PyPI in its own virtualenv ({VENV.relative_to(ROOT.parent)}), its default "
        "fast path; whole processes, interpreter start-up and imports included for both, timed by the small "
        "process that starts each; an untimed run of each first (bytecode cached, libraries read from disk, as "
        "after a user's first run); each run's input read through just before it (in the page cache for both).",
        f"- SIH RD-like inputs of more than {GENERATED:,} records repeat the records of the {GENERATED:,}-record "
        "file (writing distinct ones takes ~4 min per million here).",
    ]
    write_table("pysus", "DATASUS .dbc -> Parquet: etl vs PySUS", measures, notes)


if __name__ == "__main__":
    main()
