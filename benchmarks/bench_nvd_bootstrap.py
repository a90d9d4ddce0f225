"""NVD bootstrap: a first sync from a mirror's CVE-all.json.xz plus one API window, against the floor a keyless full
sync cannot beat (NVD's rate limit: 5 requests per rolling 30 s, 2,000 CVEs a page).

Scale with ETL_BENCH_BOOTSTRAP_CVES (default 100000). The API is the emulator on loopback with NVD's keyless limit.
"""

from __future__ import annotations

import datetime as dt
import json
import lzma
import math
import os
import shutil
import sys

from benchmarks.common import WORK, Measure, run, write_table

CVES = int(os.environ.get("ETL_BENCH_BOOTSTRAP_CVES", 100_000))


def keyless_floor(cves: int, limit: int = 5, window: float = 30.0) -> float:
    """Seconds a full sync of `cves` needs at least: `limit` pages per `window`, the first `limit` at once."""
    return (math.ceil(math.ceil(cves / 2000) / limit) - 1) * window


def main() -> None:
    from etl.samples.nvd import make_cve
    from tests.nvd_emulator import Emulator, running

    root = WORK / f"nvd_bootstrap-{CVES}"
    mirror = root / "CVE-all.json.xz"
    now = dt.datetime.now(dt.UTC)
    released = now - dt.timedelta(days=1)
    if not mirror.exists():
        root.mkdir(parents=True, exist_ok=True)
        head = {
            "timestamp": released.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "cve_count": CVES,
            "feed_name": "CVE-all",
        }
        with lzma.open(root / "tmp.xz", "wt", preset=1) as f:
            f.write(json.dumps(head)[:-1] + ', "cve_items": [')
            for i in range(CVES):
                f.write(("," if i else "") + json.dumps(make_cve(i)["cve"]))
            f.write("]}")
        os.replace(root / "tmp.xz", mirror)
    shutil.rmtree(root / "data", ignore_errors=True)
    emulator = Emulator(count=0, limit=5, window=30.0)
    for hours in range(1, 21):  # changed since the release: one window, one page
        emulator.add(now - dt.timedelta(hours=hours))
    with running(emulator) as (_, url):
        (root / "etl.toml").write_text(
            f'[etl]\ndata_dir = "data"\nmemory_limit = "512MB"\n[datasets.nvd]\nkind = "nvd"\n'
            f'bootstrap = ["CVE-all.json.xz"]\nbase_url = "{url}"\n'
        )
        etl = [sys.executable, "-m", "etl.cli", "--quiet", "--config", str(root / "etl.toml"), "run"]
        measures = [
            run(
                f"etl: bootstrap {CVES} CVEs + 1 API window",
                etl,
                root / "data",
                note="convert, warehouse, marts",
            )
        ]
    requests = len(emulator.requests)
    floor = keyless_floor(CVES)
    measures.append(
        Measure(f"keyless full sync of {CVES} (floor)", floor, float("nan"), 0.0, True, "fetch only")
    )
    measures.append(Measure("keyless full sync of 300000 (floor)", keyless_floor(300_000), float("nan"), 0.0, True,
                            "fetch only"))  # fmt: skip
    write_table(
        "nvd_bootstrap",
        f"NVD bootstrap from a mirror file ({mirror.stat().st_size / 2**20:.0f} MB xz, {CVES} CVEs) vs a keyless full sync",
        measures,
        [
            f"The bootstrap made {requests} API request(s): a lastModified window from the release time less a day.",
            "The floors are what NVD's keyless limit (5 requests per rolling 30 s, 2,000 CVEs a page) imposes on "
            "fetching alone, before converting anything; etl's own fetch takes 1.04-1.13x its floor "
            "(benchmarks/results/nvd_fetch.md).",
        ],
    )
