"""The query commands (`etl sql`, `tables`, `describe`, `shell`) and `etl.explore.warehouse()`: read-only in fact,
within the budget, DuckDB's messages whole, and a data directory that can move."""

import io
import json
import os
import shutil
import sys

import duckdb
import pytest

from etl import explore
from etl.cli import main
from etl.query import ReadOnlyError, order_free
from tests.conftest import TEST_BUDGET_MB, etl_measured

CONFIG = (
    '[etl]\nmemory_limit = "512MB"\nsql_dir = "mysql"\n[datasets.shop]\nkind = "csv"\npaths = ["sales.csv"]\n'
)
TRANSFORMS = {
    "010_totals.sql": "CREATE TABLE totals AS SELECT region, sum(amount) AS s, list(id ORDER BY id)[1:2] AS first_ids "
    "FROM records GROUP BY ALL ORDER BY 1;\nCOMMENT ON COLUMN totals.s IS 'sum of amounts';\n"
    "COMMENT ON TABLE totals IS 'amounts per region';\n",
    "020_by_region.py": "import polars as pl\n\ndef transform(tables):\n"
    "    return tables['records'].group_by('region').agg(pl.col('amount').sum()).sort('region')\n",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A project with one CSV dataset, a SQL mart and a Polars mart, run once; tests copy it."""
    root = tmp_path_factory.mktemp("built")
    (root / "etl.toml").write_text(CONFIG)
    (root / "sales.csv").write_text(
        "id,region,amount\n" + "".join(f"{i},{'NS'[i % 2]},{i}\n" for i in range(100))
    )
    (root / "mysql/shop").mkdir(parents=True)
    for name, text in TRANSFORMS.items():
        (root / "mysql/shop" / name).write_text(text)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["--quiet", "run"]) == 0
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def project(built, tmp_path):
    shutil.copytree(built, tmp_path, dirs_exist_ok=True)
    return tmp_path


def snapshot(data):
    """Every file under the data directory with its bytes' digest (data/tmp must end up empty)."""
    return {p.relative_to(data): p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()}


def test_formats_json_array_ndjson_csv_and_nested_values_as_json(etl, project):
    query = "SELECT region, s, first_ids, {'n': s, 'r': region} AS st FROM shop.totals ORDER BY region"
    r = etl("sql", query, "--format", "json")
    assert r.code == 0, r.err
    assert json.loads(r.out) == [
        {"region": "N", "s": 2450, "first_ids": [0, 2], "st": {"n": 2450, "r": "N"}},
        {"region": "S", "s": 2500, "first_ids": [1, 3], "st": {"n": 2500, "r": "S"}},
    ]
    assert json.loads(etl("--json", "sql", query).out) == json.loads(r.out)  # the global --json
    lines = etl("sql", query, "--format", "ndjson").out.splitlines()
    assert [json.loads(line)["region"] for line in lines] == ["N", "S"]
    assert etl("sql", "SELECT 1 AS a WHERE false", "--format", "json").out == "[]\n"
    csv = etl("sql", query, "--format", "csv").out.splitlines()
    assert csv == [
        "region,s,first_ids,st",
        'N,2450,"[0, 2]","{""n"": 2450, ""r"": ""N""}"',
        'S,2500,"[1, 3]","{""n"": 2500, ""r"": ""S""}"',
    ]
    table = etl("sql", query).out
    assert '{"n": 2450, "r": "N"}' in table and "[0, 2]" in table and "{'n'" not in table


def test_the_table_fits_the_terminal_and_says_what_it_left_out(etl, project, monkeypatch):
    for width in (100, 160):
        monkeypatch.setenv("COLUMNS", str(width))
        r = etl("sql", "SELECT *, repeat('x', 300) AS wide FROM shop.records ORDER BY id")
        assert r.code == 0 and max(len(line) for line in r.out.splitlines()) <= width
    r = etl("sql", "SELECT id FROM shop.records ORDER BY id", "--limit", "5")
    assert "│     4 │" in r.out and "│     5 │" not in r.out
    assert "first 5 rows shown" in r.err


def test_duckdb_errors_are_kept_whole(etl, project):
    r = etl("sql", "SELECT * FROM shop.record")
    assert (
        r.code == 1 and "Table with name record does not exist" in r.err and 'Did you mean "records"' in r.err
    )
    r = etl("sql", "SELECT nope FROM shop.records")
    assert r.code == 1 and "Candidate bindings" in r.err and "LINE 1: SELECT nope FROM shop.records" in r.err
    assert "^^^^" in r.err and "SHOW ALL TABLES" not in r.err and "Traceback" not in r.err
    r = etl("sql", "SELECT * FROM shop.records WHERE id = 'x'")  # fails while rows are fetched
    assert r.code == 1 and "Could not convert string 'x'" in r.err and "LINE 1:" in r.err


ESCAPES = {
    "copy to the state store": ("COPY (SELECT 1) TO 'data/state.sqlite'", "COPY statements are refused"),
    "copy into the Parquet zone": (
        "COPY (SELECT 1) TO 'data/parquet/shop/x.parquet'",
        "COPY statements are refused",
    ),
    "with copy": (
        "WITH x AS (COPY (SELECT 1) TO 'data/parquet/shop/x.csv') SELECT 1",
        "a WITH clause holding COPY",
    ),
    "explain analyze copy": (
        "EXPLAIN ANALYZE COPY (SELECT 1) TO 'data/parquet/x.csv'",
        "COPY statements are refused",
    ),
    "export": ("EXPORT DATABASE 'data/parquet/export'", "EXPORT statements are refused"),
    "attach read-write": (
        "ATTACH 'data/parquet/new.duckdb' AS n (READ_WRITE)",
        "ATTACH statements are refused",
    ),
    "attach in memory": ("ATTACH ':memory:' AS m", "ATTACH statements are refused"),
    "set memory_limit": ("SET memory_limit = '50GB'", "SET statements are refused"),
    "pragma memory_limit": ("PRAGMA memory_limit = '50GB'", "SET statements are refused"),
    "set the data directory": ("SET VARIABLE etl_data_dir = '/'", "SET statements are refused"),
    "install": ("INSTALL httpfs", "LOAD statements are refused"),
    "load": ("LOAD httpfs", "LOAD statements are refused"),
    "sql through query()": ("SELECT * FROM query('SELECT 1')", "query() is refused"),
    "writing through a table function": (
        "CALL enable_logging(storage = 'file', storage_path = 'data/parquet')",
        "enable_logging() is refused",
    ),
    "create a table": ("CREATE TABLE t AS SELECT 1", "CREATE statements are refused"),
    "a second statement": ("SELECT 1; COPY (SELECT 2) TO 'data/x.csv'", "COPY statements are refused"),
    "read /etc/passwd": ("SELECT * FROM read_csv('/etc/passwd')", 'Cannot access file "/etc/passwd"'),
    "read the state store": ("SELECT * FROM read_blob('data/state.sqlite')", "Cannot access file"),
    "remote read": ("SELECT * FROM read_parquet('https://127.0.0.1:9/x.parquet')", "Cannot access file"),
}


@pytest.mark.parametrize("sql, message", ESCAPES.values(), ids=ESCAPES.keys())
def test_each_escape_is_refused_and_nothing_is_written(etl, project, sql, message):
    before = snapshot(project / "data")
    r = etl("sql", sql)
    assert r.code == 1 and message in r.err and "Traceback" not in r.err, r.err
    assert snapshot(project / "data") == before
    assert etl("status").code == 0 and etl("sql", "SELECT count(*) FROM shop").out.count("100") == 1


def test_the_parquet_zone_is_readable_and_other_files_only_when_named(etl, project):
    r = etl("sql", "SELECT count(*) AS n FROM 'data/parquet/shop/*.parquet'", "--format", "csv")
    assert r.code == 0 and r.out.splitlines() == ["n", "100"]
    outside = project / "outside"
    outside.mkdir()
    (outside / "extra.csv").write_text("a\n1\n2\n")
    query = f"SELECT sum(a) AS s FROM read_csv('{outside / 'extra.csv'}')"
    r = etl("sql", query)
    assert r.code == 1 and "--allow-path" in r.err
    for allowed in (outside / "extra.csv", outside):
        r = etl("sql", query, "--allow-path", allowed, "--format", "csv")
        assert r.code == 0 and r.out.splitlines() == ["s", "3"], r.err
    r = etl("sql", "SELECT 1", "--allow-path", project / "missing")
    assert r.code == 1 and "no such file or directory" in r.err


def test_explore_warehouse_reads_and_refuses_the_same_escapes(etl, project):
    state = (project / "data/state.sqlite").read_bytes()
    con = explore.warehouse(project / "etl.toml")
    try:
        assert con.sql("SELECT count(*) FROM shop.records").fetchall() == [(100,)]
        assert con.execute("SELECT s FROM shop.totals WHERE region = ?", ["N"]).fetchall() == [(2450,)]
        assert con.sql("SELECT * FROM shop.by_region ORDER BY 1").pl().height == 2
        for sql in ("COPY (SELECT 1) TO 'data/state.sqlite'", "ATTACH ':memory:' AS m", "INSTALL httpfs"):
            with pytest.raises(ReadOnlyError):
                con.sql(sql)
            with pytest.raises(ReadOnlyError):
                con.cursor().execute(sql)
        with pytest.raises(ReadOnlyError):
            con.execute("SET memory_limit = '50GB'")
        with pytest.raises(duckdb.PermissionException):
            con.sql(f"SELECT * FROM read_csv('{project / 'sales.csv'}')").fetchall()
    finally:
        con.close()
    assert (project / "data/state.sqlite").read_bytes() == state
    assert not list((project / "data/tmp").iterdir())  # the spill directory went with the connection


def test_a_moved_data_directory_keeps_working(etl, project, monkeypatch):
    elsewhere = project.parent / f"{project.name}-moved"
    shutil.move(project / "data", elsewhere / "data")
    monkeypatch.setenv("ETL_DATA_DIR", str(elsewhere / "data"))
    for view in ("shop", "shop.records", "shop.by_region", "shop.totals"):
        r = etl("sql", f"SELECT count(*) AS n FROM {view}", "--format", "csv")
        assert r.code == 0 and r.out.splitlines()[1] in ("100", "2"), r.err
    con = explore.warehouse(project / "etl.toml")
    try:
        assert con.sql("SELECT sum(amount) FROM shop.by_region").fetchall() == [(4950,)]
    finally:
        con.close()
    assert etl("tables").code == 0


def test_tables_lists_every_schema_with_row_counts(etl, project):
    r = etl("--json", "tables")
    assert r.code == 0, r.err
    found = {(t["schema"], t["name"]): t for t in json.loads(r.out)}
    assert found[("shop", "records")]["kind"] == "view" and found[("shop", "records")]["rows"] == 100
    assert found[("shop", "totals")] | {"error": None} == {
        "schema": "shop", "name": "totals", "kind": "table", "rows": 2, "description": "amounts per region", "error": None
    }  # fmt: skip
    assert found[("main", "shop")]["description"] == "shop.records, the dataset's one table"
    assert found[("shop", "by_region")]["rows"] == 2
    assert found[("ref", "ufs")]["rows"] == 27  # the reference tables shipped with etl are readable too
    text = etl("tables").out
    assert "amounts per region" in text and "shop" in text and "by_region" in text


def test_describe_gives_columns_types_descriptions_and_rows(etl, project):
    r = etl("--json", "describe", "shop.totals")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["rows"] == 2 and data["description"] == "amounts per region"
    assert [(c["name"], c["type"], c["description"]) for c in data["columns"]] == [
        ("region", "VARCHAR", None), ("s", "HUGEINT", "sum of amounts"), ("first_ids", "BIGINT[]", None)
    ]  # fmt: skip
    text = etl("describe", "totals").out
    assert text.startswith("shop.totals: table, 2 rows (amounts per region)") and "sum of amounts" in text
    r = etl("describe", "nothing")
    assert r.code == 1 and "no table or view is named 'nothing'" in r.err and "etl tables" in r.err


def test_the_shell_runs_statements_and_commands_read_only(etl, project, monkeypatch):
    script = (
        "SELECT count(*) AS n\n  FROM shop.records;\n"
        ".format csv\n"
        "SELECT region FROM shop.totals ORDER BY 1;\n"
        "COPY (SELECT 1) TO 'data/state.sqlite';\n"
        "SELECT nope;\n"
        ".describe shop.totals\n"
        ".tables\n"
        "SELECT 'last' AS without_semicolon\n"
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO(script))
    before = snapshot(project / "data")
    r = etl("shell")
    assert r.code == 0
    assert "│   100 │" in r.out and "region\nN\nS\n" in r.out and "without_semicolon\nlast\n" in r.out
    assert "sum of amounts" in r.out and "by_region" in r.out
    assert "COPY statements are refused" in r.err and 'column "nope" was not found' in r.err
    assert snapshot(project / "data") == before


def test_a_corrupt_warehouse_or_state_store_gets_one_line(etl, project):
    (project / "data/warehouse.duckdb").write_bytes(b"not a database" * 1000)
    r = etl("sql", "SELECT 1")
    assert (
        r.code == 1
        and r.err.count("\n") == 1
        and "cannot open the warehouse" in r.err
        and "etl transform" in r.err
    )
    (project / "data/state.sqlite").write_bytes(b"not a database" * 1000)
    r = etl("status")
    assert r.code == 1 and r.err.count("\n") == 1 and "state store" in r.err and "cannot be read" in r.err


def test_insertion_order_is_relaxed_only_where_the_query_sets_the_order():
    con = duckdb.connect()
    assert not order_free(con, "SELECT * FROM t LIMIT 10")
    assert order_free(con, "SELECT * FROM t ORDER BY 1 LIMIT 10")
    assert order_free(con, "SELECT a, count(*) FROM t GROUP BY a")
    assert not order_free(con, "SELECT 1; SELECT 2 ORDER BY 1")


def test_a_plain_scan_keeps_the_file_order(etl, project):
    r = etl("sql", "SELECT id FROM shop.records LIMIT 3", "--format", "csv")
    assert r.out.splitlines() == ["id", "0", "1", "2"]


BIG = "'{root}/data/parquet/big/big.parquet'"  # the child process runs from the tests' folder


@pytest.fixture(scope="module")
def big(built, tmp_path_factory):
    """15M rows with 7.8M distinct codes (100 MB of Parquet; several GB as DuckDB's hash tables and sorts)."""
    root = tmp_path_factory.mktemp("big")
    shutil.copytree(built, root, dirs_exist_ok=True)
    (root / "data/parquet/big").mkdir()
    con = duckdb.connect(config={"memory_limit": "1GB"})
    con.execute(
        "COPY (SELECT 'C' || ((i * 7919) % 7800000)::VARCHAR AS code, (i % 1000)::DOUBLE AS amount "
        f"FROM range(15000000) t(i)) TO '{root}/data/parquet/big/big.parquet'"
    )
    con.close()
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    "sql, expected",
    [
        (
            f"SELECT count(*) AS groups, max(c) AS c FROM (SELECT code, count(*) c, sum(amount) s FROM {BIG} GROUP BY code)",
            ["groups,c", "7800000,2"],
        ),
        (
            f"SELECT max(rn) AS n, min(code) AS first FROM (SELECT code, row_number() OVER (ORDER BY code, amount) rn FROM {BIG})",
            ["n,first", "15000000,C0"],
        ),
        (f"SELECT count(*) AS n FROM {BIG} a JOIN {BIG} b USING (code)", ["n", "29400000"]),
    ],
    ids=["group-by", "sort", "join"],
)
def test_big_group_by_sort_and_join_complete_within_the_budget(big, sql, expected):
    code, out, err, peak = etl_measured(big, "sql", sql.format(root=big), "--format", "csv")
    assert code == 0, err
    assert out.splitlines() == expected
    assert peak < TEST_BUDGET_MB, f"peak RSS {peak} MB over the {TEST_BUDGET_MB} MB budget"


