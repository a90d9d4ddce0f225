import gzip
import json

import duckdb
import pyarrow.parquet as pq
import pytest

from etl.samples.nvd import make_cve, write_sample
from etl.sources.nvd import TABLES, write_page
from tests.conftest import samples_dir
from tests.nvd_emulator import Emulator, serve


def rows(path, sql="SELECT * FROM t"):
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW t AS SELECT * FROM '{path}'")
    return con.sql(sql).fetchall()


@pytest.fixture
def window(tmp_path):
    return write_sample(tmp_path / "window", pages=3, per_page=100)


def test_a_window_becomes_six_tables_with_lineage(etl, tmp_path, window):
    r = etl("--json", "convert", "nvd", window, "--out", "out")
    assert r.code == 0, r.err
    assert json.loads(r.out)["rows"] == 300
    for table in TABLES:
        assert (tmp_path / f"out/{table}/window.parquet").exists(), table
    cves = tmp_path / "out/cves/window.parquet"
    assert rows(cves, "SELECT count(*), count(DISTINCT cve_id) FROM t") == [(300, 295)]  # 5 modified again
    assert rows(
        cves, "SELECT _source_file, _source_row FROM t WHERE cve_id = 'CVE-2018-10001' ORDER BY 1"
    ) == [("window/page-00000000.json.gz", 2), ("window/page-00000200.json.gz", 97)]
    schema = pq.read_schema(cves)
    assert str(schema.field("last_modified").type) == "timestamp[us, tz=UTC]"


def test_both_generations_of_cvss_v40_names_map_to_firsts(etl, tmp_path, window):
    assert etl("convert", "nvd", window, "--out", "out").code == 0
    got = rows(
        tmp_path / "out/metrics/window.parquet",
        "SELECT cve_id, vuln_confidentiality_impact, sub_confidentiality_impact, confidentiality_requirement, "
        "safety FROM t WHERE cvss_version = '4.0' ORDER BY cve_id LIMIT 2",
    )
    assert [g[1:] for g in got] == [("HIGH", "NONE", "NOT_DEFINED", "NOT_DEFINED")] * 2
    early = make_cve(6)["cve"]["metrics"]["cvssMetricV40"][0]["cvssData"]
    first = make_cve(3)["cve"]["metrics"]["cvssMetricV40"][0]["cvssData"]
    assert "vulnerableSystemConfidentiality" in early and "vulnConfidentialityImpact" in first
    v2 = rows(
        tmp_path / "out/metrics/window.parquet",
        "SELECT base_severity, access_vector, ac_insuf_info FROM t WHERE cvss_version = '2.0' LIMIT 1",
    )
    assert v2 == [("HIGH", "NETWORK", False)]


def test_unknown_fields_are_kept_in_raw_and_rejected_records_convert(etl, tmp_path, window):
    assert etl("convert", "nvd", window, "--out", "out").code == 0
    cves = tmp_path / "out/cves/window.parquet"
    (raw,) = rows(cves, "SELECT raw FROM t WHERE cve_id = 'CVE-2018-10011'")[0]
    assert "ssvcV203" in raw and '"affected"' in raw
    assert rows(cves, "SELECT vuln_status, description FROM t WHERE cve_id = 'CVE-2018-10013'") == [
        ("Rejected", "** REJECT ** Not used.")
    ]
    z = rows(cves, "SELECT count(*) FROM t WHERE last_modified IS NULL OR published IS NULL")
    assert z == [(0,)]  # timestamps with and without Z


def test_cpe_configurations_keep_their_structure(etl, tmp_path, window):
    assert etl("convert", "nvd", window, "--out", "out").code == 0
    got = rows(
        tmp_path / "out/cpe_matches/window.parquet",
        "SELECT configuration_operator, node_index, vulnerable, criteria FROM t WHERE cve_id = 'CVE-2018-10006' "
        "ORDER BY node_index",
    )
    assert got == [
        ("AND", 1, True, "cpe:2.3:a:openssl:openssl:*:*:*:*:*:*:*:*"),
        ("AND", 2, False, "cpe:2.3:o:linux:linux_kernel:-:*:*:*:*:*:*:*"),
    ]


