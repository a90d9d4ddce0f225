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

# What a user would write: json.load each page, flatten every record in Python into the same six tables as etl
# (same columns, timestamps parsed, v4.0's early names mapped), one Parquet file per page and table (holding all
# 400k CVEs' rows in lists would need tens of GB).
NAIVE = """
import datetime as dt, gzip, json, sys
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq

EARLY_V40 = {"vulnerableSystemConfidentiality": "vulnConfidentialityImpact",
             "vulnerableSystemIntegrity": "vulnIntegrityImpact", "vulnerableSystemAvailability": "vulnAvailabilityImpact",
             "subsequentSystemConfidentiality": "subConfidentialityImpact",
             "subsequentSystemIntegrity": "subIntegrityImpact", "subsequentSystemAvailability": "subAvailabilityImpact",
             "confidentialityRequirements": "confidentialityRequirement",
             "integrityRequirements": "integrityRequirement", "availabilityRequirements": "availabilityRequirement",
             "safety": "Safety", "automatable": "Automatable", "recovery": "Recovery"}
VERSIONS = {"cvssMetricV2": "2.0", "cvssMetricV30": "3.0", "cvssMetricV31": "3.1", "cvssMetricV40": "4.0"}
BOUNDS = ("versionStartIncluding", "versionStartExcluding", "versionEndIncluding", "versionEndExcluding")

def snake(name):
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in name).lstrip("_")

def ts(text):
    return dt.datetime.fromisoformat(text.rstrip("Z")).replace(tzinfo=dt.timezone.utc)

def date(text):
    return dt.date.fromisoformat(text) if text else None

out = Path(sys.argv[2])
for page in sorted(Path(sys.argv[1]).glob("page-*.json.gz")):
    with gzip.open(page) as f:
        vulns = json.load(f)["vulnerabilities"]
    tables = {t: [] for t in ("cves", "metrics", "weaknesses", "cpe_matches", "references", "descriptions")}
    for pos, v in enumerate(vulns, 1):
        c = v["cve"]
        key = {"cve_id": c["id"]}
        lineage = {"_source_file": page.name, "_source_row": pos}
        english = [d["value"] for d in c.get("descriptions", []) if d["lang"] == "en"]
        tables["cves"].append({
            **key, "source_identifier": c.get("sourceIdentifier"), "published": ts(c["published"]),
            "last_modified": ts(c["lastModified"]), "vuln_status": c.get("vulnStatus"),
            "description": english[0] if english else None,
            "cisa_exploit_add": date(c.get("cisaExploitAdd")), "cisa_action_due": date(c.get("cisaActionDue")),
            "cisa_required_action": c.get("cisaRequiredAction"),
            "cisa_vulnerability_name": c.get("cisaVulnerabilityName"), "cve_tags": c.get("cveTags"),
            "raw": json.dumps(c), **lineage})
        for name, version in VERSIONS.items():
            for m in c.get("metrics", {}).get(name, []):
                data = {snake(EARLY_V40.get(k, k)): x for k, x in m.get("cvssData", {}).items()}
                outer = {snake(k): x for k, x in m.items() if k not in ("cvssData", "baseSeverity")}
                tables["metrics"].append({
                    **key, "cvss_version": version, **outer, **data,
                    "base_severity": data.get("base_severity", m.get("baseSeverity")), **lineage})
        for w in c.get("weaknesses", []):
            for d in w.get("description", []):
                tables["weaknesses"].append(
                    {**key, "source": w.get("source"), "type": w.get("type"), "cwe_id": d["value"], **lineage})
        for ci, conf in enumerate(c.get("configurations", []), 1):
            for ni, node in enumerate(conf.get("nodes", []), 1):
                for m in node.get("cpeMatch", []):
                    tables["cpe_matches"].append({
                        **key, "configuration_index": ci, "configuration_operator": conf.get("operator"),
                        "node_index": ni, "operator": node.get("operator"), "negate": node.get("negate"),
                        "vulnerable": m.get("vulnerable"), "criteria": m.get("criteria"),
                        "match_criteria_id": m.get("matchCriteriaId"), **{snake(b): m.get(b) for b in BOUNDS},
                        **lineage})
        for r in c.get("references", []):
            tables["references"].append(
                {**key, "url": r.get("url"), "source": r.get("source"), "tags": r.get("tags"), **lineage})
        for d in c.get("descriptions", []):
            tables["descriptions"].append({**key, "lang": d["lang"], "value": d["value"], **lineage})
    for name, rows in tables.items():
        (out / name).mkdir(exist_ok=True)
        columns = dict.fromkeys(k for row in rows for k in row)  # from_pylist would keep the first row's keys only
        table = pa.table({k: [row.get(k) for row in rows] for k in columns})
        pq.write_table(table, out / name / (page.name + ".parquet"), compression="zstd")
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
    budget_mb = 256
    etl = [
        sys.executable,
        "-m",
        "etl.cli",
        "--quiet",
        "--memory-limit",
        f"{budget_mb}MB",
        "--data-dir",
        str(out / "data"),
        "convert",
        "nvd",
        str(folder),
        "--out",
        str(out / "etl"),
    ]
    measures = [
        run(f"etl convert nvd ({pages} pages, {budget_mb}MB)", etl, out / "etl"),
        run(
            "json.load + Python flattening",
            [*python(NAIVE), str(folder), str(out / "naive")],
            out / "naive",
            note="six tables, a file per page",
        ),
    ]
    cves = pages * 2000
    etl_m, naive = measures
    speedup = naive.wall / etl_m.wall
    notes = [
        f"- {pages} pages of 2,000 generated CVEs ({cves:,} records), both into the same six tables.",
        f"- Convert: etl {cves / etl_m.wall:,.0f} CVEs/s, naive {cves / naive.wall:,.0f} CVEs/s: {speedup:.1f}x "
        f"(target >= 5x: {'met' if speedup >= 5 else 'not met'}); etl peak RSS {etl_m.peak_rss_mb:.0f} MB "
        f"at a {budget_mb} MB budget (target < {budget_mb} MB: "
        f"{'met' if etl_m.peak_rss_mb < budget_mb else 'not met'}), naive {naive.peak_rss_mb:.0f} MB.",
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
