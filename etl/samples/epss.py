"""Daily EPSS score files for the NVD sample's CVEs, shaped like FIRST's (`#model_version…` line, then
`cve,epss,percentile`), deterministic: KEV entries score high, a few CVEs jump on the last day."""

from __future__ import annotations

import bisect
import datetime as dt
import gzip
import math
import random
from collections.abc import Callable
from pathlib import Path

from etl.files import atomic_path
from etl.samples.nvd import make_cve
from etl.sources import map_here

MODEL = "v2025.03.14"
LAST_DAY = dt.date(2026, 11, 1)


def scores(ids: list[tuple[int, str]], day: int, days: int) -> list[tuple[str, float]]:
    """(cve, epss) of each CVE on the given day (0 = first)."""
    out = []
    for i, cve_id in ids:
        base = 10 ** random.Random(i).uniform(-4.5, -0.5) * (25 if i % 7 == 0 else 1)
        drift = math.exp(random.Random(i * 1009 + day).gauss(0, 0.05))
        jump = 40 if i % 50 == 0 and day == days - 1 else 1
        out.append((cve_id, round(min(0.97, base * drift * jump), 5)))
    return out


def write_file(path: Path, rows: list[tuple[str, float]], day: dt.date, model: str = MODEL) -> Path:
    """A score file as FIRST publishes it; percentile is the share of CVEs scoring at or below each."""
    ranked = sorted(e for _, e in rows)
    lines = [f"#model_version:{model},score_date:{day.isoformat()}T00:00:00+0000", "cve,epss,percentile"]
    n = len(ranked)
    lines += [f"{c},{e:.5f},{bisect.bisect_right(ranked, e) / n:.5f}" for c, e in rows]
    # mtime 0 and no name: the same file is the same bytes whenever written (gzip.open stamps time and name)
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6, mtime=0))
    return path


def write_sample(
    folder: Path, days: int = 8, cves: int = 3000, parallel_map: Callable[[Callable, list], list] = map_here
) -> list[Path]:
    """`days` daily files up to LAST_DAY (existing ones are kept); `parallel_map` (a Context's) may write them on
    the engine's worker processes: each day's scores depend on the day alone."""
    folder = Path(folder)
    paths, missing = [], []
    for d in range(days):
        day = LAST_DAY - dt.timedelta(days=days - 1 - d)
        path = folder / f"epss_scores-{day.isoformat()}.csv.gz"
        paths.append(path)
        if not path.exists():
            missing.append((path, day, d, days))
    if missing:
        ids = [
            (i, c["cve"]["id"]) for i in range(cves) if (c := make_cve(i))["cve"]["vulnStatus"] != "Rejected"
        ]
        parallel_map(_write_day, [(ids, *m) for m in missing])
    return paths


def _write_day(job: tuple[list[tuple[int, str]], Path, dt.date, int, int]) -> Path:
    ids, path, day, d, days = job
    return write_file(path, scores(ids, d, days), day)
