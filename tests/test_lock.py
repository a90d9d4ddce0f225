"""One writer per data directory; temporaries that only their owner, or nobody, may sweep away."""

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from etl import files
from tests.test_pipeline import DATASUS_CONFIG, query

HOLD = """
import sys, time
from pathlib import Path
from etl.lock import WriterLock
lock = WriterLock(Path(sys.argv[1]), command="etl run --only holder")
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """A child process holding the writer lock of tmp_path/data."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "data")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_writer_fails_at_once_naming_the_holder_and_readers_go_on(etl, tmp_path, holder):
    (tmp_path / "etl.toml").write_text(DATASUS_CONFIG.format(rows=500))
    r = etl("run")
    assert r.code == 1
    assert f"is in use by another etl command (pid {holder.pid}, `etl run --only holder`, since 20" in r.err
    assert "reading (etl sql, etl status, notebooks) needs no lock" in r.err
    assert not (tmp_path / "data/raw").exists()  # it stopped before touching anything
    fetch = etl("fetch", "datasus", "--sample")
    assert fetch.code == 1 and "in use by another etl command" in fetch.err
    assert etl("status").code == 0

    holder.send_signal(signal.SIGKILL)  # the kernel releases a dead holder's lock: nothing stale to clear
    holder.wait()
    done = etl("run")
    assert done.code == 0, done.err


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_two_runs_at_once_then_a_solo_run_equals_a_clean_run(tmp_path):
    checksum = (
        "SELECT count(*), sum(hash(N_AIH, VAL_TOT, DT_INTER, _source_file, _source_row)) FROM admissions"
    )

    def project(name):
        d = tmp_path / name
        d.mkdir()
        (d / "etl.toml").write_text(DATASUS_CONFIG.format(rows=20_000))
        return d

    def etl_run(cwd):
        argv = [sys.executable, "-m", "etl.cli", "--quiet", "run"]
        return subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    clean = project("clean")
    assert etl_run(clean).wait() == 0

    both = project("both")
    first, second = etl_run(both), etl_run(both)
    results = [(p.wait(), p.stderr.read()) for p in (first, second)]
    assert any(code == 0 for code, _ in results), results
    for code, err in results:
        assert code == 0 or "is in use by another etl command" in err, err
    solo = etl_run(both)
    assert solo.wait() == 0, solo.stderr.read()
    assert digests(both / "data/raw/admissions") == digests(clean / "data/raw/admissions")
    assert query(both / "data/warehouse.duckdb", checksum) == query(clean / "data/warehouse.duckdb", checksum)
    assert not list((both / "data").rglob("*.tmp"))


def test_the_sweep_removes_only_temporaries_whose_owner_is_gone(tmp_path):
    mine = tmp_path / "a.parquet"
    live = files.tmp_path(mine)
    live.write_bytes(b"in flight")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = tmp_path / f"b.parquet.{int(gone.stdout)}-0123abcd.tmp"
    dead.write_bytes(b"left by a killed run")
    unowned = tmp_path / "sub" / "c.parquet.tmp"  # the name etl used before temporaries carried their owner
    unowned.parent.mkdir()
    unowned.write_bytes(b"old")
    assert sorted(files.remove_partials(tmp_path)) == sorted([dead, unowned])
    assert live.read_bytes() == b"in flight"
    assert files.tmp_path(mine) != files.tmp_path(mine) and f".{os.getpid()}-" in files.tmp_path(mine).name
