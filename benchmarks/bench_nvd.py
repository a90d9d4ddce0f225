"""NVD: converting pages to tables (etl vs json.load + per-record flattening), and fetching under the rate limit.

Targets (issue 4): 200 pages of 2,000 CVEs convert within a 256 MB budget; throughput >= 5x the naive way;
a fetch of N pages against the emulator takes <= 1.1x the time the rate limit itself imposes, never throttled.
Scale with ETL_BENCH_NVD_PAGES (default 200) and ETL_BENCH_NVD_FETCH_PAGES (default 12).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from benchmarks.common import WORK, Measure, python, run, write_table

NAIVE = """
import gzip, json, sys, pyarrow as pa, pyarrow.parquet as pq
from pathlib import Path
cves, metrics = [], []
for page in sorted(Path(sys.argv[1]).glob("page-*.json.gz")):
    for pos, v in enumerate(json.load(gzip.open(page))["vulnerabilities"], 1):
        c = v["cve"]
        en = [d["value"] for d in c.get("descriptions", []) if d["lang"] == "en"]
        cves.append({"cve_id": c["id"], "published": c["published"], "last_modified": c["lastModified"],
                     "vuln_status": c["vulnStatus"], "description": en[0] if en else None,
                     "raw": json.dumps(c), "_source_file": page.name, "_source_row": pos})
        for key, ms in c.get("metrics", {}).items():
            for m in ms:
                if "cvssData" in m:
                    metrics.append({"cve_id": c["id"], "type": key, **{k: str(x) for k, x in m["cvssData"].items()}})
pq.write_table(pa.Table.from_pylist(cves), sys.argv[2] + "/cves.parquet")
pq.write_table(pa.Table.from_pylist(metrics), sys.argv[2] + "/metrics.parquet")
"""


def make_pages(pages: int) -> Path:
    folder = WORK / f"nvd_{pages}_pages"
    if not (folder / "_complete").exists():
        code = (
            f"from etl.samples.nvd import write_sample; write_sample(__import__('pathlib').Path('{folder}'), "
            f"pages={pages}, per_page=2000)"
        )
        import subprocess

        subprocess.run([sys.executable, "-c", code], check=True)
    return folder


def fetch_bench(pages: int) -> tuple[list[Measure], list[str]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from etl.sources.nvd_api import sync
    from tests.nvd_emulator import Emulator, serve

    limit, window = 5, 3.0  # NVD's 5 per 30 s, scaled down tenfold
    emulator = Emulator(count=pages * 100, limit=limit, window=window)
    server, url = serve(emulator)
    out = WORK / "nvd_fetch"
    shutil.rmtree(out, ignore_errors=True)
    try:
        start = time.perf_counter()
        sync(
            out,
            state=None,
            cursor_name="bench",
            base_url=url,
            results_per_page=100,
            max_requests=limit,
            window_seconds=window,
        )
        wall = time.perf_counter() - start
    finally:
        server.shutdown()
    # N requests under "limit per window" cannot finish before (ceil(N / limit) - 1) windows have passed.
    floor = (-(-pages // limit) - 1) * window
    m = Measure(
        f"etl fetch, {pages} pages ({limit} req / {window:g} s)",
        wall,
        float("nan"),
        0.0,
        True,
        f"throttled {emulator.throttled}",
    )
    notes = [
        f"- Fetch: {wall:.2f} s for {pages} pages where the rate limit alone imposes {floor:.1f} s: "
        f"{wall / floor:.3f}x (target <= 1.1x), {emulator.throttled} throttled requests (target 0)."
    ]
    return [m], notes


def main() -> None:
    pages = int(os.environ.get("ETL_BENCH_NVD_PAGES", 200))
    folder = make_pages(pages)
    out = WORK / "nvd_out"
    shutil.rmtree(out, ignore_errors=True)
    (out / "naive").mkdir(parents=True)
    etl = [
        sys.executable,
        "-m",
        "etl.cli",
        "--quiet",
        "--memory-limit",
        "1GB",
        "--data-dir",
        str(out / "data"),
        "convert",
        "nvd",
        str(folder),
        "--out",
        str(out / "etl"),
    ]
    measures = [
        run(f"etl convert nvd ({pages} pages, 1GB)", etl, out / "etl"),
        run(
            "json.load + Python flattening (2 tables)",
            [*python(NAIVE), str(folder), str(out / "naive")],
            out / "naive",
            note="cves and metrics only",
        ),
    ]
    cves = pages * 2000
    etl_m, naive = measures
    notes = [
        f"- {pages} pages of 2,000 generated CVEs ({cves:,} records).",
        f"- Convert: etl {cves / etl_m.wall:,.0f} CVEs/s into six tables, naive {cves / naive.wall:,.0f} CVEs/s "
        f"into two: {naive.wall / etl_m.wall:.1f}x (target >= 5x); etl peak RSS {etl_m.peak_rss_mb:.0f} MB "
        f"at a 1 GB budget (target: 256 MB), naive {naive.peak_rss_mb:.0f} MB.",
    ]
    fetch, fetch_notes = fetch_bench(int(os.environ.get("ETL_BENCH_NVD_FETCH_PAGES", 12)))
    write_table(
        "nvd",
        "NVD pages -> Parquet, and fetching under the rate limit",
        measures + fetch,
        notes + fetch_notes,
    )


if __name__ == "__main__":
    main()
