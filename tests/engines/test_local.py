"""The local engine: several files convert on worker processes at once, each within its share of the budget;
the rows, the failures and what the workers log are as when one process converts them all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

from etl.config import Settings
from etl.engines.local import LocalEngine
from etl.memory import MB
from etl.samples.datasus import write_sample
from etl.sources import map_here
from tests.conftest import etl  # noqa: F401 (the fixture)
from tests.engines.conftest import good_files_and_a_bad_one

EPSS = (
    '[etl]\nmemory_limit = "{budget}"\nthreads = {threads}\n[datasets.epss]\nkind = "epss"\nsample = true\n'
)


def _rows(folder: Path) -> list[tuple]:
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT * EXCLUDE (_source_file) FROM read_parquet('{folder}/*.parquet') ORDER BY ALL"
        ).fetchall()


def test_files_convert_on_two_workers_with_the_rows_of_one_process(tmp_path, etl):  # noqa: F811
    runs = {}
    for threads in (1, 2):
        folder = tmp_path / f"threads{threads}"
        folder.mkdir()
        (folder / "etl.toml").write_text(EPSS.format(budget="1GB", threads=threads))
        r = etl("--config", folder / "etl.toml", "--data-dir", folder / "data", "--json", "run")
        assert r.code == 0, r.err
        runs[threads] = (folder, json.loads(r.out), r.err)
    (one, single, _), (two, parallel, err) = runs[1], runs[2]
    steps = [s for s in parallel["steps"] if s["step"] == "convert"]
    assert len(steps) == 8 and all(s["status"] == "ok" for s in steps)
    workers = {s["worker"] for s in steps}
    assert len(workers) == 2 and f"{os.uname().nodename}:{os.getpid()}" not in workers  # two other processes
    # a share of the budget each, and one for this process
    assert parallel["engine"] == {"name": "local", "workers": 2, "task_memory_limit_mb": 341}
    assert single["engine"] == {"name": "local"}
    assert all(s["worker"] is None for s in single["steps"] if s["step"] == "convert")
    # what a worker logs reaches the driver's log, once per file
    assert sum("2969 scores of 2026-10-" in line for line in err.splitlines()) == 7
    assert _rows(two / "data" / "parquet" / "epss") == _rows(one / "data" / "parquet" / "epss")


def test_a_budget_too_small_to_share_converts_in_this_process(tmp_path, etl):  # noqa: F811
    (tmp_path / "etl.toml").write_text(EPSS.format(budget="512MB", threads=2))
    r = etl("--json", "run")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    steps = [s for s in report["steps"] if s["step"] == "convert"]
    assert (
        len(steps) == 8 and all(s["worker"] is None for s in steps) and report["engine"] == {"name": "local"}
    )


def test_a_bad_file_fails_alone_on_a_worker_and_is_named(tmp_path, etl):  # noqa: F811
    good = good_files_and_a_bad_one(tmp_path / "in", tmp_path, 3)
    (tmp_path / "etl.toml").write_text(
        '[etl]\nmemory_limit = "1GB"\nthreads = 2\n[datasets.rd]\nkind = "datasus"\npaths = ["in/*.dbc"]\n'
    )
    r = etl("--json", "run")
    assert r.code == 1
    steps = {Path(s["file"]).name: s for s in json.loads(r.out)["steps"] if s["step"] == "convert"}
    assert steps["RDAC2301.dbc"]["status"] == "failed" and "RDAC2301.dbc" in steps["RDAC2301.dbc"]["error"]
    assert [steps[p.name]["status"] for p in good] == ["ok"] * 3
    assert sum(steps[p.name]["rows"] for p in good) == sum(
        duckdb.connect().execute(f"SELECT count(*) FROM '{p}'").fetchall()[0][0]
        for p in (tmp_path / "data" / "parquet" / "rd").glob("*.parquet")
    )
    assert any(line.startswith("ERROR ") and "RDAC2301.dbc" in line for line in r.err.splitlines())


def test_sample_files_written_on_two_workers_are_those_one_process_writes(tmp_path):
    engine = LocalEngine(Settings(data_dir=tmp_path, memory_limit=1024 * MB, threads=2))
    try:
        for name, parallel_map in (("one", map_here), ("two", engine.parallel_map)):
            (tmp_path / name).mkdir()
            write_sample(tmp_path / name, tmp_path, "SIM", "DO", rows=2000, parallel_map=parallel_map)
        pids = {p.pid for p in engine._pool._processes.values()}
    finally:
        engine.close()
    assert len(pids) == 2 and os.getpid() not in pids
    files = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert files == ["DOAM2023.dbc", "DOBA2023.dbc", "DOMG2023.dbc", "DOSP2023.dbc"]
    for name in files:
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    assert not list(tmp_path.glob("*.dbf"))  # the scratch .dbf files are gone
