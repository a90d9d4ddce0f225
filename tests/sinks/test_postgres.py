import datetime
import decimal
import json
import os
import threading
import time
import uuid

import duckdb
import psycopg
import pytest

from etl.sinks.postgres import mask
from tests.conftest import TEST_BUDGET_MB, etl_measured


@pytest.fixture
def warehouse(etl, tmp_path):
    """A warehouse with one mart of typed values and a view over it (as `etl run` builds them)."""
    (tmp_path / "data").mkdir()
    con = duckdb.connect(str(tmp_path / "data/warehouse.duckdb"))
    con.execute("CREATE SCHEMA shop")
    con.execute("""CREATE TABLE shop.sales AS SELECT i AS id, 'item ' || i AS name,
        CASE WHEN i % 10 = 0 THEN NULL WHEN i % 10 = 1 THEN '' ELSE 'x,"y"' END AS note,
        (i / 4)::DECIMAL(10, 2) AS amount, DATE '2024-01-01' + (i % 30)::INT AS day,
        TIMESTAMPTZ '2024-01-01 00:00:00+00' + INTERVAL (i) MINUTE AS at, i % 2 = 0 AS even,
        [i, i + 1] AS pair FROM range(50000) t(i)""")
    con.execute("CREATE VIEW shop.v AS SELECT id, name FROM shop.sales WHERE id < 10")
    con.close()
    return tmp_path


def project(tmp_path, rows=100):
    """A CSV dataset with a staging view and a mart, as a user's etl.toml and sql/ folder make them."""
    (tmp_path / "etl.toml").write_text(
        '[etl]\nsql_dir = "mysql"\n[datasets.shop]\nkind = "csv"\npaths = ["sales.csv"]\n'
    )
    write_sales(tmp_path, rows)
    folder = tmp_path / "mysql" / "shop"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "010_stg_sales.sql").write_text(
        "CREATE VIEW stg_sales AS SELECT id, upper(region) AS region, amount * 2 AS doubled FROM records;\n"
        "COMMENT ON VIEW stg_sales IS 'sales, cleaned';\n"
        "COMMENT ON COLUMN stg_sales.doubled IS 'twice the amount';\n"
    )
    (folder / "020_totals.sql").write_text(
        "CREATE TABLE totals AS SELECT region, sum(doubled) AS s FROM stg_sales GROUP BY ALL ORDER BY 1;\n"
        "COMMENT ON TABLE totals IS 'totals per region';\n"
    )


def write_sales(tmp_path, rows):
    (tmp_path / "sales.csv").write_text(
        "id,region,amount\n" + "".join(f"{i},{'ns'[i % 2]},{i}\n" for i in range(rows))
    )


def pg_rows(dsn, query, params=()):
    with psycopg.connect(dsn) as c:
        return c.execute(query, params).fetchall()


def test_load_streams_tables_and_keeps_values(etl, warehouse, pg):
    r = etl("--memory-limit", "256MB", "load", "postgres", "--dsn", pg, "--schema", "pub")
    assert r.code == 0, r.err
    with psycopg.connect(pg) as c:
        assert c.execute(
            "SELECT count(*), count(note), count(*) FILTER (WHERE note = '') FROM pub.shop_sales"
        ).fetchone() == (50000, 45000, 5000)
        row = c.execute(
            "SELECT name, note, amount::text, day::text, at AT TIME ZONE 'UTC', even, pair "
            "FROM pub.shop_sales WHERE id = 7"
        ).fetchone()
        assert row[:4] == ("item 7", 'x,"y"', "1.75", "2024-01-08") and row[5] is False and row[6] == [7, 8]
        assert str(row[4]) == "2024-01-01 00:07:00"
        tables = c.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'pub' ORDER BY 1"
        ).fetchall()
        assert tables == [("shop_sales",), ("shop_v",)]  # the mart and the view, no staging left
        assert c.execute("SELECT count(*) FROM pub.shop_v").fetchone() == (10,)


