"""EPSS and the risk mart at scale: a year of daily EPSS files (~110M rows) into Parquet, and the warehouse build
with cve_risk over ~300k CVEs, each within a 512 MB budget; beside naive pandas ways of doing the same.

Targets (issue 14): both etl steps under a 512 MB peak RSS. Scale with ETL_BENCH_EPSS_DAYS (default 365) and
ETL_BENCH_EPSS_CVES (default 300000). Inputs are generated once under benchmarks/work/epss-DAYSxCVES/ (a few minutes).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
import sys
from pathlib import Path

from benchmarks.common import WORK, Measure, du_mb, python, run, write_table

DAYS = int(os.environ.get("ETL_BENCH_EPSS_DAYS", 365))
CVES = int(os.environ.get("ETL_BENCH_EPSS_CVES", 300_000))
BUDGET = "512MB"
FIRST_DAY = dt.date(2025, 1, 1)

# What a pandas user writes: each day's CSV read whole, typed, written as Parquet (one file at a time, which is
# already the careful way: concatenating the year first would need tens of GB).
NAIVE_EPSS = """
import re, sys
from pathlib import Path
import pandas as pd
src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
for f in sorted(src.glob("epss_scores-*.csv.gz")):
    import gzip
    with gzip.open(f, "rt") as g:
        head = g.readline()
    model, date = re.match(r"#model_version:([^,]*),score_date:(\\d{4}-\\d\\d-\\d\\d)", head).groups()
    df = pd.read_csv(f, skiprows=1)
    df["score_date"] = pd.to_datetime(date).date()
    df["model_version"] = model
    df.to_parquet(out / (f.name.split(".")[0] + ".parquet"), index=False)
"""

# cve_risk in pandas over the same Parquet: every table read whole (only the columns needed), the latest score
# per CVE by sorting the year of EPSS scores. Run under an address-space cap so that it fails instead of
# taking the shared machine's memory.
NAIVE_RISK = """
import resource, sys
from pathlib import Path
import pandas as pd
cap = int(sys.argv[3]) << 20  # MB
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
p, out = Path(sys.argv[1]), Path(sys.argv[2])
read = lambda t, cols: pd.read_parquet(p / "nvd" / t, columns=cols)
cves = read("cves", ["cve_id", "last_modified", "vuln_status", "cisa_exploit_add", "_source_file", "_source_row"])
cves = cves.sort_values(["last_modified", "_source_file", "_source_row"]).drop_duplicates("cve_id", keep="last")
key = ["cve_id", "_source_file", "_source_row"]
metrics = read("metrics", [*key, "cvss_version", "type", "source", "base_score", "base_severity"]).merge(cves[key])
metrics["primary"] = metrics["type"] == "Primary"
best = metrics.sort_values(["cvss_version", "primary", "source"], ascending=[False, False, True]).drop_duplicates("cve_id")
weak = read("weaknesses", [*key, "cwe_id"]).merge(cves[key]).groupby("cve_id")["cwe_id"].agg(lambda s: sorted(set(s)))
cpe = read("cpe_matches", [*key, "criteria", "vulnerable"]).merge(cves[key])
cpe = cpe[cpe["vulnerable"]]
cpe["vendor"] = cpe["criteria"].str.split(":").str[3]
vendors = cpe.groupby("cve_id")["vendor"].agg(lambda s: sorted(set(s)))
if sys.argv[4] == "year":  # every score of the year, the latest per CVE kept
    epss = pd.read_parquet(p / "epss", columns=["cve_id", "epss", "percentile", "score_date"])
    latest = epss.sort_values("score_date").drop_duplicates("cve_id", keep="last")
else:  # the shortcut: only the latest day's file
    latest = pd.read_parquet(sorted((p / "epss").glob("*.parquet"))[-1], columns=["cve_id", "epss", "percentile", "score_date"])
kev = pd.read_parquet(p / "kev", columns=["cve_id", "catalog_version", "due_date"])
kev = kev[kev["catalog_version"] == kev["catalog_version"].max()]
risk = (cves[["cve_id", "vuln_status"]].merge(best[["cve_id", "cvss_version", "base_score", "base_severity"]], how="left")
        .merge(latest, how="left", on="cve_id").merge(kev[["cve_id", "due_date"]], how="left", on="cve_id")
        .merge(weak.rename("cwe_ids"), how="left", left_on="cve_id", right_index=True)
        .merge(vendors.rename("vendors"), how="left", left_on="cve_id", right_index=True))
