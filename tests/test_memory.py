"""Memory is a contract: a CSV many times larger than a small budget converts within it (child process)."""

import json
import subprocess
import sys
import time

import duckdb
import pytest

from etl.memory import MB, RssMonitor, duckdb_memory_limit, duckdb_threads
from tests.conftest import TEST_BUDGET_MB, etl_measured


def test_duckdb_settings_leave_room_within_the_budget():
    for budget in (256 * MB, 512 * MB, 1024 * MB, 8192 * MB):
        assert duckdb_memory_limit(budget) + 150 * MB <= budget
    assert duckdb_threads(256 * MB, 4) == 1 and duckdb_threads(1024 * MB, 4) == 4


def test_rss_monitor_sees_an_allocation():
    with RssMonitor() as rss:
        block = bytearray(80 * MB)
        block[::4096] = b"x" * len(block[::4096])
        rss.sample()
        del block
    assert rss.peak_mb >= 80


def test_rss_monitor_counts_a_child_started_while_it_runs():
    with RssMonitor() as rss:
        own = rss.sample()
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; b = bytearray(100 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
             "print(flush=True); time.sleep(1)"],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        child.stdout.readline()  # the child holds its 100 MB now
        time.sleep(0.5)  # more than the monitor's period for finding new children
        child.wait()
    assert rss.peak_mb >= (own / MB) + 100


@pytest.mark.slow
def test_a_csv_four_times_the_budget_converts_within_it(tmp_path):
    src = tmp_path / "big.csv"
    duckdb.sql(f"""COPY (SELECT i AS id, 'nome ' || (i * 7919 % 100003) AS nome, (i % 1000)::INT AS code,
        DATE '2020-01-01' + (i % 1500)::INT AS d, round(i / 7, 2) AS val, repeat(md5(i::VARCHAR), 8) AS h
        FROM range(3500000) t(i)) TO '{src}' (HEADER, DELIMITER ';')""")  # 1 GB in wide rows (fewer to parse)
    assert src.stat().st_size > 3 * TEST_BUDGET_MB * MB
    code, out, err, peak_mb = etl_measured(
        tmp_path, "--json", "convert", "csv", src, "--out", tmp_path / "out"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["rows"] == 3_500_000 and summary["rejected"] == 0
    assert peak_mb < TEST_BUDGET_MB, f"peak RSS {peak_mb:.0f} MB over the budget"
    assert summary["steps"][0]["over_budget"] is False