def test_datasets_staging_views_and_marts_with_their_comments(etl, tmp_path, pg):
    project(tmp_path)
    assert etl("run").code == 0
    r = etl("load", "postgres", "--dsn", pg, "--tables", "shop.records", "shop.stg_sales")
    assert r.code == 0, r.err
    assert "shop.records -> etl.shop_records: 100 rows (first load)" in r.err
    assert "shop.stg_sales -> etl.shop_stg_sales: 100 rows (first load)" in r.err
    assert "load postgres: 200 rows" in r.err
    assert pg_rows(pg, "SELECT id, region, amount, _source_file FROM etl.shop_records WHERE id = 3") == [
        (3, "s", 3, "sales.csv")
    ]
    assert pg_rows(pg, "SELECT region, doubled FROM etl.shop_stg_sales WHERE id = 3") == [("S", 6)]
    assert pg_rows(
        pg,
        "SELECT obj_description('etl.shop_stg_sales'::regclass, 'pg_class'), "
        "col_description('etl.shop_stg_sales'::regclass, 3), col_description('etl.shop_stg_sales'::regclass, 1)",
    ) == [("sales, cleaned", "twice the amount", None)]

    r = etl("load", "postgres", "--dsn", pg)  # the default: datasets and marts, not staging views
    assert r.code == 0, r.err
    tables = pg_rows(
        pg, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'etl' ORDER BY 1"
    )
    assert tables == [("shop_records",), ("shop_stg_sales",), ("shop_totals",)]
    assert "shop.records -> etl.shop_records: skipped, unchanged since its load at" in r.err
    assert "shop.stg_sales" not in r.err  # not among the defaults
    assert pg_rows(pg, "SELECT * FROM etl.shop_totals") == [("N", 4900), ("S", 5000)]
    assert pg_rows(pg, "SELECT obj_description('etl.shop_totals'::regclass, 'pg_class')") == [
        ("totals per region",)
    ]


def test_unchanged_tables_are_skipped_and_changed_ones_reloaded(etl, tmp_path, pg):
    project(tmp_path)
    assert etl("run").code == 0
    names = ("--tables", "shop.records", "shop.stg_sales", "shop.totals")
    assert etl("load", "postgres", "--dsn", pg, *names).code == 0
    with psycopg.connect(pg) as c:  # a row the next load would remove if it loaded the table again
        c.execute("INSERT INTO etl.shop_records (id) VALUES (-1)")

    r = etl("--json", "load", "postgres", "--dsn", pg, *names)
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["skipped"] == 3 and summary["rows"] == 0
    assert {s["file"]: s["status"] for s in summary["steps"]} == {
        "shop.records": "skipped",
        "shop.stg_sales": "skipped",
        "shop.totals": "skipped",
    }
    assert pg_rows(pg, "SELECT count(*) FROM etl.shop_records") == [(101,)]

    assert etl("run").code == 0  # the warehouse rebuilt from the same Parquet: nothing to load
    r = etl("load", "postgres", "--dsn", pg, *names)
    assert r.code == 0 and "3 skipped" in r.err, r.err

    write_sales(tmp_path, 150)  # a new version of the input
    assert etl("run").code == 0
    r = etl("load", "postgres", "--dsn", pg, *names)
    assert r.code == 0, r.err
    for name in ("records", "stg_sales", "totals"):
        assert f"shop.{name} -> etl.shop_{name}: " in r.err and "(inputs changed)" in r.err
    assert pg_rows(pg, "SELECT count(*) FROM etl.shop_records") == [(150,)]
    assert pg_rows(pg, "SELECT sum(s) FROM etl.shop_totals") == [(2 * sum(range(150)),)]

    r = etl("load", "postgres", "--dsn", pg, "--tables", "shop.totals", "--force")
    assert r.code == 0 and "shop.totals -> etl.shop_totals: 2 rows (forced)" in r.err, r.err
    with psycopg.connect(pg) as c:
        c.execute("DROP TABLE etl.shop_stg_sales")
    r = etl("load", "postgres", "--dsn", pg, "--tables", "shop.stg_sales")
    assert r.code == 0 and "150 rows (missing in PostgreSQL)" in r.err, r.err


def test_a_changed_mart_is_reloaded(etl, warehouse, pg):
    assert etl("load", "postgres", "--dsn", pg, "--tables", "shop.sales").code == 0
    con = duckdb.connect(str(warehouse / "data/warehouse.duckdb"))
    con.execute("UPDATE shop.sales SET name = 'renamed' WHERE id = 3")
    con.close()
    r = etl("load", "postgres", "--dsn", pg, "--tables", "shop.sales")
    assert r.code == 0 and "(inputs changed)" in r.err, r.err
    assert pg_rows(pg, "SELECT name FROM etl.shop_sales WHERE id = 3") == [("renamed",)]


