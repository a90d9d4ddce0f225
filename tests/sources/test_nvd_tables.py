"""NVD fields beyond the six first tables, records given one per file, keys outside NVD's schema, and
`etl convert nvd` on the folder `etl fetch nvd` wrote."""

import datetime as dt
import gzip
import json

import duckdb
import pytest

from etl.samples.nvd import make_cve
from etl.sources.nvd_pages import write_page
from tests.nvd_emulator import Emulator, running


def rows(path, sql="SELECT * FROM t"):
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW t AS SELECT * FROM '{path}'")
    return con.sql(sql).fetchall()


@pytest.fixture
def converted(etl, tmp_path):
    window = tmp_path / "window"
    write_page(window / "page-00000000.json.gz", [make_cve(i) for i in range(60)], 0, 60)
    r = etl("convert", "nvd", window, "--out", "out")
    assert r.code == 0, r.err
    return tmp_path / "out"


def test_cvss_v2_base_severity_inside_cvss_data_is_read(etl, tmp_path):
    cve = make_cve(1)["cve"]
    v2 = cve["metrics"]["cvssMetricV2"][0]
    v2["cvssData"]["baseSeverity"] = v2.pop("baseSeverity")  # as NVD sends CVE-2021-45357 since 2025
    write_page(tmp_path / "w" / "page-00000000.json.gz", [{"cve": cve}], 0, 1)
    assert etl("convert", "nvd", tmp_path / "w", "--out", "out").code == 0
    got = rows(tmp_path / "out/metrics/w.parquet", "SELECT base_severity FROM t WHERE cvss_version = '2.0'")
    assert got == [("HIGH",)]


def test_affected_products_have_a_table(converted):
    got = rows(
        converted / "affected/window.parquet",
        "SELECT cve_id, affected_index, vendor, product, collection_url, package_name, default_status, cpes, "
        "versions[1].version, versions[1].less_than, versions[1].status, versions[1].version_type, "
        "_source_file, _source_row FROM t ORDER BY cve_id",
    )
    assert [g[0] for g in got] == [f"CVE-2018-{10000 + i}" for i in (0, 11, 22, 33, 44, 55)]
    assert got[1] == (
        "CVE-2018-10011",
        1,
        "apache",
        "http_server",
        "https://repo.example.org",
        "http_server",
        "unaffected",
        ["cpe:2.3:a:apache:http_server:*:*:*:*:*:*:*:*"],
        "0",
        "3.4",
        "affected",
        "semver",
        "window/page-00000000.json.gz",
        12,
    )


def test_ssvc_decisions_have_a_table(converted):
    got = rows(
        converted / "ssvc/window.parquet",
        "SELECT cve_id, source, type, id, role, version, automatable, exploitation, technical_impact "
        "FROM t WHERE cve_id IN ('CVE-2018-10000', 'CVE-2018-10011') ORDER BY cve_id",
    )
    assert got == [
        ("CVE-2018-10000", "134c704f-9b21-4f2e-91b3-4a467353bcc0", "Secondary", "CVE-2018-10000",
         "CISA Coordinator", "2.0.3", "yes", "active", "total"),
        ("CVE-2018-10011", "134c704f-9b21-4f2e-91b3-4a467353bcc0", "Secondary", "CVE-2018-10011",
         "CISA Coordinator", "2.0.3", "yes", "none", "total"),
    ]  # fmt: skip


