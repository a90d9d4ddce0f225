"""A mart's full sort that does not fit DuckDB's memory is built in ranges of its first key, in its order."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from etl.config import Settings
from etl.errors import LoadError
from etl.memory import MB
from etl.sinks.duckdb import connect, run_sql_file
from etl.sinks.sort_ranges import create_sorted_in_ranges
from etl.transform import export_marts

ROWS = 1_000_000
SQL_FILE = Path("010_sorted.sql")


@pytest.fixture
def warehouse(tmp_path):
    """A warehouse connection as `etl transform` opens it with DuckDB's memory cut to 16 MiB, and a table of 1M
    rows of ~90 bytes many times that: a key v with 1,000 NULLs and repeated values, an integer k, 64 characters."""
    settings = Settings(data_dir=tmp_path, memory_limit=512 * MB, threads=2)
    con = connect(settings, tmp_path / "warehouse.duckdb")
    con.execute(
        "CREATE SCHEMA mart; SET schema = 'mart'; CREATE TABLE facts AS SELECT (i * 7919) % 1000003 AS k, "
        "CASE WHEN i % 1000 = 0 THEN NULL ELSE hash(i) % 100000 END AS v, "
        f"md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS s FROM range({ROWS}) t(i)"
    )
    con.execute("SET memory_limit = '16MiB'")
    yield settings, con
    con.close()


def exported(settings, con):
    """The marts as `etl transform` writes them, read back in file order."""
    con.execute("DROP TABLE mart.facts; SET memory_limit = '1GiB'")
    export_marts(con, settings, "mart")
    return pq.read_table(settings.marts_dir / "mart/sorted.parquet").to_pydict()


def test_a_sort_larger_than_memory_is_built_in_ranges_in_the_statements_order(warehouse, caplog):
    settings, con = warehouse
    statement = "CREATE TABLE sorted AS SELECT f.* FROM facts f ORDER BY f.v DESC NULLS FIRST, k"
    with pytest.raises(LoadError, match="Out of Memory"):  # DuckDB's own sort of the whole does not fit
        run_sql_file(con, SQL_FILE, statement)
    caplog.set_level("INFO", logger="etl.sinks.sort_ranges")
    run_sql_file(con, SQL_FILE, statement, out_of_memory=create_sorted_in_ranges)
    assert "sorted: sorted in" in caplog.text and 'ranges of "v"' in caplog.text
    expected = con.execute(
        "SET memory_limit = '1GiB'; SELECT k, v FROM facts ORDER BY v DESC NULLS FIRST, k"
    ).fetchall()
    rows = exported(settings, con)
    assert len(rows["k"]) == ROWS and len(set(rows["s"])) == ROWS
    assert list(zip(rows["k"], rows["v"], strict=True)) == expected
    assert rows["v"][:1000] == [None] * 1000 and rows["v"][1000] == 99999
    assert con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = '_etl_unsorted'"
    ).fetchone() == (0,)


def test_ascending_nulls_come_last_by_default(warehouse):
    settings, con = warehouse
    run_sql_file(
        con,
        SQL_FILE,
        "CREATE OR REPLACE TABLE sorted AS SELECT * FROM facts ORDER BY v, k;",
        out_of_memory=create_sorted_in_ranges,
    )
    rows = exported(settings, con)
    values = rows["v"]
    assert values[-1000:] == [None] * 1000 and values[:-1000] == sorted(values[:-1000]) and values[0] == 0
    assert len(values) == ROWS


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        # one value of the first key: its range cannot be cut
        (
            "CREATE TABLE sorted AS SELECT 7 AS v, * EXCLUDE (v) FROM facts ORDER BY v, s",
            'Out of Memory Error: a sort of the rows where "v" is 7 does not fit in memory',
        ),
        # a key that is not a column of the result: not sorted in ranges, DuckDB's error as it is
        ("CREATE TABLE sorted AS SELECT * FROM facts ORDER BY reverse(s)", "Out of Memory Error: failed to"),
    ],
)
def test_a_sort_that_cannot_be_cut_fails_with_the_files_line_and_hint(warehouse, statement, message):
    _, con = warehouse
    with pytest.raises(LoadError) as e:
        run_sql_file(con, SQL_FILE, "\n" + statement, out_of_memory=create_sorted_in_ranges)
    assert str(e.value).startswith("010_sorted.sql, line 2: ") and message in str(e.value)
    assert "Raise --memory-limit" in str(e.value)
    assert con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name IN ('sorted', '_etl_unsorted')"
    ).fetchone() == (0,)