def test_types_are_mapped_and_read_back(etl, tmp_path, pg):
    (tmp_path / "data").mkdir()
    con = duckdb.connect(str(tmp_path / "data/warehouse.duckdb"))
    con.execute("CREATE SCHEMA t")
    con.execute("CREATE TYPE mood AS ENUM ('sad', 'ok')")
    con.execute("""CREATE TABLE t.kinds AS SELECT * FROM (VALUES
        (1, DATE '2024-02-29', 12345.678::DECIMAL(18, 3), true, TIMESTAMP '2024-01-02 03:04:05.123456',
         INTERVAL 36 HOUR, '\\x00\\xff'::BLOB, 'ok'::mood, 170141183460469231731687303715884105727::HUGEINT,
         '5b1e5b1e-0000-4000-8000-000000000001'::UUID, TIMESTAMP_NS '2024-01-01 00:00:00.123456789',
         [1, NULL, 3], ['a "quoted" word', 'back\\slash', NULL, 'NULL', '{braces}, comma', ''],
         [DATE '2024-01-01'], [1.5::DECIMAL(4, 2)], [true, false], []::INTEGER[],
         {'code': 'A01', 'n': 2}, [{'k': 'x', 'v': [1, 2]}], [[1, 2], [3]], MAP {'a': 1},
         '{"raw": [1, 2]}'::JSON),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, NULL)
    ) v(id, d, num, b, ts, iv, bl, e, h, u, ns, ints, texts, dates, decs, bools, empty, st, ls, nested, m, j)""")
    con.close()
    assert etl("load", "postgres", "--dsn", pg).code == 0
    with psycopg.connect(pg) as c:
        types = dict(
            c.execute(
                "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns "
                "JOIN pg_attribute ON attrelid = 'etl.t_kinds'::regclass AND attname = column_name "
                "WHERE table_name = 't_kinds'"
            ).fetchall()
        )
        assert types == {
            "id": "integer",
            "d": "date",
            "num": "numeric(18,3)",
            "b": "boolean",
            "ts": "timestamp without time zone",
            "iv": "interval",
            "bl": "bytea",
            "e": "text",
            "h": "numeric(39,0)",
            "u": "uuid",
            "ns": "timestamp without time zone",
            "ints": "integer[]",
            "texts": "text[]",
            "dates": "date[]",
            "decs": "numeric(4,2)[]",
            "bools": "boolean[]",
            "empty": "integer[]",
            "st": "jsonb",
            "ls": "jsonb",
            "nested": "jsonb",
            "m": "jsonb",
            "j": "jsonb",
        }
        row = c.execute("SELECT * FROM etl.t_kinds WHERE id = 1").fetchone()
        assert row == (
            1,
            datetime.date(2024, 2, 29),
            decimal.Decimal("12345.678"),
            True,
            datetime.datetime(2024, 1, 2, 3, 4, 5, 123456),
            datetime.timedelta(hours=36),
            b"\x00\xff",
            "ok",
            decimal.Decimal("170141183460469231731687303715884105727"),
            uuid.UUID("5b1e5b1e-0000-4000-8000-000000000001"),
            datetime.datetime(2024, 1, 1, 0, 0, 0, 123457),
            [1, None, 3],
            ['a "quoted" word', "back\\slash", None, "NULL", "{braces}, comma", ""],
            [datetime.date(2024, 1, 1)],
            [decimal.Decimal("1.50")],
            [True, False],
            [],
            {"code": "A01", "n": 2},
            [{"k": "x", "v": [1, 2]}],
            [[1, 2], [3]],
            {"a": 1},
            {"raw": [1, 2]},
        )
        assert c.execute("SELECT * FROM etl.t_kinds WHERE id = 2").fetchone() == (2,) + (None,) * 21


def test_a_failed_load_leaves_the_live_table_unchanged(etl, warehouse, pg):
    assert etl("load", "postgres", "--dsn", pg, "--schema", "pub").code == 0
    con = duckdb.connect(str(warehouse / "data/warehouse.duckdb"))
    con.execute("CREATE OR REPLACE TABLE shop.sales AS SELECT * FROM range(3000000) t(id)")
    con.close()

    def kill_the_load():  # the server goes away mid-load, as far as this backend is concerned
        with psycopg.connect(pg, autocommit=True) as admin:
            for _ in range(200):
                n = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'COPY%' "
                    "AND pid <> pg_backend_pid()"
                ).fetchall()
                if n:
                    return
                time.sleep(0.02)

    killer = threading.Thread(target=kill_the_load)
    killer.start()
    r = etl("load", "postgres", "--dsn", pg, "--schema", "pub", "--tables", "shop.sales")
    killer.join()
    assert r.code == 1 and "loading shop.sales failed, nothing was changed" in r.err
    with psycopg.connect(pg) as c:
        assert c.execute("SELECT count(*) FROM pub.shop_sales").fetchone() == (50000,)
        assert c.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '%staging'"
        ).fetchone() == (0,)
    r = etl("load", "postgres", "--dsn", pg, "--schema", "pub", "--tables", "shop.sales")
    assert r.code == 0 and "3000000 rows (inputs changed)" in r.err, r.err  # a failed load is not recorded


def test_a_view_whose_files_are_gone_fails_alone(etl, warehouse, pg):
    part = warehouse / "part.parquet"
    con = duckdb.connect(str(warehouse / "data/warehouse.duckdb"))
    con.execute(f"COPY (SELECT 1 AS id) TO '{part}' (FORMAT parquet)")
    con.execute(f"CREATE VIEW shop.gone AS SELECT * FROM read_parquet(['{part}'])")
    con.close()
    part.unlink()
    r = etl("load", "postgres", "--dsn", pg)
    assert r.code == 1
    assert "shop.gone: cannot read shop.gone in the warehouse" in r.err and "part.parquet" in r.err
    assert "1 failed" in r.err and pg_rows(pg, "SELECT count(*) FROM etl.shop_sales") == [(50000,)]


