"""The risk marts' rules on hand-made inputs with exact expected values: cve_risk (best CVSS, latest EPSS, KEV,
CWE names, vendors and products of the current version), kev_overdue and epss_movers."""

import datetime as dt
import json

import duckdb
import pytest

from etl.cli import main
from etl.samples.cwe import HEADER
from etl.samples.nvd import make_cve
from etl.sources.nvd_pages import write_page

TODAY = dt.date.today()


def v40(score: float, severity: str) -> dict:
    data = {
        "version": "4.0",
        "vectorString": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
    }
    data |= {"baseScore": score, "baseSeverity": severity}
    return {"source": "cna@example.org", "type": "Secondary", "cvssData": data}


def records() -> tuple[list[dict], list[dict]]:
    """Page 1: A (v4.0 Secondary, v3.1 and v2 Primary), B (v3.1 Secondary listed before its v3.1 Primary),
    C (v3.0 and v2), D (v2 only), E (NVD's CISA fields, not in the KEV catalogue), R (Rejected).
    Page 2: B modified again, its Primary score raised."""
    a, b, c, d, e, r = (make_cve(i) for i in (1, 2, 4, 5, 14, 13))
    a["cve"]["metrics"]["cvssMetricV40"] = [v40(9.3, "CRITICAL")]
    a["cve"]["weaknesses"][0]["description"].append({"lang": "en", "value": "NVD-CWE-noinfo"})
    a["cve"]["affected"] = [{"vendor": "Apache", "product": "httpd", "versions": []}]
    secondary = json.loads(json.dumps(b["cve"]["metrics"]["cvssMetricV31"][0]))
    secondary |= {"source": "cna@example.org", "type": "Secondary"}
    secondary["cvssData"] |= {"baseScore": 5.0, "baseSeverity": "MEDIUM"}
    b["cve"]["metrics"]["cvssMetricV31"].insert(0, secondary)
    del d["cve"]["metrics"]["cvssMetricV31"]
    b2 = json.loads(json.dumps(b))
    b2["cve"]["lastModified"] = "2026-11-02T00:00:00.000"
    b2["cve"]["metrics"]["cvssMetricV31"][1]["cvssData"] |= {"baseScore": 9.8, "baseSeverity": "CRITICAL"}
    return [a, b, c, d, e, r], [b2]