risk["in_kev"] = risk["due_date"].notna()
out.mkdir(parents=True, exist_ok=True)
risk.to_parquet(out / "cve_risk.parquet", index=False)
print(len(risk), file=sys.stderr)
"""


def generate(root: Path) -> None:
    """NVD pages of CVES records, DAYS daily EPSS files scoring them, a KEV catalogue and the CWE sample."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from etl.samples.cwe import write_sample as write_cwe
    from etl.samples.kev import entry
    from etl.samples.nvd import make_cve
    from etl.sources.nvd_pages import COMPLETE, write_page

    nvd = root / "raw/nvd/full"
    if not (nvd / COMPLETE).exists():
        nvd.mkdir(parents=True, exist_ok=True)
        for start in range(0, CVES, 2000):
            vulns = [make_cve(i) for i in range(start, min(CVES, start + 2000))]
            write_page(nvd / f"page-{start:08d}.json.gz", vulns, start, CVES)
        (nvd / COMPLETE).write_text("")
    ids_file = root / "ids.json"
    if not ids_file.exists():
        ids_file.write_text(json.dumps([make_cve(i)["cve"]["id"] for i in range(CVES)]))
    ids = pa.array(json.loads(ids_file.read_text()))
    epss_dir = root / "raw/epss"
    epss_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = 10 ** rng.uniform(-4.5, -0.5, CVES)
    for d in range(DAYS):
        day = FIRST_DAY + dt.timedelta(days=d)
        path = epss_dir / f"epss_scores-{day}.csv.gz"
        base = np.minimum(0.97, base * np.exp(rng.normal(0, 0.03, CVES)))
        if path.exists():
            continue
        scores = np.round(base, 5)
        percentile = np.round((np.argsort(np.argsort(scores)) + 1) / CVES, 5)
        table = pa.table({"cve": ids, "epss": scores, "percentile": percentile})
        tmp = path.with_suffix(".tmp")
        with gzip.open(tmp, "wb", compresslevel=1) as f:
            f.write(f"#model_version:v2025.03.14,score_date:{day}T00:00:00+0000\n".encode())
            pcsv.write_csv(table, f, pcsv.WriteOptions(quoting_style="none"))
        os.replace(tmp, path)
    kev = root / "raw/kev/known_exploited_vulnerabilities-2026.11.01.json"
    if not kev.exists():
        kev.parent.mkdir(parents=True, exist_ok=True)
        entries = [e for i in range(0, CVES, 7) if (e := entry(i))]
        kev.write_text(json.dumps({"catalogVersion": "2026.11.01", "dateReleased": "2026-11-01T00:00:00Z",
                                   "count": len(entries), "vulnerabilities": entries}))  # fmt: skip
    write_cwe(root / "raw/cwe/cwe.csv")


def main() -> None:
    root = WORK / f"epss-{DAYS}x{CVES}"  # inputs of another scale are not reused
    generate(root)
    config = root / "etl.toml"
    config.write_text(
        f'[etl]\ndata_dir = "data"\nmemory_limit = "{BUDGET}"\nthreads = 2\n'
        '[datasets.nvd]\nkind = "nvd"\npaths = ["raw/nvd/full"]\n'
        '[datasets.kev]\nkind = "kev"\npaths = ["raw/kev/*.json"]\n'
        '[datasets.epss]\nkind = "epss"\npaths = ["raw/epss/*.csv.gz"]\n'
        '[datasets.cwe]\nkind = "cwe"\npaths = ["raw/cwe/cwe.csv"]\n'
    )
    shutil.rmtree(root / "data", ignore_errors=True)
    shutil.rmtree(root / "naive", ignore_errors=True)
    etl = [sys.executable, "-m", "etl.cli", "--quiet", "--config", str(config)]
    rows = DAYS * CVES
    measures: list[Measure] = [
        run(f"etl: {DAYS} EPSS files -> Parquet", [*etl, "run", "--only", "epss"], root / "data/parquet/epss",
            note=f"{rows / 1e6:.0f}M rows, {BUDGET}"),
        run("pandas: read_csv + to_parquet per file", [*python(NAIVE_EPSS), str(root / "raw/epss"), str(root / "naive/epss")],
            root / "naive/epss", note="one file at a time"),
    ]  # fmt: skip
    run(
        f"(etl: convert {CVES} CVEs, KEV, CWE)",
        [*etl, "run", "--only", "nvd", "kev", "cwe"],
        root / "data/parquet",
    )
    measures += [
        run("etl transform: warehouse with cve_risk", [*etl, "transform"], root / "data/warehouse.duckdb",
            note=f"all marts, {BUDGET}"),
        run("pandas: cve_risk (capped at 4 GB)", [*python(NAIVE_RISK), str(root / "data/parquet"), str(root / "naive/risk"), "4096", "year"],
            root / "naive/risk", note="the year of EPSS read whole"),
        run("pandas: cve_risk, latest EPSS file only", [*python(NAIVE_RISK), str(root / "data/parquet"), str(root / "naive/risk1"), "4096", "latest"],
            root / "naive/risk1", note="the shortcut"),
    ]  # fmt: skip
    epss_mb = du_mb(root / "raw/epss")
    write_table(
        "epss",
        f"EPSS: {DAYS} daily files ({rows / 1e6:.0f}M rows, {epss_mb:.0f} MB gzip) and cve_risk over {CVES} CVEs",
        measures,
        [
            f"etl ran with `--memory-limit {BUDGET}`, 2 threads; peak RSS is the whole process tree's (wait4).",
            "pandas is used by this benchmark only. Its cve_risk runs under a 4 GB address-space cap (RLIMIT_AS) so "
            "that it fails rather than take the machine's memory; a failure there means it needed more.",
        ],
    )
