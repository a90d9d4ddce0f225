import gzip
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from benchmarks.bench_nvd import NAIVE
from etl.errors import ConversionError
from etl.samples.nvd import make_cve, write_sample
from etl.sources.nvd import TABLES, read_cves
from etl.sources.nvd_pages import write_page
from tests.conftest import TEST_BUDGET_MB, etl_measured, samples_dir
from tests.conftest import parquet_rows as rows
from tests.nvd_emulator import Emulator, serve


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


def test_pages_converted_by_an_older_etl_without_todays_tables_convert_again(etl, tmp_path):
    """A data directory from before `affected`/`ssvc`/`vendor_comments` existed: the marts need them."""
    (tmp_path / "etl.toml").write_text('[datasets.nvd]\nkind = "nvd"\nsample = true\nsample_pages = 1\n')
    assert etl("run").code == 0
    state = sqlite3.connect(tmp_path / "data/state.sqlite")
    (outputs,) = state.execute("SELECT outputs FROM files WHERE dataset = 'nvd'").fetchone()
    old = {t: p for t, p in json.loads(outputs).items() if t not in ("affected", "ssvc", "vendor_comments")}
    with state:
        state.execute("UPDATE files SET outputs = ? WHERE dataset = 'nvd'", (json.dumps(old),))
    state.close()
    r = etl("--json", "run")
    assert r.code == 0, r.err
    assert [s["status"] for s in json.loads(r.out)["steps"] if s["step"] == "convert"] == ["ok"]
    again = json.loads(etl("--json", "run").out)  # and now it is done
    assert [s["status"] for s in again["steps"] if s["step"] == "convert"] == ["skipped"]


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
    r = etl("--json", "convert", "nvd", *real_nvd_files(), "--out", "out")
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


def real_nvd_files() -> list[Path]:
    """The shared samples that are NVD records or pages (the folder also holds CISA KEV files)."""
    return sorted(p for p in (samples_dir() / "nvd").glob("*.json") if not p.name.startswith("cisa_kev"))


def real_records() -> list[dict]:
    """Every vulnerability of the shared real samples (pages, `{"cve": …}` wrappers, bare records)."""
    if samples_dir() is None:
        return []
    out = []
    for path in real_nvd_files():
        doc = json.loads(path.read_text())
        out += doc.get("vulnerabilities", [doc if "cve" in doc else {"cve": doc}])
    return out