def kev(version: str, released: str, entries: list[tuple[str, dt.date, str]]) -> str:
    vulns = [
        {"cveID": cve, "vendorProject": "V", "product": "P", "vulnerabilityName": f"{cve} name",
         "dateAdded": "2026-09-01", "shortDescription": "", "requiredAction": "Apply updates.",
         "dueDate": due.isoformat(), "knownRansomwareCampaignUse": ransomware, "notes": "", "cwes": []}
        for cve, due, ransomware in entries
    ]  # fmt: skip
    doc = {"catalogVersion": version, "dateReleased": released, "count": len(vulns), "vulnerabilities": vulns}
    return json.dumps(doc)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("marts")
    page1, page2 = records()
    ids = [v["cve"]["id"] for v in page1]
    a, b, c, d, e, r = ids
    write_page(root / "nvd" / "page-00000000.json.gz", page1, 0, len(page1))
    write_page(root / "nvd" / "page-00000006.json.gz", page2, 6, 7)
    (root / "kev").mkdir()
    days = dt.timedelta(days=1)
    (root / "kev/kev-1.json").write_text(
        kev(
            "2026.10.01",
            "2026-10-01T10:00:00Z",
            [(a, TODAY + 5 * days, "Unknown"), (b, TODAY - 10 * days, "Known")],
        )
    )
    (root / "kev/kev-2.json").write_text(
        kev(
            "2026.11.01",
            "2026-11-01T10:00:00Z",
            [(a, TODAY + 5 * days, "Unknown"), (c, TODAY - 3 * days, "Known")],
        )
    )
    (root / "epss").mkdir()
    scores = {
        "2026-10-01": ("v2023.03.01", {a: 0.9, b: 0.9}),
        "2026-10-20": ("v2025.03.14", {a: 0.1, b: 0.3, c: 0.02, e: 0.9}),
        "2026-10-25": ("v2025.03.14", {a: 0.2}),
        "2026-10-27": ("v2025.03.14", {a: 0.5, b: 0.25, c: 0.02, d: 0.7, e: 0.1}),
    }
    for day, (model, values) in scores.items():
        lines = [f"#model_version:{model},score_date:{day}T00:00:00+0000", "cve,epss,percentile"]
        lines += [f"{cve},{v},{v / 2}" for cve, v in values.items()]
        (root / f"epss/epss_scores-{day}.csv").write_text("\n".join(lines) + "\n")
    (root / "cwe.csv").write_text(
        ",".join(HEADER) + ",\n787,Out-of-bounds Write,Base,Draft,d,,,,,,,,,,,,,,,,,,,\n"
        "89,Improper Neutralization of Special Elements used in an SQL Command ('SQL Injection'),Base,Stable"
        ",d,,,,,,,,,,,,,,,,,,,\n"
    )
    (root / "etl.toml").write_text(
        '[datasets.nvd]\nkind = "nvd"\npaths = ["nvd"]\n'
        '[datasets.kev]\nkind = "kev"\npaths = ["kev/*.json"]\n'
        '[datasets.epss]\nkind = "epss"\npaths = ["epss/*.csv"]\n'
        '[datasets.cwe]\nkind = "cwe"\npaths = ["cwe.csv"]\n'
    )
    assert main(["--quiet", "--config", str(root / "etl.toml"), "run"]) == 0
    con = duckdb.connect(str(root / "data/warehouse.duckdb"), read_only=True)
    yield con, ids
    con.close()


def test_cve_risk_has_one_row_per_current_cve_with_its_best_cvss(warehouse):
    con, (a, b, c, d, e, r) = warehouse
    got = con.sql(
        "SELECT cve_id, cvss_version, base_score, base_severity, cvss_source, vuln_status FROM nvd.cve_risk ORDER BY cve_id"
    ).fetchall()
    status = {v["cve"]["id"]: v["cve"]["vulnStatus"] for v in records()[0]}
    assert got == sorted(
        [
            (a, "4.0", 9.3, "CRITICAL", "cna@example.org", status[a]),  # v4.0 first, even a CNA's
            (
                b,
                "3.1",
                9.8,
                "CRITICAL",
                "nvd@nist.gov",
                status[b],
            ),  # Primary before Secondary; the current version
            (c, "3.0", 5.3, "MEDIUM", "nvd@nist.gov", status[c]),
            (d, "2.0", 7.5, "HIGH", "nvd@nist.gov", status[d]),
            (e, "3.1", 7.5, "HIGH", "nvd@nist.gov", status[e]),
            (r, None, None, None, None, "Rejected"),
        ]
    )


def test_cve_risk_takes_the_latest_epss_score_date(warehouse):
    con, (a, b, c, d, e, r) = warehouse
    got = con.sql(
        "SELECT cve_id, epss, epss_percentile, CAST(epss_date AS VARCHAR), epss_model_version FROM nvd.cve_risk "
        "ORDER BY cve_id"
    ).fetchall()
    latest = {a: 0.5, b: 0.25, c: 0.02, d: 0.7, e: 0.1}
    assert got == sorted(
        (cve, latest.get(cve), latest[cve] / 2 if cve in latest else None,
         "2026-10-27" if cve in latest else None, "v2025.03.14" if cve in latest else None)
        for cve in (a, b, c, d, e, r)
    )  # fmt: skip