def test_a_changed_schema_replaces_the_table(etl, warehouse, pg):
    assert etl("load", "postgres", "--dsn", pg).code == 0
    con = duckdb.connect(str(warehouse / "data/warehouse.duckdb"))
    con.execute("DROP VIEW shop.v")
    con.execute("CREATE OR REPLACE TABLE shop.sales AS SELECT 'a' AS code")
    con.close()
    assert etl("load", "postgres", "--dsn", pg, "--tables", "shop.sales").code == 0
    with psycopg.connect(pg) as c:
        assert c.execute("SELECT * FROM etl.shop_sales").fetchall() == [("a",)]


def test_bad_dsn_and_unknown_table_say_so_without_the_password(etl, warehouse, pg):
    r = etl("load", "postgres", "--dsn", "postgresql://u:hunter2@127.0.0.1:1/x")
    assert (
        r.code == 1
        and "cannot connect to postgresql://u:***@127.0.0.1:1/x" in r.err
        and "hunter2" not in r.err
    )
    r = etl("load", "postgres", "--dsn", pg, "--tables", "shop.sales", "sim_csv.records")
    assert r.code == 1
    assert "no table or view 'sim_csv.records' in the warehouse. It has: shop.sales, shop.v" in r.err
    assert pg_rows(pg, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'etl'") == [(0,)]
    r = etl("load", "postgres", "--dsn", pg, "--tables", "shop.*")  # a pattern
    assert r.code == 0 and "shop.sales -> etl.shop_sales" in r.err and "shop.v -> etl.shop_v" in r.err


def test_mask():
    assert mask("host=h password='a b' user=u") == "host=h password=*** user=u"


def test_run_publishes_when_the_config_says_so(etl, tmp_path, pg, monkeypatch):
    (tmp_path / "etl.toml").write_text(
        '[datasets.nvd]\nkind = "nvd"\nsample = true\nsample_pages = 1\n'
        '[publish.postgres]\nschema = "marts"\ntables = ["nvd.cves_per_cwe", "nvd.cves"]\n'
    )
    r = etl("run")
    assert r.code == 1 and "needs a DSN in $ETL_PG_DSN" in r.err
    monkeypatch.setenv("ETL_PG_DSN", pg)
    r = etl("run")
    assert r.code == 0, r.err
    with psycopg.connect(pg) as c:
        assert c.execute("SELECT sum(cves) FROM marts.nvd_cves_per_cwe").fetchone()[0] > 400
        assert c.execute("SELECT count(*) FROM marts.nvd_cves").fetchone()[0] > 400
    r = etl("run")
    assert r.code == 0 and "nvd.cves -> marts.nvd_cves: skipped, unchanged" in r.err, r.err


@pytest.mark.slow
def test_a_dataset_many_times_the_budget_loads_within_it(tmp_path, pg):
    """1M wide rows over Parquet (about 550 MB as CSV) at a 320 MB budget: peak RSS stays under the budget."""
    data = tmp_path / "data"
    (data / "parquet/big").mkdir(parents=True)
    con = duckdb.connect(str(data / "warehouse.duckdb"))
    part = data / "parquet/big/part.parquet"
    con.execute(
        f"""COPY (SELECT i AS id, 'municipio ' || (i % 5570) || repeat('x', 450) AS name,
        DATE '2020-01-01' + (i % 1500)::INT AS day, (i % 100000) / 100 :: DECIMAL(12, 2) AS amount,
        i % 3 = 0 AS flag, [i % 7, i % 11] AS codes, md5(i::VARCHAR) AS digest FROM range(1000000) t(i))
        TO '{part}' (FORMAT parquet)"""
    )
    con.execute("CREATE SCHEMA big")
    con.execute(f"CREATE VIEW big.records AS SELECT * FROM read_parquet(['{part}'])")
    con.close()
    assert os.path.getsize(part) > 0
    code, _, err, peak = etl_measured(tmp_path, "load", "postgres", "--dsn", pg)
    assert code == 0, err
    assert "big.records -> etl.big_records: 1000000 rows (first load)" in err
    assert peak < TEST_BUDGET_MB, f"peak RSS {peak:.0f} MB over the {TEST_BUDGET_MB} MB budget"
    assert pg_rows(pg, "SELECT count(*), sum(codes[1]), max(length(name)) FROM etl.big_records") == [
        (1000000, sum(i % 7 for i in range(1000000)), 464)
    ]