def test_malformed_page_names_the_file(etl, tmp_path, window):
    bad = window / "page-00000100.json.gz"
    bad.write_bytes(gzip.compress(b'{"vulnerabilities": [{"cve": '))
    r = etl("convert", "nvd", window, "--out", "out")
    assert r.code == 1 and "window" in r.err and "cannot read NVD pages" in r.err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.parquet"))


def test_the_sample_dataset_builds_cves_current_and_the_marts(etl, tmp_path):
    (tmp_path / "etl.toml").write_text('[datasets.nvd]\nkind = "nvd"\nsample = true\nsample_pages = 2\n')
    assert etl("run").code == 0
    con = duckdb.connect(str(tmp_path / "data/warehouse.duckdb"), read_only=True)
    assert con.sql("SELECT count(*), count(DISTINCT cve_id) FROM nvd.cves_current").fetchall() == [(995, 995)]
    latest = con.sql(
        "SELECT CAST(last_modified AS VARCHAR) FROM nvd.cves_current WHERE cve_id = 'CVE-2018-10000'"
    )
    assert latest.fetchall()[0][0].startswith("2026-11-01 12:00:00")
    assert con.sql("SELECT sum(cves) FROM nvd.cves_per_cwe").fetchall()[0][0] > 900
    top = con.sql(
        "SELECT vendor, product FROM nvd.cves_per_product ORDER BY cves DESC, vendor LIMIT 1"
    ).fetchall()
    assert top[0][0] in {
        "apache",
        "cisco",
        "google",
        "linux",
        "microsoft",
        "mozilla",
        "openssl",
        "oracle",
        "paloaltonetworks",
        "wordpress",
    }
    sev = con.sql("SELECT count(*) FROM nvd.cve_severity WHERE base_severity IS NULL").fetchall()[0][0]
    assert (
        sev
        == con.sql("SELECT count(*) FROM nvd.cves_current WHERE vuln_status = 'Rejected'").fetchall()[0][0]
    )


def test_fetch_then_run_against_the_emulator(etl, tmp_path):
    emulator = Emulator(count=120, limit=5, window=1.0)
    server, url = serve(emulator)
    try:
        (tmp_path / "etl.toml").write_text(
            f'[datasets.nvd]\nkind = "nvd"\nbase_url = "{url}"\nresults_per_page = 50\nwindow_seconds = 1.0\n'
        )
        r = etl("--json", "run")
        assert r.code == 0, r.err
        assert json.loads(r.out)["rows"] == 120
        assert "cursor nvd:nvd: " in etl("status").out
        r = etl(
            "fetch",
            "nvd",
            "--full",
            "--base-url",
            url,
            "--out",
            tmp_path / "pages",
            "--results-per-page",
            "100",
            "--window-seconds",
            "1",
        )
        assert r.code == 0, r.err
    finally:
        server.shutdown()
    (folder,) = list((tmp_path / "pages").iterdir())
    assert sorted(p.name for p in folder.iterdir()) == [
        "_complete",
        "_window.json",
        "page-00000000.json.gz",
        "page-00000100.json.gz",
    ]


@pytest.mark.skipif(samples_dir() is None, reason="shared samples not present")
def test_real_pages_and_records(etl, tmp_path):
    nvd = samples_dir() / "nvd"
    r = etl("--json", "convert", "nvd", *sorted(nvd.glob("*.json")), "--out", "out")
    assert r.code == 0, r.err
    assert json.loads(r.out)["rows"] == 47 + 4 + 1 + 1 + 1
    dup = rows(
        tmp_path / "out/cves/fkiebot__nvd_response.parquet",
        "SELECT count(*) FROM t WHERE cve_id = 'CVE-2021-20560'",
    )
    assert dup == [(2,)]
    heartbleed = rows(
        tmp_path / "out/cpe_matches/fkiebot__CVE-2014-0160.parquet",
        "SELECT count(DISTINCT configuration_index), max(operator) FROM t",
    )
    assert heartbleed[0][0] == 16
    kev = rows(
        tmp_path / "out/cves/fkie__CVE-2024-3400.parquet", "SELECT cisa_exploit_add IS NOT NULL FROM t"
    )
    assert kev == [(True,)]


def test_write_page_round_trip(tmp_path):
    page = write_page(tmp_path / "p.json.gz", [make_cve(1)], 0, 1)
    assert (
        json.loads(gzip.decompress(page.read_bytes()))["vulnerabilities"][0]["cve"]["id"] == "CVE-2018-10001"
    )