def test_cve_risk_kev_from_the_latest_release_else_nvds_cisa_fields(warehouse):
    con, (a, b, c, d, e, r) = warehouse
    got = con.sql(
        "SELECT cve_id, in_kev, CAST(kev_date_added AS VARCHAR), CAST(kev_due_date AS VARCHAR), kev_ransomware "
        "FROM nvd.cve_risk ORDER BY cve_id"
    ).fetchall()
    e_cve = records()[0][4]["cve"]
    assert got == sorted(
        [
            (a, True, "2026-09-01", str(TODAY + dt.timedelta(days=5)), False),
            (b, False, None, None, False),  # removed from the latest release
            (c, True, "2026-09-01", str(TODAY - dt.timedelta(days=3)), True),
            (d, False, None, None, False),
            (e, True, e_cve["cisaExploitAdd"], e_cve["cisaActionDue"], False),
            (r, False, None, None, False),
        ]
    )


def test_cve_risk_names_cwes_and_lists_vendors_and_products(warehouse):
    con, (a, b, c, d, e, r) = warehouse
    got = dict(
        (row[0], row[1:])
        for row in con.sql(
            "SELECT cve_id, cwe_ids, cwe_names, vendors, products FROM nvd.cve_risk"
        ).fetchall()
    )
    assert got[a] == (
        ["CWE-787", "NVD-CWE-noinfo"],
        ["Out-of-bounds Write", "Insufficient Information"],
        ["apache"],
        ["http_server", "httpd"],  # the CPE's and CVE JSON 5's affected product
    )
    assert got[b][:2] == (
        ["CWE-89"],
        ["Improper Neutralization of Special Elements used in an SQL Command ('SQL Injection')"],
    )
    assert got[c] == (["CWE-125"], [None], ["oracle"], ["mysql"])  # a CWE the catalogue lacks has no name
    assert got[r] == (None, None, None, None)


def test_kev_overdue_lists_the_latest_releases_entries_past_due(warehouse):
    con, (a, b, c, d, e, r) = warehouse
    got = con.sql(
        "SELECT cve_id, CAST(due_date AS VARCHAR), days_overdue, ransomware, base_severity, epss FROM nvd.kev_overdue"
    ).fetchall()
    assert got == [(c, str(TODAY - dt.timedelta(days=3)), 3, True, "MEDIUM", 0.02)]


def test_epss_movers_compare_the_latest_date_with_one_a_week_before(warehouse):
    con, (a, b, c, d, e, r) = warehouse
    got = con.sql(
        "SELECT cve_id, CAST(date_from AS VARCHAR), CAST(date_to AS VARCHAR), epss_from, epss_to, epss_change, "
        "model_changed, in_kev FROM nvd.epss_movers"
    ).fetchall()
    assert got == [  # 2026-10-20, the latest date at least 7 days before 2026-10-27; unchanged C left out
        (e, "2026-10-20", "2026-10-27", 0.9, 0.1, -0.8, False, True),
        (a, "2026-10-20", "2026-10-27", 0.1, 0.5, 0.4, False, True),
        (b, "2026-10-20", "2026-10-27", 0.3, 0.25, -0.05, False, False),
    ]


def test_the_marts_build_without_the_enrichment_datasets(etl, tmp_path):
    page1, _ = records()
    write_page(tmp_path / "nvd" / "page-00000000.json.gz", page1, 0, len(page1))
    (tmp_path / "etl.toml").write_text('[datasets.nvd]\nkind = "nvd"\npaths = ["nvd"]\n')
    r = etl("run")
    assert r.code == 0, r.err
    con = duckdb.connect(str(tmp_path / "data/warehouse.duckdb"), read_only=True)
    got = con.sql("SELECT count(*), count(epss), count(*) FILTER (WHERE in_kev) FROM nvd.cve_risk").fetchall()
    assert got == [(6, 0, 1)]  # E carries NVD's CISA fields
    assert con.sql("SELECT count(*) FROM nvd.kev_overdue").fetchall() == [(0,)]
    assert con.sql("SELECT count(*) FROM nvd.epss_movers").fetchall() == [(0,)]
