"""Shared fixtures: run the CLI in-process as a user would, with a private data directory."""

from __future__ import annotations

import contextlib
import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
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


def write_text_file(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """A file holding `text` in `encoding`, exactly (no newline translation)."""
    path.write_bytes(text.encode(encoding))
    return path


def samples_dir() -> Path | None:
    """The shared real samples, when this checkout has them beside it (ETL_SAMPLES_DIR overrides)."""
    path = Path(os.environ.get("ETL_SAMPLES_DIR", REPO.parent / "shared" / "samples"))
    return path if path.is_dir() else None


def parquet_rows(path, sql="SELECT * FROM t"):
    """The rows of `sql` over the Parquet at path (a file or a glob) as view `t`, timestamps in UTC."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW t AS SELECT * FROM '{path}'")
    return con.sql(sql).fetchall()


# Memory-bound tests run etl at this budget: a fresh install maps ~40 MB more library pages into each process
# (file-backed RSS) than an older one, which leaves too little room at 256 MB.
TEST_BUDGET_MB = 320


def etl_measured(tmp_path: Path, *args: str) -> tuple[int, str, str, float]:
    """`etl --memory-limit TEST_BUDGET_MB … ARGS` in a child process: exit code, stdout, stderr, peak RSS in MB.

    The child is started by a small launcher (`python -m etl.memory`): forked from the large pytest process,
    it would count pytest's pages as its own.
    """
    import subprocess
    import sys

    argv = [
        sys.executable,
        "-m",
        "etl.memory",
        sys.executable,
        "-m",
        "etl.cli",
        "--memory-limit",
        f"{TEST_BUDGET_MB}MB",
        "--data-dir",
        str(tmp_path / "data"),
        *map(str, args),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True)
    *err, last = proc.stderr.rstrip("\n").split("\n")
    return proc.returncode, proc.stdout, "\n".join(err), float(last.removeprefix("peak_rss_mb="))


# A real PostgreSQL: ETL_TEST_PG_DSN when set, else a throwaway server from the pgserver package.


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    if os.environ.get("ETL_TEST_PG_DSN"):
        yield os.environ["ETL_TEST_PG_DSN"]
        return
    pgserver = pytest.importorskip("pgserver")
    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def pg(pg_server):
    """A DSN to a database of this test's own, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = psycopg.conninfo.make_conninfo(pg_server, dbname=name)
    yield dsn
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