def test_tables_equal_a_json_load_flattening(etl, tmp_path):
    """Every table holds what a plain json.load + Python flattening (the benchmark's naive script) builds."""
    window = tmp_path / "window"
    # both generations of v4.0 names, v2, KEV, AND nodes, Rejected
    generated = [make_cve(i) for i in range(120)]
    for start, vulns in ((0, generated), (120, real_records())):
        if vulns:
            write_page(window / f"page-{start:08d}.json.gz", vulns, start, 120 + len(real_records()))
    assert etl("convert", "nvd", window, "--out", "etl").code == 0
    (tmp_path / "naive").mkdir()
    subprocess.run([sys.executable, "-c", NAIVE, str(window), str(tmp_path / "naive")], check=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table in TABLES[
        :6
    ]:  # the naive script builds the first six (affected, ssvc, vendor_comments are newer)
        ours = f"read_parquet('{tmp_path}/etl/{table}/window.parquet')"
        naive = f"read_parquet('{tmp_path}/naive/{table}/*.parquet', union_by_name = true)"
        naive_columns = {c.lower() for c in con.sql(f"SELECT * FROM {naive}").columns}
        # raw and cve_tags differ in form (checked below); lineage differs by the window's name
        columns = [
            c
            for c in con.sql(f"SELECT * FROM {ours}").columns
            if c in naive_columns and c not in ("raw", "cve_tags", "_source_file")
        ]
        assert len(columns) > 3, table
        select = ", ".join(f'"{c}"' for c in columns)
        for a, b in ((ours, naive), (naive, ours)):
            assert (
                con.sql(f"SELECT {select} FROM {a} EXCEPT ALL SELECT {select} FROM {b}").fetchall() == []
            ), table
    pairs = con.sql(
        f"SELECT o.raw, n.raw FROM '{tmp_path}/etl/cves/window.parquet' o "
        f"JOIN read_parquet('{tmp_path}/naive/cves/*.parquet') n USING (_source_row, cve_id)"
    ).fetchall()
    assert len(pairs) == 120 + len(real_records())
    assert all(json.loads(ours) == json.loads(naive) for ours, naive in pairs)


def test_unknown_fields_anywhere_are_skipped_and_kept_in_raw(etl, tmp_path):
    cve = make_cve(11)["cve"]  # carries metrics.ssvcV203 and a top-level affected array
    metric = cve["metrics"]["cvssMetricV31"][0]
    metric["cvssData"]["threatScore"] = {"not": ["a", "number"]}
    metric["newOuter"] = [None, 1.5]
    cve["configurations"][0]["nodes"][0]["cpeMatch"][0]["newBound"] = 3
    cve["references"][0]["newThing"] = {"deep": {"er": True}}
    cve["descriptions"][0]["media"] = [{"type": "text/html"}]
    write_page(tmp_path / "w" / "page-00000000.json.gz", [{"cve": cve, "sibling": [1]}], 0, 1)
    assert etl("convert", "nvd", tmp_path / "w", "--out", "out").code == 0
    (raw,) = rows(tmp_path / "out/cves/w.parquet", "SELECT raw FROM t")[0]
    assert json.loads(raw) == cve
    got = rows(tmp_path / "out/metrics/w.parquet", "SELECT base_score FROM t WHERE cvss_version = '3.1'")
    assert got == [(metric["cvssData"]["baseScore"],)]
    assert rows(tmp_path / "out/references/w.parquet", "SELECT url FROM t") == [
        (cve["references"][0]["url"],)
    ]


@pytest.mark.parametrize("indent", [None, 2])
def test_records_are_cut_between_any_two_records(tmp_path, indent):
    """Chunks of any size, compact or pretty-printed JSON, keys after the array: each record's text, once."""
    vulns = [make_cve(i) for i in range(40)]
    path = tmp_path / "page.json"
    path.write_text(
        json.dumps({"resultsPerPage": 40, "vulnerabilities": vulns, "after": {"x": [1]}}, indent=indent)
    )
    for chunk_bytes in (1000, 7777, 1 << 20):
        got = [json.loads(text) for chunk in read_cves(path, chunk_bytes) for text in chunk.to_pylist()]
        assert got == [v["cve"] for v in vulns], chunk_bytes


def test_empty_pages_convert_to_no_rows(etl, tmp_path, window):
    write_page(window / "page-00000300.json.gz", [], 300, 300)  # an incremental window with no changes
    (tmp_path / "empty.json").write_text('{\r\n  "resultsPerPage": 0,\r\n  "vulnerabilities": [ ]\r\n}')
    r = etl("--json", "convert", "nvd", window, tmp_path / "empty.json", "--out", "out")
    assert r.code == 0, r.err
    assert json.loads(r.out)["rows"] == 300
    assert not (tmp_path / "out/cves/empty.parquet").exists()


def test_malformed_json_names_the_page_and_the_byte(etl, tmp_path, window):
    text = json.dumps({"resultsPerPage": 30, "vulnerabilities": [make_cve(i) for i in range(30)]})
    at = text.index('"CVE-2018-10025"')
    bad = tmp_path / "bad.json"
    bad.write_text(text[:at] + "x" + text[at + 1 :])
    for chunk_bytes in (1000, 1 << 20):
        with pytest.raises(ConversionError, match=rf"bad.json: .*\(byte {at}\)"):
            list(read_cves(bad, chunk_bytes))
    r = etl("convert", "nvd", bad, window, "--out", "out")
    assert (
        r.code == 1
        and f"bad.json: not a valid NVD page: JSON is malformed: invalid character (byte {at})" in r.err
    )
    assert (tmp_path / "out/cves/window.parquet").exists()  # the other input still converts
    assert not (tmp_path / "out/cves/bad.parquet").exists()


def test_a_value_of_the_wrong_type_names_the_page_and_the_record(etl, tmp_path):
    vulns = [make_cve(i) for i in range(1, 5)]
    vulns[2]["cve"]["metrics"]["cvssMetricV31"][0]["cvssData"]["baseScore"] = "high"
    write_page(tmp_path / "w" / "page-00000000.json.gz", vulns, 0, 4)
    r = etl("convert", "nvd", tmp_path / "w", "--out", "out")
    assert r.code == 1 and "page-00000000.json.gz: JSON parse error" in r.err and "in record 3" in r.err, (
        r.err
    )


def write_feed(path: Path, count: int, distinct: int | None = None) -> list[str]:
    """A yearly feed as NVD publishes it, written record by record (the first `distinct` records repeated)."""
    header = {"resultsPerPage": count, "startIndex": 0, "totalResults": count, "format": "NVD_CVE"}
    header |= {"version": "2.0", "timestamp": "2026-11-22T03:00:01.123"}
    texts = [json.dumps(make_cve(i)) for i in range(distinct or count)]
    with gzip.open(path, "wt", compresslevel=1) as f:
        f.write(json.dumps(header)[:-1] + ', "vulnerabilities": [')
        for i in range(count):
            f.write(("," if i else "") + texts[i % len(texts)])
        f.write("]}")
    return [make_cve(i % len(texts))["cve"]["id"] for i in range(count)]


def test_a_yearly_feed_converts_record_by_record(etl, tmp_path):
    feed = tmp_path / "nvdcve-2.0-2024.json.gz"
    ids = write_feed(feed, 30)
    r = etl("--json", "convert", "nvd", feed, "--out", "out")
    assert r.code == 0, r.err
    got = rows(tmp_path / "out/cves/nvdcve-2.0-2024.parquet", "SELECT cve_id, _source_row FROM t ORDER BY 2")
    assert got == [(cve_id, i) for i, cve_id in enumerate(ids, 1)]


def test_converting_loads_neither_pandas_nor_duckdb_nor_the_other_datasets(tmp_path, window):
    """Their libraries would take 30-50 MB each of a 256 MB budget; a dataset convert does not use is not checked."""
    (tmp_path / "etl.toml").write_text(
        '[datasets.deaths]\nkind = "csv"\npaths = ["x.csv"]\nnot_an_option = 1\n'
    )
    code = (
        "import sys; from etl.cli import main; assert main(sys.argv[1:]) == 0; "
        "print(sorted(m for m in ('pandas', 'duckdb', 'polars') if m in sys.modules))"
    )
    argv = [sys.executable, "-c", code, "--quiet", "convert", "nvd", str(window), "--out", "out"]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.slow
def test_memory_stays_within_the_budget_whatever_the_input_size(tmp_path):
    """A window of full pages and a feed, each more JSON than the budget, convert within it."""
    window = tmp_path / "window"
    window.mkdir()
    texts = [json.dumps(make_cve(i)) for i in range(2000)]
    page = '{"resultsPerPage": 2000, "vulnerabilities": [' + ", ".join(texts) + "]}"
    pages = 80  # 2,000 CVEs each, about 4 MB of JSON: 340 MB in all
    for p in range(pages):
        (window / f"page-{p * 2000:08d}.json.gz").write_bytes(gzip.compress(page.encode(), compresslevel=1))
    feed = tmp_path / "nvdcve-2.0-2020.json.gz"
    write_feed(feed, pages * 2000, distinct=2000)
    assert (pages * len(page)) >> 20 > TEST_BUDGET_MB
    code, out, err, peak = etl_measured(
        tmp_path, "--json", "convert", "nvd", window, feed, "--out", tmp_path / "out"
    )
    assert code == 0, err
    assert json.loads(out)["rows"] == 2 * pages * 2000
    assert peak < TEST_BUDGET_MB, f"peak RSS {peak:.0f} MB at a {TEST_BUDGET_MB} MB budget"