@pytest.mark.slow
def test_the_issue_query_and_one_that_cannot_fit(big):
    big_file = BIG.format(root=big)
    query = f"select code, count(*) c, sum(amount) s from read_parquet({big_file}) group by code order by c desc limit 3"
    code, out, err, peak = etl_measured(big, "sql", query)
    assert code == 0 and out.count("│ 2 │") + out.count("│     2 │") == 3, err
    assert peak < TEST_BUDGET_MB
    # one group of 15M values cannot spill: it fails while the rows are fetched, with DuckDB's line and the hint
    code, out, err, peak = etl_measured(big, "sql", f"SELECT len(list(code)) FROM {big_file}")
    assert code == 1 and "Traceback" not in err
    assert err.count("\n") == 0 and "Out of Memory Error" in err and "Raise --memory-limit" in err
    assert "a full ORDER BY of wide rows or a join many times the limit" in err and "aggregate further" in err
    assert peak < TEST_BUDGET_MB


def test_a_reader_that_stops_early_is_not_an_error(project):
    """`etl sql … | head -1`."""
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "etl.cli", "sql", "SELECT * FROM range(1000000)", "--format", "csv"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "range\n"
    proc.stdout.close()
    assert proc.wait() == 0
    assert "Traceback" not in proc.stderr.read()
