import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pytest

MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"

CONFIG = """
[etl]
memory_limit = "512MB"
[datasets.deaths]
kind = "csv"
sample = true
sample_rows = {rows}
encoding = "latin-1"
delimiter = ";"
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "etl.toml").write_text(CONFIG.format(rows=5000))
    return tmp_path


def query(path, sql):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def test_run_converts_builds_the_warehouse_and_reports(etl, project):
    r = etl("--json", "run")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["status"] == "ok" and summary["rows"] + summary["rejected"] == 5000
    assert summary["peak_rss_mb"] > 0 and summary["memory_limit_mb"] == 512
    convert = [s for s in summary["steps"] if s["step"] == "convert"]
    assert convert[0]["file"] == "raw/deaths/deaths.csv" and convert[0]["peak_rss_mb"] > 0
    assert query(project / "data/warehouse.duckdb", "SELECT count(*) FROM deaths") == [(summary["rows"],)]
    assert query(project / "data/warehouse.duckdb", "SELECT count(*) FROM deaths.records") == [
        (summary["rows"],)
    ]
    report = json.loads((project / "data/reports/last-run.json").read_text())
    assert report["run_id"] == summary["run_id"]
    status = etl("status")
    assert "raw/deaths/deaths.csv  converted" in status.out


def test_make_etl_runs_the_pipeline(etl, project):
    """The Makefile's `etl` recipe, with the arguments `make etl` gives it, on this project's etl.toml."""
    recipe = next(line for line in MAKEFILE.read_text().splitlines() if "$(BIN)/etl " in line)
    r = etl(*recipe.split("$(BIN)/etl ", 1)[1].split())
    assert r.code == 0, r.err
    assert (project / "data/warehouse.duckdb").exists()


def test_make_notebooks_installs_jupyter_before_starting_it():
    """`make notebooks` on a fresh clone: the explore extra (Jupyter) is installed, then Jupyter Lab starts."""
    r = subprocess.run(
        ["make", "-n", "-B", "--no-print-directory", "-C", str(MAKEFILE.parent), "notebooks"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    install = next(i for i, line in enumerate(lines) if "uv pip install" in line and "explore]" in line)
    assert "jupyter lab" in lines[-1] and install < len(lines) - 1


def test_second_run_skips_and_force_redoes(etl, project):
    assert etl("run").code == 0
    second = json.loads(etl("--json", "run").out)
    assert [s["status"] for s in second["steps"] if s["step"] == "convert"] == ["skipped"]
    forced = json.loads(etl("--json", "run", "--force").out)
    assert [s["status"] for s in forced["steps"] if s["step"] == "convert"] == ["ok"]


def test_an_unchanged_warehouse_is_kept_and_a_changed_input_rebuilds_it(etl, project):
    assert etl("run").code == 0
    warehouse = project / "data/warehouse.duckdb"
    built = warehouse.stat().st_mtime_ns

    def warehouse_step(*args):
        summary = json.loads(etl("--json", "run", *args).out)
        return next(s["status"] for s in summary["steps"] if s["step"] == "warehouse")

    assert warehouse_step() == "skipped" and warehouse.stat().st_mtime_ns == built
    sql = project / "sql/deaths"
    sql.mkdir(parents=True)
    (sql / "010_by_sex.sql").write_text(
        "CREATE TABLE by_sex AS SELECT SEXO, count(*) n FROM records GROUP BY 1"
    )
    assert warehouse_step() == "ok"  # a new transform file
    assert query(warehouse, "SELECT sum(n) FROM deaths.by_sex") == query(
        warehouse, "SELECT count(*) FROM deaths"
    )
    assert warehouse_step() == "skipped"
    (project / "etl.toml").write_text(CONFIG.format(rows=300))  # the sample generated anew: new Parquet
    assert warehouse_step() == "ok"  # new Parquet
    assert warehouse_step("--force") == "ok"
    assert etl("transform").code == 0 and warehouse.stat().st_mtime_ns > built


def test_a_changed_raw_file_is_converted_again(etl, project):
    assert etl("run").code == 0
    (project / "etl.toml").write_text(CONFIG.format(rows=300))  # the sample generated anew: another raw file
    again = json.loads(etl("--json", "run").out)
    assert again["rows"] + again["rejected"] == 300
    assert query(project / "data/warehouse.duckdb", "SELECT count(*) FROM deaths") == [(again["rows"],)]


def test_a_touched_but_identical_file_is_not_converted_again(etl, project):
    assert etl("run").code == 0
    raw = project / "data/raw/deaths/deaths.csv"
    os.utime(raw, ns=(raw.stat().st_atime_ns, raw.stat().st_mtime_ns + 10**9))
    again = json.loads(etl("--json", "run").out)
    assert [s["status"] for s in again["steps"] if s["step"] == "convert"] == ["skipped"]
    assert "crc32:" in etl("--json", "status").out


def test_a_bad_file_fails_alone_and_the_exit_code_says_so(etl, project):
    (project / "etl.toml").write_text(CONFIG.format(rows=100) + 'paths = ["in/*.csv"]\n')
    (project / "in").mkdir()
    (project / "in/good.csv").write_text("a;b\n1;2\n")
    (project / "in/bad.csv").write_bytes(b"")
    r = etl("run")
    assert r.code == 1
    assert "bad.csv" in r.err and "file is empty" in r.err
    assert query(project / "data/warehouse.duckdb", "SELECT a, b FROM deaths") == [(1, 2)]
    assert "failed" in etl("status").out


def test_a_reader_holding_the_warehouse_open_neither_blocks_nor_breaks(etl, project):
    assert etl("run").code == 0
    reader = duckdb.connect(str(project / "data/warehouse.duckdb"), read_only=True)
    assert reader.sql("SELECT count(*) FROM deaths").fetchall()[0][0] > 4900
    (project / "etl.toml").write_text(CONFIG.format(rows=300))  # the sample generated anew: another raw file
    assert etl("run").code == 0  # the warehouse is rebuilt beside the open file and renamed over it
    # The open connection keeps its catalogue; its views read the Parquet files, each replaced whole.
    assert reader.sql("SELECT count(*) FROM deaths").fetchall()[0][0] in (298, 299, 300)
    reader.close()
    assert query(project / "data/warehouse.duckdb", "SELECT count(*) FROM deaths")[0][0] in (298, 299, 300)


def test_sql_without_a_warehouse_says_what_to_do(etl, project):
    r = etl("sql", "SELECT 1")
    assert r.code == 1 and "etl run" in r.err


DATASUS_CONFIG = """
[etl]
memory_limit = "512MB"
[datasets.admissions]
kind = "datasus"
sample = true
sample_rows = {rows}
"""
KILLED = {  # config of the killed runs, and a checksum of the warehouse's view
    "csv": (
        CONFIG.format(rows=400_000),
        "SELECT count(*), sum(hash(CONTADOR, DTOBITO, MUNRES, VALOR, _source_row)) FROM deaths",
    ),
    # 360,000 records in 24 files: .dbc conversions overlap decompression, and are killed during both
    "dbc": (
        DATASUS_CONFIG.format(rows=360_000),  # conversions in the run's own process
        "SELECT count(*), sum(hash(N_AIH, VAL_TOT, DT_INTER, _source_file, _source_row)) FROM admissions",
    ),
    "dbc-workers": (
        DATASUS_CONFIG.format(rows=360_000).replace('"512MB"', '"1GB"'),  # on two worker processes, orphaned
        "SELECT count(*), sum(hash(N_AIH, VAL_TOT, DT_INTER, _source_file, _source_row)) FROM admissions",
    ),
}


def etl_run(cwd: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "etl.cli", "--quiet", "run"],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **popen,
    )


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory):
    """A clean run of a config's datasets at 1GB (samples generated on two workers): its raw files and its
    warehouse's checksum; once per dataset section and checksum, as the budget changes neither."""
    done = {}

    def clean(config: str, checksum: str) -> tuple[Path, list]:
        key = (config[config.index("[datasets.") :], checksum)
        if key not in done:
            folder = tmp_path_factory.mktemp("clean")
            (folder / "etl.toml").write_text(re.sub(r'memory_limit = "\w+"', 'memory_limit = "1GB"', config))
            run = etl_run(folder)
            assert run.wait() == 0, run.stderr.read().decode()
            done[key] = (folder / "data/raw", query(folder / "data/warehouse.duckdb", checksum))
        return done[key]

    return clean


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(KILLED))
def test_kill_9_at_any_moment_then_rerun_equals_an_uninterrupted_run(tmp_path, kind, clean_runs):
    """SIGKILL `etl run` at random moments; the rerun's outputs equal those of a clean run."""
    config, checksum = KILLED[kind]
    raw, expected = clean_runs(config, checksum)
    rng = random.Random(7)
    killed = tmp_path / "killed"
    shutil.copytree(raw, killed / "data/raw")  # the kills land in conversion, not generation
    (killed / "etl.toml").write_text(config)
    for _ in range(5):
        proc = etl_run(killed)
        time.sleep(rng.uniform(0.3, 3.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not list((killed / "data/parquet").rglob("*.parquet")) or all(
            p.stat().st_size > 0 for p in (killed / "data/parquet").rglob("*.parquet")
        )
    final = etl_run(killed)
    assert final.wait() == 0, final.stderr.read().decode()
    assert not list((killed / "data").rglob("*.tmp"))
    assert query(killed / "data/warehouse.duckdb", checksum) == expected
    assert _left_running(killed) == []  # no worker outlives its killed run


@pytest.mark.slow
def test_a_worker_killed_fails_the_files_it_held_and_the_rerun_converts_them(tmp_path, clean_runs):
    config, checksum = KILLED["dbc-workers"]
    raw, expected = clean_runs(config, checksum)
    shutil.copytree(raw, tmp_path / "data/raw")
    (tmp_path / "etl.toml").write_text(config)
    run = etl_run(tmp_path)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "data/parquet/admissions").glob("*.parquet")):  # the workers convert
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    workers = [p for p in psutil.Process(run.pid).children() if "spawn_main" in " ".join(p.cmdline())]
    assert len(workers) == 2
    workers[0].kill()
    assert run.wait() == 1
    err = run.stderr.read().decode()
    assert "a worker process died (killed?)" in err and "RDAM2306.dbc" in err  # each failed file named
    rerun = etl_run(tmp_path)
    assert rerun.wait() == 0, rerun.stderr.read().decode()
    assert query(tmp_path / "data/warehouse.duckdb", checksum) == expected
    assert _left_running(tmp_path) == []


