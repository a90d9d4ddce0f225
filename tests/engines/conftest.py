"""Spark for the engine tests: one session per test module, and a standalone cluster on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from etl.config import Config
from etl.engines.spark import SparkEngine
from etl.samples.datasus import write_sample

# Tests bind loopback only; no Spark UI.
LOOPBACK_CONF = {
    "spark.ui.enabled": False,
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


def good_files_and_a_bad_one(raw: Path, scratch: Path, good: int) -> list[Path]:
    """The first `good` SIH RD sample files (500 records) in raw, and RDAC2301.dbc there, which is no .dbc."""
    files = write_sample(raw, scratch, rows=500)
    for extra in files[good:]:
        extra.unlink()
    (raw / "RDAC2301.dbc").write_bytes(b"this is not a dbc file" * 50)
    return files[:good]


def spark_session(master: str, **conf) -> SparkEngine:
    """A session the module's pipelines share (an engine finds it active, uses it and leaves it running)."""
    engine = SparkEngine(Config(sections={"spark": {"master": master, "conf": {**LOOPBACK_CONF, **conf}}}))
    engine.session()
    return engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


@contextlib.contextmanager
def standalone_cluster(
    work: Path, *, worker_prefix: list[str] = ()
) -> Iterator[tuple[str, subprocess.Popen]]:
    """A standalone master and one worker (2 cores, 1 GB) from the pyspark installation, on 127.0.0.1.

    `worker_prefix` runs the worker under another command (e.g. in its own mount namespace). Yields the master's
    URL and the worker's process.
    """
    home = spark_home()
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
    port, ui = free_port(), free_port()
    spark_class = str(home / "bin" / "spark-class")
    work.mkdir(parents=True, exist_ok=True)
    logs = open(work / "cluster.log", "wb")  # noqa: SIM115 (closed below, after the processes)
    master = subprocess.Popen(
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
         "--webui-port", str(ui)],
        env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"spark://127.0.0.1:{port}"
    worker = subprocess.Popen(
        [*worker_prefix, spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
         "--cores", "2", "--memory", "1g", "--work-dir", str(work / "worker"), "--webui-port",
         str(free_port()), url],
        env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(OSError, ValueError):
                status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5))
                if status.get("aliveworkers", 0) >= 1:
                    break
            if time.monotonic() > deadline or master.poll() is not None or worker.poll() is not None:
                raise RuntimeError(
                    f"the Spark cluster did not start: {(work / 'cluster.log').read_text()[-3000:]}"
                )
            time.sleep(1)
        yield url, worker
    finally:
        for proc in (worker, master):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
        logs.close()


@pytest.fixture(scope="module")
def local_spark() -> Iterator[SparkEngine]:
    engine = spark_session("local[2]")
    yield engine
    engine.close()
