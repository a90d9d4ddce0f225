"""An executor that cannot see the data directory (its worker in a mount namespace where a tmpfs hides it): the
run stops with one clear error before converting anything."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from tests.engines.conftest import spark_session, standalone_cluster
from tests.engines.test_spark import etl

pytestmark = pytest.mark.slow


def can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "none", "/mnt"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.fixture(scope="module")
def blind(tmp_path_factory):
    if not can_unshare():
        pytest.skip("needs unshare --mount (root) to hide a folder from the worker")
    project = tmp_path_factory.mktemp("project")
    (project / "data").mkdir()
    hide = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs none "$0" && exec "$@"', str(project / "data")]  # fmt: skip
    with standalone_cluster(tmp_path_factory.mktemp("cluster"), worker_prefix=hide) as (url, worker):
        engine = spark_session(url, **{"spark.executor.memory": "512m", "spark.cores.max": 2})
        yield url, project
        engine.close()


def test_an_executor_that_cannot_see_the_data_directory_stops_the_run(blind, monkeypatch):
    url, project = blind
    (project / "etl.toml").write_text(
        f'[etl]\nengine = "spark"\n[spark]\nmaster = "{url}"\n'
        '[datasets.sih_rd]\nkind = "datasus"\nsample = true\nsample_rows = 500\n'
    )
    code, out, err = etl(project, "run", monkeypatch=monkeypatch)
    assert code == 1
    host = socket.gethostname()  # the worker runs on this machine, in its own mount namespace
    assert f"etl: error: Spark executors on {host} cannot see the data directory {project / 'data'}" in err
    assert "storage every executor mounts at the same path" in err
    assert not list((project / "data" / "parquet").rglob("*.parquet"))