def test_evaluator_fields_vendor_comments_and_weakness_language(converted):
    cves = rows(
        converted / "cves/window.parquet",
        "SELECT cve_id, evaluator_impact FROM t WHERE evaluator_impact IS NOT NULL ORDER BY cve_id",
    )
    assert [c[0] for c in cves] == [f"CVE-2018-{10000 + i}" for i in (0, 26, 39, 52)]  # 13 is Rejected
    assert cves[0][1] == "Only configurations with the module enabled are affected."
    comments = rows(
        converted / "vendor_comments/window.parquet",
        "SELECT cve_id, organization, comment, CAST(last_modified AS VARCHAR) FROM t ORDER BY cve_id LIMIT 1",
    )
    assert comments == [
        ("CVE-2018-10000", "Microsoft", "Fixed in the next release.", "2018-01-06 00:27:00+00")
    ]
    assert rows(converted / "weaknesses/window.parquet", "SELECT DISTINCT lang FROM t") == [("en",)]


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_record_per_file_keeps_its_text_and_its_name(etl, tmp_path, wrapped):
    cve = make_cve(3)["cve"]
    text = json.dumps(cve, indent=3)  # as mirrors publish them, pretty-printed
    doc = '{\n  "cve": ' + text + "\n}\n" if wrapped else text + "\n"
    path = tmp_path / "CVE-2018-10003.json.gz"
    path.write_bytes(gzip.compress(doc.encode()))
    r = etl("--json", "convert", "nvd", path, "--out", "out")
    assert r.code == 0, r.err
    got = rows(
        tmp_path / "out/cves/CVE-2018-10003.parquet", "SELECT cve_id, raw, _source_file, _source_row FROM t"
    )
    assert got == [("CVE-2018-10003", text, "CVE-2018-10003.json.gz", 1)]
    metrics = rows(tmp_path / "out/metrics/CVE-2018-10003.parquet", "SELECT DISTINCT _source_file FROM t")
    assert metrics == [("CVE-2018-10003.json.gz",)]


def test_keys_outside_nvds_schema_are_reported_once_per_run(etl, tmp_path):
    first, second = make_cve(1), make_cve(2)
    first["cve"]["exploitPrediction"] = {"score": 0.5}
    second["cve"]["exploitPrediction"] = {"score": 0.1}
    second["cve"]["metrics"]["cvssMetricV50"] = [{"source": "x"}]
    write_page(tmp_path / "a" / "page-00000000.json.gz", [first, second], 0, 2)
    write_page(tmp_path / "b" / "page-00000000.json.gz", [second], 0, 1)
    r = etl("convert", "nvd", tmp_path / "a", tmp_path / "b", "--out", "out")
    assert r.code == 0, r.err
    warnings = [m for m in r.err.splitlines() if "outside NVD's schema" in m]
    assert warnings == [
        f"WARNING {tmp_path / 'a'}: keys outside NVD's schema, kept in cves.raw only: exploitPrediction (2 records), "
        "metrics.cvssMetricV50 (1 records)"
    ]
    (raw,) = rows(tmp_path / "out/cves/b.parquet", "SELECT raw FROM t")[0]
    assert json.loads(raw)["exploitPrediction"] == {"score": 0.1}


def test_fetch_then_convert_the_fetch_folder(etl, tmp_path):
    """`etl fetch nvd --out DIR`, then `etl convert nvd DIR`: every complete window, incomplete ones skipped."""
    emulator = Emulator(count=120, limit=5, window=1.0)
    now = dt.datetime.now(dt.UTC)
    for hours in (30, 20, 10):  # changed in the last days: the incremental window's records
        emulator.add(now - dt.timedelta(hours=hours))
    fetch = ["fetch", "nvd", "--out", "pages", "--results-per-page", "50", "--window-seconds", "1"]
    with running(emulator) as (_, url):
        assert etl(*fetch, "--base-url", url, "--full").code == 0
        since = (now - dt.timedelta(days=2)).isoformat()
        r = etl(*fetch, "--base-url", url, "--since", since)
        assert r.code == 0, r.err
    (window,) = [p for p in (tmp_path / "pages").iterdir() if p.name != "full"]
    killed = tmp_path / "pages" / "20200101T000000Z_20200201T000000Z"  # a fetch killed mid-window
    killed.mkdir()
    (killed / "_window.json").write_text((window / "_window.json").read_text())
    (killed / "page-00000000.json.gz").write_bytes((window / "page-00000000.json.gz").read_bytes())
    r = etl("--json", "convert", "nvd", "pages", "--out", "out")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["rows"] == 123 + 3 and summary["skipped"] == 1
    (skipped,) = [s for s in summary["steps"] if s["status"] == "skipped"]
    assert skipped["file"] == str(killed.relative_to(tmp_path))
    assert "incomplete fetch window" in skipped["error"]
    assert f"{skipped['file']}: skipped: an incomplete fetch window" in r.err
    assert rows(tmp_path / "out/cves/full.parquet", "SELECT count(*) FROM t") == [(123,)]
    recent = rows(tmp_path / f"out/cves/{window.name}.parquet", "SELECT min(_source_file) FROM t")
    assert recent == [(f"{window.name}/page-00000000.json.gz",)]
    assert not (tmp_path / f"out/cves/{killed.name}.parquet").exists()
