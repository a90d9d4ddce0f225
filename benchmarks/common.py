"""Helpers for the benchmarks: run a contender as a child process, measure wall time and peak RSS, write tables."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work"  # generated inputs and outputs (gitignored)
RESULTS = ROOT / "results"


@dataclass
class Measure:
    tool: str
    wall: float
    peak_rss_mb: float
    output_mb: float
    ok: bool
    note: str = ""


def du_mb(path: Path) -> float:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20 if path.exists() else 0.0


def run(tool: str, argv: list[str], output: Path, note: str = "", env: dict | None = None) -> Measure:
    """Run argv as a child process; peak RSS comes from the kernel's accounting of that child (wait4)."""
    start = time.perf_counter()
    # Measured from a small launcher: a child forked from this (possibly large) process would count our pages.
    proc = subprocess.run(
        [sys.executable, "-m", "etl.memory", *argv],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    wall = time.perf_counter() - start
    *err, last = proc.stderr.rstrip("\n").split("\n")
    peak = float(last.removeprefix("peak_rss_mb=")) if last.startswith("peak_rss_mb=") else float("nan")
    ok = proc.returncode == 0
    if not ok:
        note = (note + " " if note else "") + f"FAILED: {err[-1] if err else 'no message'}"
    m = Measure(tool, wall, peak, du_mb(output), ok, note)
    print(
        f"  {m.tool:<34} {m.wall:8.2f} s {m.peak_rss_mb:8.0f} MB {m.output_mb:9.1f} MB {m.note}", flush=True
    )
    return m


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def write_table(topic: str, title: str, measures: list[Measure], notes: list[str]) -> Path:
    load = os.getloadavg()[0]
    shared = ": above the core count, other work shared the machine and times are noisy"
    lines = [
        f"# {title}",
        "",
        f"Machine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}; load average {load:.1f} (1 min) as the "
        f"table was written{shared if load > (os.cpu_count() or 1) else ''}.",
        "",
        "| tool | wall (s) | peak RSS (MB) | output (MB) | note |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {m.tool} | {m.wall:.2f} | {m.peak_rss_mb:.0f} | {m.output_mb:.1f} | {m.note} |" for m in measures
    ]
    lines += ["", *notes, ""]
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{topic}.md"
    path.write_text("\n".join(lines))
    print("\n".join(lines))
    return path
