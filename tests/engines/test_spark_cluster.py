"""A real standalone Spark cluster on loopback (master and worker started from the pyspark installation): the
pipeline runs with master = spark://127.0.0.1:PORT and the worker's own processes do the conversions."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator

import duckdb
import psutil
import pytest

from tests.engines.conftest import spark_session, standalone_cluster
from tests.engines.test_spark import etl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with standalone_cluster(tmp_path_factory.mktemp("cluster")) as (url, worker):
        engine = spark_session(url, **{"spark.executor.memory": "512m", "spark.cores.max": 2})
        yield url, worker
        engine.close()


@contextlib.contextmanager
def descendants(pid: int) -> Iterator[set[int]]:
    """The pids of every process under `pid` while the block runs (polled: task workers come and go)."""
    seen: set[int] = set()
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.05):
            with contextlib.suppress(psutil.Error):
                seen.update(p.pid for p in psutil.Process(pid).children(recursive=True))

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()


def test_the_pipeline_runs_on_a_standalone_cluster(cluster, tmp_path, monkeypatch):
    url, worker = cluster
    (tmp_path / "etl.toml").write_text(
        f'[etl]\nengine = "spark"\n[spark]\nmaster = "{url}"\n'
        '[datasets.sih_rd]\nkind = "datasus"\nsample = true\nsample_rows = 3000\n'
        '[datasets.nvd]\nkind = "nvd"\nsample = true\nsample_pages = 2\n'
    )
    from pyspark import SparkContext

    driver_jvm = SparkContext._gateway.proc.pid  # local mode's Python workers would be under it
    with descendants(worker.pid) as under_worker, descendants(driver_jvm) as under_driver:
        code, out, err = etl(tmp_path, "--json", "run", monkeypatch=monkeypatch)
    assert code == 0, err
    report = json.loads(out)
    assert report["engine"]["master"] == url
    assert report["engine"]["task_memory_limit_mb"] == 256  # spark.executor.memory 512m over 2 cores
    tasks = [s for s in report["steps"] if s["step"] == "convert"]
    assert len(tasks) > 2 and all(
        s["status"] == "ok" for s in tasks
    )  # the sih_rd sample's files, one NVD window
    for s in tasks:  # the worker's executor's Python did the work, not this process
        pid = int(s["worker"].rsplit(":", 1)[1])
        assert pid in under_worker and pid not in under_driver and pid != os.getpid(), s
        assert s["peak_rss_mb"] < 256
    con = duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True)
    try:
        rows = sum(s["rows"] for s in tasks if s["dataset"] == "sih_rd")
        assert con.execute("SELECT count(*) FROM sih_rd.records").fetchone()[0] == rows > 0
        assert con.execute("SELECT count(*) FROM sih_rd.internacoes_por_mes").fetchone()[0] > 0
        cves = con.execute("SELECT count(DISTINCT cve_id) FROM nvd.cves_current").fetchone()[0]
        assert con.execute("SELECT count(*) FROM nvd.cve_severity").fetchone()[0] == cves > 0
    finally:
        con.close()
    assert (tmp_path / "data" / "marts" / "nvd" / "cve_severity.parquet").is_dir()