@pytest.mark.slow
def test_workers_of_a_run_started_with_sigint_ignored_and_killed_remove_their_partials(tmp_path, clean_runs):
    """A run started in the background (nohup, a CI job) has SIGINT ignored, as its workers then have: orphaned,
    they still stop as at Ctrl-C and remove the Parquet files they were writing."""
    config, checksum = KILLED["dbc-workers"]
    raw, _ = clean_runs(config, checksum)
    shutil.copytree(raw, tmp_path / "data/raw")
    (tmp_path / "etl.toml").write_text(config)
    run = etl_run(tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))

    def workers_partials() -> list[Path]:
        return [
            p for p in (tmp_path / "data/parquet").rglob("*.parquet.*.tmp") if f".{run.pid}-" not in p.name
        ]

    deadline = time.monotonic() + 120
    while not workers_partials():  # a worker is writing a file
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    run.kill()
    run.wait()
    # An interrupted worker goes back to wait for work, until its watch ends it 5 s on: what counts is its files.
    assert _left_running(tmp_path, wait=20) == []
    assert workers_partials() == []


def _left_running(cwd: Path, wait: float = 5.0) -> list[str]:
    """Processes still running in cwd after `wait` seconds (the workers of a killed run check for it twice a
    second)."""
    deadline = time.monotonic() + wait
    while True:
        left = []
        for p in psutil.process_iter(["cwd", "cmdline"]):
            if p.info["cwd"] == str(cwd):
                left.append(" ".join(p.info["cmdline"] or []))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def test_a_warehouse_or_mart_left_half_built_by_a_killed_run_is_removed_by_the_next(etl, project):
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = int(gone.stdout)
    data = project / "data"
    (data / "marts/deaths").mkdir(parents=True)
    partials = [
        data / f"warehouse.duckdb.{dead}-0123abcd.tmp",
        data / f"warehouse.duckdb.{dead}-0123abcd.tmp.wal",  # DuckDB's log of the database being built
        data / f"marts/deaths/por_mes.parquet.{dead}-4567cdef.tmp",
    ]
    for p in partials:
        p.write_bytes(b"left by a killed run")
    r = etl("run")
    assert r.code == 0, r.err
    assert [p for p in partials if p.exists()] == []
    assert f"warehouse.duckdb.{dead}-0123abcd.tmp left by an interrupted run" in r.err
    assert (data / "warehouse.duckdb").is_file()


def test_ctrl_c_is_recorded_as_interrupted_and_the_rerun_completes(etl, project, monkeypatch):
    from etl.sources import csv

    real = csv.convert_file

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(csv, "convert_file", interrupted)
    r = etl("run")
    assert r.code == 130 and "run the same command again" in r.err
    assert json.loads((project / "data/reports/last-run.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(csv, "convert_file", real)
    assert etl("run").code == 0
    runs = json.loads(etl("--json", "status").out)["runs"]
    assert [(r["id"], r["command"], r["status"]) for r in runs] == [
        (2, "run", "ok"),
        (1, "run", "interrupted"),
    ]
