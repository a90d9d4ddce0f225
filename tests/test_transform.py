import duckdb
import pyarrow.parquet as pq

from etl.config import Settings
from etl.memory import MB, duckdb_memory_limit, duckdb_threads
from etl.sinks.duckdb import connect


def project(tmp_path, sql_files):
    (tmp_path / "etl.toml").write_text(
        '[etl]\nsql_dir = "mysql"\n[datasets.shop]\nkind = "csv"\npaths = ["sales.csv"]\n'
    )
    (tmp_path / "sales.csv").write_text(
        "id,region,amount\n" + "".join(f"{i},{'NS'[i % 2]},{i}\n" for i in range(100))
    )
    folder = tmp_path / "mysql" / "shop"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in sql_files.items():
        (folder / name).write_text(text)


def query(tmp_path, sql):
    con = duckdb.connect(str(tmp_path / "data/warehouse.duckdb"), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def test_sql_marts_are_tables_and_parquet(etl, tmp_path):
    project(
        tmp_path,
        {
            "010_totals.sql": "CREATE TABLE totals AS SELECT region, sum(amount) AS s FROM records "
            "GROUP BY ALL ORDER BY 1;"
        },
    )
    assert etl("run").code == 0
    assert query(tmp_path, "SELECT * FROM shop.totals") == [("N", 2450), ("S", 2500)]
    assert pq.read_table(tmp_path / "data/marts/shop/totals.parquet").num_rows == 2


def test_a_failing_file_names_its_line_and_keeps_the_previous_warehouse(etl, tmp_path):
    project(tmp_path, {"010_totals.sql": "CREATE TABLE totals AS SELECT 1 AS one;"})
    assert etl("run").code == 0
    (tmp_path / "mysql/shop/020_bad.sql").write_text(
        "CREATE VIEW ok AS SELECT 1;\n\nCREATE VIEW bad AS\nSELECT nope FROM records;\n"
    )
    (tmp_path / "mysql/shop/010_totals.sql").write_text("CREATE TABLE totals AS SELECT 2 AS one;")
    r = etl("transform")
    assert r.code == 1
    assert (
        "020_bad.sql, line 3:" in r.err
        and "nope" in r.err
        and "previous warehouse is still in place" in r.err
    )
    assert query(tmp_path, "SELECT one FROM shop.totals") == [(1,)]


def test_polars_transforms_stream_to_parquet_and_become_views(etl, tmp_path):
    project(
        tmp_path,
        {
            "030_by_region.py": (
                "import polars as pl\n\n"
                "def transform(tables):\n"
                "    return tables['records'].group_by('region').agg(pl.col('amount').sum()).sort('region')\n"
            )
        },
    )
    r = etl("run")
    assert r.code == 0, r.err
    assert query(tmp_path, "SELECT * FROM shop.by_region") == [("N", 2450), ("S", 2500)]
    assert (tmp_path / "data/marts/shop/by_region.parquet").exists()
    (tmp_path / "mysql/shop/030_by_region.py").write_text(
        "def transform(tables):\n    raise ValueError('boom')\n"
    )
    r = etl("transform")
    assert r.code == 1 and "030_by_region.py: ValueError: boom" in r.err


def test_memory_settings_are_applied(tmp_path):
    con = connect(Settings(data_dir=tmp_path, memory_limit=512 * MB, threads=4))
    settings = dict(
        con.sql(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('memory_limit', 'threads', 'temp_directory', 'preserve_insertion_order')"
        ).fetchall()
    )
    limit = float(settings["memory_limit"].split()[0]) * MB
    assert abs(limit - duckdb_memory_limit(512 * MB)) < MB and settings["threads"] == str(
        duckdb_threads(512 * MB, 4)
    )
    assert (
        settings["temp_directory"].startswith(str(tmp_path))
        and settings["preserve_insertion_order"] == "false"
    )
