"""FIRST EPSS score files: both formats, rejects and untyped values, and a date range backfilled from loopback."""

import datetime as dt
import gzip
import json

import duckdb

from etl.samples.epss import write_file
from tests.file_server import Files, serving


def rows(path, sql="SELECT * FROM t"):
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM '{path}'")
    return con.sql(sql).fetchall()


def test_a_score_file_becomes_a_partition_of_its_date(etl, tmp_path):
    path = write_file(
        tmp_path / "epss_scores-2025-03-16.csv.gz",
        [("CVE-2024-3400", 0.94323), ("CVE-1999-0001", 0.0123), ("CVE-2021-44228", 0.94358)],
        dt.date(2025, 3, 16),
    )
    r = etl("--json", "convert", "epss", path, "--out", "out")
    assert r.code == 0, r.err
    assert json.loads(r.out)["rows"] == 3
    got = rows(
        tmp_path / "out/epss_scores-2025-03-16.parquet",
        "SELECT cve_id, epss, percentile, CAST(score_date AS VARCHAR), model_version, _source_file, _source_row "
        "FROM t ORDER BY _source_row",
    )
    assert got == [
        ("CVE-2024-3400", 0.94323, 0.66667, "2025-03-16", "v2025.03.14", "epss_scores-2025-03-16.csv.gz", 1),
        ("CVE-1999-0001", 0.0123, 0.33333, "2025-03-16", "v2025.03.14", "epss_scores-2025-03-16.csv.gz", 2),
        ("CVE-2021-44228", 0.94358, 1.0, "2025-03-16", "v2025.03.14", "epss_scores-2025-03-16.csv.gz", 3),
    ]


def test_early_files_without_the_model_line_or_percentiles(etl, tmp_path):
    path = tmp_path / "epss_scores-2021-04-14.csv.gz"
    path.write_bytes(gzip.compress(b"cve,epss\nCVE-2020-0001,0.0031\nCVE-2020-0002,0.52\n"))
    r = etl("convert", "epss", path, "--out", "out")
    assert r.code == 0, r.err
    got = rows(
        tmp_path / "out/epss_scores-2021-04-14.parquet",
        "SELECT cve_id, epss, percentile, CAST(score_date AS VARCHAR), model_version FROM t ORDER BY 1",
    )
    assert got == [
        ("CVE-2020-0001", 0.0031, None, "2021-04-14", None),
        ("CVE-2020-0002", 0.52, None, "2021-04-14", None),
    ]


def test_bad_rows_are_rejected_and_bad_scores_counted(etl, tmp_path):
    text = (
        "#model_version:v2023.03.01,score_date:2024-06-01T00:00:00+0000\n"
        "cve,epss,percentile\n"
        "CVE-2024-0001,0.1,0.5\n"
        "CVE-2024-0002,0.2\n"  # a field short
        "CVE-2024-0003,n/a,0.7\n"  # not a number
        "CVE-2024-0004,0.4,0.9,extra\n"
        "CVE-2024-0005,1e-4,0.1\n"
    )
    path = tmp_path / "epss_scores-2024-06-01.csv"
    path.write_text(text)
    r = etl("--json", "convert", "epss", path, "--out", "out")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert (summary["rows"], summary["rejected"]) == (3, 2)
    assert "1 values of epss could not be typed and are null" in r.err
    got = rows(
        tmp_path / "out/epss_scores-2024-06-01.parquet", "SELECT cve_id, epss, percentile FROM t ORDER BY 1"
    )
    assert got == [("CVE-2024-0001", 0.1, 0.5), ("CVE-2024-0003", None, 0.7), ("CVE-2024-0005", 0.0001, 0.1)]
    rejects = rows(
        tmp_path / "out/_rejects/epss_scores-2024-06-01.parquet", "SELECT line, reason, raw FROM t ORDER BY 1"
    )
    assert rejects == [
        (4, "2 fields where the header has 3", "CVE-2024-0002,0.2"),
        (6, "4 fields where the header has 3", "CVE-2024-0004,0.4,0.9,extra"),
    ]


def test_a_date_range_is_backfilled_from_the_server_and_kept(etl, tmp_path):
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=d) for d in range(4)]
    bodies = {}
    for n, day in enumerate(days):
        model = "v2023.03.01" if n < 2 else "v2025.03.14"
        bodies[f"/epss_scores-{day}.csv.gz"] = write_file(
            tmp_path / "src" / f"epss_scores-{day}.csv.gz",
            [("CVE-2024-0001", 0.1 * (n + 1)), ("CVE-2024-0002", 0.01)],
            day,
            model,
        ).read_bytes()
    missing = bodies.pop(f"/epss_scores-{days[2]}.csv.gz")  # not published yet
    files = Files(bodies)
    with serving(files) as url:
        (tmp_path / "etl.toml").write_text(
            f'[datasets.epss]\nkind = "epss"\nbase_url = "{url}"\nstart_date = "2025-01-01"\nend_date = "2025-01-04"\n'
        )
        files.faults = ["503"]
        r = etl("--json", "run")
        assert r.code == 1
        failed = [s for s in json.loads(r.out)["steps"] if s["status"] == "failed"]
        assert [s["file"] for s in failed] == ["epss_scores-2025-01-03.csv.gz"] and "404" in failed[0][
            "error"
        ]
        files.files[f"/epss_scores-{days[2]}.csv.gz"] = missing
        files.requests.clear()
        r = etl("--json", "run")
        assert r.code == 0, r.err
        assert files.requests == ["/epss_scores-2025-01-03.csv.gz"]  # the others are kept from the first run
    con = duckdb.connect(str(tmp_path / "data/warehouse.duckdb"), read_only=True)
    got = con.sql(
        "SELECT CAST(score_date AS VARCHAR), model_version, epss FROM epss.records WHERE cve_id = 'CVE-2024-0001' "
        "ORDER BY 1"
    ).fetchall()
    assert got == [
        ("2025-01-01", "v2023.03.01", 0.1),
        ("2025-01-02", "v2023.03.01", 0.2),
        ("2025-01-03", "v2025.03.14", 0.3),
        ("2025-01-04", "v2025.03.14", 0.4),
    ]
