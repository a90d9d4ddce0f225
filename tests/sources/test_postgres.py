import datetime as dt
from decimal import Decimal

import psycopg
import pyarrow.parquet as pq

from tests.conftest import TEST_BUDGET_MB, etl_measured


def test_extract_a_table_with_types_and_lineage(etl, tmp_path, pg):
    with psycopg.connect(pg) as c:
        c.execute("""CREATE TABLE gazette (id bigint, title text, price numeric(8,2), total numeric, seen date,
                     at timestamptz, ok boolean, tags text[], doc jsonb)""")
        c.execute("""INSERT INTO gazette SELECT i, CASE WHEN i = 2 THEN '' WHEN i = 3 THEN NULL
                     ELSE 'a, "b"' || chr(10) || 'c' END, i / 4.0, i * 1.5, DATE '2024-02-01' + i,
                     TIMESTAMPTZ '2024-01-01 12:00:00-03' + i * INTERVAL '1 hour', i % 2 = 0, ARRAY['x', 'y'],
                     '{"k": 1}' FROM generate_series(1, 5000) i""")
    r = etl("--json", "extract", "postgres", "--dsn", pg, "--table", "public.gazette", "--out", "out")
    assert r.code == 0, r.err
    table = pq.read_table(tmp_path / "out/public_gazette.parquet")
    assert table.num_rows == 5000
    rows = table.to_pylist()
    assert rows[0]["title"] == 'a, "b"\nc' and rows[1]["title"] == "" and rows[2]["title"] is None
    assert (
        rows[0]["price"] == Decimal("0.25")
        and rows[0]["total"] == "1.5"
        and rows[0]["seen"] == dt.date(2024, 2, 2)
    )
    assert rows[0]["at"] == dt.datetime(2024, 1, 1, 16, tzinfo=dt.UTC) and rows[1]["ok"] is True
    assert rows[0]["tags"] == "{x,y}" and rows[0]["doc"] == '{"k": 1}'
    assert rows[4]["_source_file"] == "postgres:public.gazette" and rows[4]["_source_row"] == 5


def test_extract_a_query(etl, tmp_path, pg):
    r = etl(
        "extract",
        "postgres",
        "--dsn",
        pg,
        "--query",
        "SELECT g AS n FROM generate_series(1, 10) g",
        "--out",
        "out",
    )
    assert r.code == 0, r.err
    (out,) = (tmp_path / "out").glob("query_*.parquet")
    assert pq.read_table(out).column("n").to_pylist() == list(range(1, 11))
    bad = etl("extract", "postgres", "--dsn", pg, "--table", "nope", "--out", "out")
    assert bad.code == 1 and "nope" in bad.err


def test_extract_a_table_larger_than_the_budget_in_bounded_memory(tmp_path, pg):
    with psycopg.connect(pg) as c:
        c.execute(
            "CREATE TABLE big AS SELECT i AS id, repeat(md5(i::text), 8) AS h, now() AS at "
            "FROM generate_series(1, 1200000) i"  # 400 MB in wide rows (fewer to read)
        )

    code, out, err, peak = etl_measured(
        tmp_path, "extract", "postgres", "--dsn", pg, "--table", "big", "--out", tmp_path / "out"
    )
    assert code == 0, err
    assert pq.read_metadata(tmp_path / "out/big.parquet").num_rows == 1_200_000
    assert peak < TEST_BUDGET_MB
