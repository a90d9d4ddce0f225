"""Shared fixtures: run the CLI in-process as a user would, with a private data directory."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from etl.cli import main

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def etl(tmp_path, monkeypatch):
    """Call `etl …` in-process from tmp_path (so data/ and etl.toml are the test's own)."""
    monkeypatch.chdir(tmp_path)
    for name in [
        n for n in os.environ if n.startswith("ETL_") and n not in ("ETL_TEST_PG_DSN", "ETL_SAMPLES_DIR")
    ]:
        monkeypatch.delenv(name)

    def run(*args: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
        return Result(code, out.getvalue(), err.getvalue())

    return run


def samples_dir() -> Path | None:
    """The shared real samples, when this checkout has them beside it (ETL_SAMPLES_DIR overrides)."""
    path = Path(os.environ.get("ETL_SAMPLES_DIR", REPO.parent / "shared" / "samples"))
    return path if path.is_dir() else None


def run_measured(argv: list[str]) -> tuple[int, str, str, float]:
    """Run a command in a child process: exit code, stdout, stderr, and its peak RSS in MB."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "etl.memory", *argv], capture_output=True, text=True)
    *err, last = proc.stderr.rstrip("\n").split("\n")
    return proc.returncode, proc.stdout, "\n".join(err), float(last.removeprefix("peak_rss_mb="))
