"""What Spark needs, said in one error before any work: Java 17 (pyspark itself comes with the extra)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = '[etl]\nengine = "spark"\n[datasets.tiny]\nkind = "csv"\npaths = ["in.csv"]\n'


def run_etl(tmp_path: Path, java_home: Path) -> subprocess.CompletedProcess:
    (tmp_path / "in.csv").write_text("a,b\n1,x\n")
    (tmp_path / "etl.toml").write_text(CONFIG)
    env = {**os.environ, "JAVA_HOME": str(java_home)}
    env.pop("ETL_ENGINE", None)
    return subprocess.run(
        [sys.executable, "-m", "etl.cli", "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_no_java_is_one_error_saying_what_to_install(tmp_path):
    r = run_etl(tmp_path, tmp_path / "no-java-here")
    assert r.returncode == 1
    assert 'engine = "spark" needs Java 17: no java on JAVA_HOME or PATH' in r.stderr
    assert "apt-get install openjdk-17-jre-headless" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("version", ['"11.0.22" 2024-01-16', '"1.8.0_402"'])
def test_an_older_java_is_refused_with_its_version(tmp_path, version):
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho 'openjdk version {version}' >&2\n")
    java.chmod(0o755)
    r = run_etl(tmp_path, tmp_path / "jdk")
    major = "8" if version.startswith('"1.8') else "11"
    assert r.returncode == 1
    assert f'engine = "spark" needs Java 17, {java} is {major}' in r.stderr
    assert not (tmp_path / "data" / "parquet" / "tiny").exists()
