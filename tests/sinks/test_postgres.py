import threading
import time

import duckdb
import psycopg
import pytest

from etl.sinks.postgres import mask, pg_type


@pytest.fixture
def warehouse(etl, tmp_path):
    """A warehouse with one mart of typed values (as `etl run` builds it)."""
    (tmp_path / "data").mkdir()
    con = duckdb.connect(str(tmp_path / "data/warehouse.duckdb"))
    con.execute("CREATE SCHEMA shop")
    con.execute("""CREATE TABLE shop.sales AS SELECT i AS id, 'item ' || i AS name,
        CASE WHEN i % 10 = 0 THEN NULL WHEN i % 10 = 1 THEN '' ELSE 'x,"y"' END AS note,
        (i / 4)::DECIMAL(10, 2) AS amount, DATE '2024-01-01' + (i % 30)::INT AS day,
        TIMESTAMPTZ '2024-01-01 00:00:00+00' + INTERVAL (i) MINUTE AS at, i % 2 = 0 AS even,
        [i, i + 1] AS pair FROM range(50000) t(i)""")
    con.execute("CREATE VIEW shop.v AS SELECT 1")
    con.close()
    return tmp_path


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
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'pub'"
        ).fetchall()
        assert tables == [("shop_sales",)]  # the mart, not the view, and no staging left


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
    r = etl("load", "postgres", "--dsn", pg, "--schema", "pub")
    killer.join()
    assert r.code == 1 and "loading shop.sales failed, nothing was changed" in r.err
    with psycopg.connect(pg) as c:
        assert c.execute("SELECT count(*) FROM pub.shop_sales").fetchone() == (50000,)
        assert c.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '%staging'"
        ).fetchone() == (0,)


def test_a_changed_schema_replaces_the_table(etl, warehouse, pg):
    assert etl("load", "postgres", "--dsn", pg).code == 0
    con = duckdb.connect(str(warehouse / "data/warehouse.duckdb"))
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
    r = etl("load", "postgres", "--dsn", pg, "--tables", "shop.nope")
    assert r.code == 1 and "no table 'shop.nope'" in r.err


def test_masks_and_types():
    assert mask("host=h password='a b' user=u") == "host=h password=*** user=u"
    assert pg_type("DECIMAL(10,2)") == "numeric(10,2)" and pg_type("INTEGER[]") == "jsonb"


def test_run_publishes_when_the_config_says_so(etl, tmp_path, pg, monkeypatch):
    (tmp_path / "etl.toml").write_text(
        '[datasets.nvd]\nkind = "nvd"\nsample = true\nsample_pages = 1\n'
        '[publish.postgres]\nschema = "marts"\ntables = ["nvd.cves_per_cwe"]\n'
    )
    r = etl("run")
    assert r.code == 1 and "needs a DSN in $ETL_PG_DSN" in r.err
    monkeypatch.setenv("ETL_PG_DSN", pg)
    r = etl("run")
    assert r.code == 0, r.err
    with psycopg.connect(pg) as c:
        assert c.execute("SELECT sum(cves) FROM marts.nvd_cves_per_cwe").fetchone()[0] > 400
