"""CISA KEV catalogues: the real excerpt, releases kept by catalogVersion from a loopback server, rejects."""

import json

import duckdb
import pytest

from etl.samples.kev import entry
from tests.conftest import samples_dir
from tests.file_server import Files, serving


def rows(path, sql="SELECT * FROM t"):
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW t AS SELECT * FROM '{path}'")
    return con.sql(sql).fetchall()


def catalog(version: str, released: str, entries: list[dict]) -> bytes:
    doc = {"title": "CISA Catalog of Known Exploited Vulnerabilities", "catalogVersion": version}
    doc |= {"dateReleased": released, "count": len(entries), "vulnerabilities": entries}
    return json.dumps(doc, indent=2).encode()


@pytest.mark.skipif(samples_dir() is None, reason="shared samples not present")
def test_the_real_catalogue_excerpt(etl, tmp_path):
    path = samples_dir() / "nvd" / "cisa_kev_excerpt.json"
    r = etl("--json", "convert", "kev", path, "--out", "out")
    assert r.code == 0, r.err
    assert json.loads(r.out)["rows"] == 30
    got = rows(
        tmp_path / "out/cisa_kev_excerpt.parquet",
        "SELECT catalog_version, CAST(date_released AS VARCHAR), cve_id, vendor_project, product, "
        "CAST(date_added AS VARCHAR), CAST(due_date AS VARCHAR), known_ransomware_campaign_use, cwes, _source_row "
        "FROM t ORDER BY _source_row LIMIT 1",
    )
    assert got == [
        ("2025.08.25", "2025-08-25 17:04:19+00", "CVE-2018-20062", "ThinkPHP", "noneCms", "2021-11-03",
         "2022-05-03", "Unknown", ["CWE-20"], 1)
    ]  # fmt: skip
    source = json.loads(path.read_text())["vulnerabilities"]
    assert rows(tmp_path / "out/cisa_kev_excerpt.parquet", "SELECT cve_id FROM t ORDER BY _source_row") == [
        (v["cveID"],) for v in source
    ]


def test_each_release_fetched_is_kept_and_queryable(etl, tmp_path):
    first = [e for i in range(0, 60, 7) if (e := entry(i))]
    second = [e for e in first if e["cveID"] != first[1]["cveID"]] + [entry(70)]
    files = Files({"/kev.json": catalog("2026.10.15", "2026-10-15T14:02:11.2411Z", first)})
    with serving(files) as url:
        (tmp_path / "etl.toml").write_text(f'[datasets.kev]\nkind = "kev"\nurl = "{url}/kev.json"\n')
        files.faults = ["503"]  # retried
        assert etl("run").code == 0
        files.files["/kev.json"] = catalog("2026.11.01", "2026-11-01T17:04:19.9796Z", second)
        r = etl("--json", "run")
        assert r.code == 0, r.err
        assert etl("--json", "run").code == 0  # the same release again: nothing new kept
    kept = sorted(p.name for p in (tmp_path / "data/raw/kev").glob("*.json"))
    assert kept == [
        "known_exploited_vulnerabilities-2026.10.15.json",
        "known_exploited_vulnerabilities-2026.11.01.json",
    ]
    assert list((tmp_path / "data/raw/kev/_download").iterdir()) == []
    con = duckdb.connect(str(tmp_path / "data/warehouse.duckdb"), read_only=True)
    releases = con.sql("SELECT catalog_version, count(*) FROM kev.records GROUP BY 1 ORDER BY 1").fetchall()
    assert releases == [("2026.10.15", len(first)), ("2026.11.01", len(second))]
    removed = con.sql(
        "SELECT cve_id FROM kev.records WHERE catalog_version = '2026.10.15' EXCEPT "
        "SELECT cve_id FROM kev.records WHERE catalog_version = '2026.11.01'"
    ).fetchall()
    assert removed == [(first[1]["cveID"],)]


def test_an_entry_without_a_cve_id_is_rejected_with_its_text(etl, tmp_path):
    entries = [entry(0), {"vendorProject": "Acme", "product": "Widget"}, entry(7)]
    (tmp_path / "kev.json").write_bytes(catalog("2026.01.01", "2026-01-01T00:00:00Z", entries))
    r = etl("--json", "convert", "kev", tmp_path / "kev.json", "--out", "out")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert (summary["rows"], summary["rejected"]) == (2, 1)
    assert rows(tmp_path / "out/kev.parquet", "SELECT cve_id, _source_row FROM t") == [
        (entries[0]["cveID"], 1),
        (entries[2]["cveID"], 3),
    ]
    line, reason, raw = rows(tmp_path / "out/_rejects/kev.parquet", "SELECT line, reason, raw FROM t")[0]
    assert (line, reason, json.loads(raw)) == (2, "an entry without cveID", entries[1])


def test_a_file_that_is_not_a_catalogue_names_itself(etl, tmp_path):
    (tmp_path / "other.json").write_text('{"vulnerabilities": []}')
    r = etl("convert", "kev", tmp_path / "other.json", "--out", "out")
    assert r.code == 1
    assert "other.json" in r.err and "not a CISA KEV catalogue" in r.err and "catalogVersion" in r.err
