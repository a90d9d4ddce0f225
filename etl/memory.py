"""The memory budget and the RSS monitor."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass

from etl.errors import ConfigError

MB = 1024 * 1024
_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1024,
    "KIB": 1024,
    "MB": MB,
    "MIB": MB,
    "GB": 1024 * MB,
    "GIB": 1024 * MB,
    "TB": 1024 * 1024 * MB,
    "TIB": 1024 * 1024 * MB,
}
# What a Python process with pyarrow, duckdb and polars imported holds before any data.
BASELINE_BYTES = 120 * MB
# The smallest budget etl accepts: a conversion's baseline, its batches and DuckDB's minimum fit in it (a 1M-record
# .dbc converts in 149-164 MB at 256 MB); below it every step would report itself over budget.
MIN_MEMORY_LIMIT = 256 * MB


def parse_size(text: str | int) -> int:
    """Parse '512MB', '1GB', '1.5GiB' or a byte count into bytes (powers of 1024, as DuckDB does)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).upper() not in _UNITS:
        raise ConfigError(f"invalid size {text!r}", hint="Write it like 512MB or 2GB")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def check_budget(budget: int) -> int:
    """The budget, or a ConfigError when it is too small to work, naming the smallest that does."""
    if budget < MIN_MEMORY_LIMIT:
        raise ConfigError(
            f"a memory limit of {budget / MB:g} MB is too small to work",
            hint=f"The smallest is {MIN_MEMORY_LIMIT // MB}MB",
        )
    return budget


def duckdb_memory_limit(budget: int, share: float = 0.5, reserve: int = 170 * MB) -> int:
    """The memory_limit to give DuckDB so that the whole process stays within the budget.

    Measured here: RSS = about 60 MB of interpreter and libraries + DuckDB's limit + 70-170 MB above it.
    """
    return max(40 * MB, int(min(budget * share, (budget - reserve) * share)))


def duckdb_threads(budget: int, threads: int) -> int:
    """Threads for DuckDB: each costs about 50 MB of buffers beyond memory_limit, so a small budget gets fewer."""
    return max(1, min(threads, budget // (192 * MB)))


def working_bytes(budget: int) -> int:
    """Bytes a Python-side stage may hold in flight (its batches, buffers, row groups)."""
    return max(16 * MB, budget - BASELINE_BYTES) // 8


def batch_rows(budget: int, row_bytes: int, *, cap: int = 1_000_000) -> int:
    """Rows per batch for records of about row_bytes each, so a batch stays within its share of the budget."""
    return max(1024, min(cap, working_bytes(budget) // 4 // max(1, row_bytes)))


DEFAULT_ROW_GROUP_BYTES = 32 * MB
# Row groups a Parquet sink holds in memory: one filling, one being written, and the pages that one has encoded.
HELD_ROW_GROUPS = 3


def row_group_bytes(budget: int, share: float = 0.25) -> int:
    """Row groups of about 32 MB in memory, smaller under a tight budget: HELD_ROW_GROUPS of them take `share` of
    the budget beyond the interpreter's (11 MB at 256 MB for a quarter)."""
    return max(2 * MB, min(DEFAULT_ROW_GROUP_BYTES, int((budget - 120 * MB) * share) // HELD_ROW_GROUPS))


PROC = "/proc"


def proc_rss(pid: int) -> int:
    """A process's resident bytes from /proc/PID/statm (Linux), where psutil's memory_info().rss reads them; 0 for
    a process gone."""
    try:
        with open(f"{PROC}/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def proc_descendants(pid: int) -> list[int]:
    """The processes below pid, children first, from each process's parent in /proc/N/stat (psutil's children()
    reads the same)."""
    below: dict[int, list[int]] = {}
    for name in os.listdir(PROC):
        if not name.isdigit():
            continue
        try:
            with open(f"{PROC}/{name}/stat", "rb") as f:
                stat = f.read()
            # PID (NAME) STATE PPID …: a name may hold spaces and parentheses, so the fields after its last ')'
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        below.setdefault(ppid, []).append(int(name))
    found, todo = [], [pid]
    while todo:
        children = below.get(todo.pop(), [])
        found += children
        todo += children
    return found


@dataclass
class RssMonitor:
    """Samples the RSS of this process and its children (a .dbc's decompressor) in a background thread while a
    step runs; `peak` holds the maximum of their sum.

    On Linux from /proc, as psutil reads it, without importing psutil: that import and its Process took 11 ms of a
    small `etl convert dbc` (whole process, medians of 21 pairs); elsewhere by psutil."""

    interval: float = 0.02
    # Listing the children reads every process's /proc entry (3.2 ms here, against 0.04 ms for one RSS): done
    # every 0.02 s it took 16% of a core, so the list is renewed every CHILD_SCANS samples (0.2 s).
    CHILD_SCANS = 10
    peak: int = 0

    def __post_init__(self) -> None:
        self._pid = os.getpid()
        self._proc = None
        if not os.path.exists(f"{PROC}/{self._pid}/statm"):
            import psutil  # here: ~30 ms of start-up that commands measuring no step (--help, status) skip

            self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._children: list = []  # pids from /proc, psutil.Process objects otherwise
        self._samples = 0

    def sample(self) -> int:
        scan = self._samples % self.CHILD_SCANS == 0
        self._samples += 1
        if self._proc is None:
            if scan:
                self._children = proc_descendants(self._pid)
            rss = proc_rss(self._pid) + sum(proc_rss(child) for child in self._children)
        else:
            rss = self._psutil_rss(scan)
        self.peak = max(self.peak, rss)
        return rss

    def _psutil_rss(self, scan: bool) -> int:
        import psutil

        rss = self._proc.memory_info().rss
        if scan:
            self._children = self._proc.children(recursive=True)
        for child in self._children:
            with contextlib.suppress(psutil.Error):  # it may exit between listing and reading
                rss += child.memory_info().rss
        return rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssMonitor:
        self.peak, self._samples = 0, 0
        self.sample()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rss-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._samples = 0  # the last sample lists the children anew
        self.sample()

    @property
    def peak_mb(self) -> float:
        return round(self.peak / MB, 1)


def run_measured(argv: list[str]) -> tuple[int, float]:
    """Run a command; return its exit code and peak RSS in MB.

    Run this from a small process (`python -m etl.memory CMD…`): a forked child starts out counting its
    parent's resident pages, so measuring from a large parent overstates the child's peak.
    """
    proc = subprocess.Popen(argv)
    _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024


if __name__ == "__main__":
    code, peak = run_measured(sys.argv[1:])
    print(f"peak_rss_mb={peak:.1f}", file=sys.stderr)
    sys.exit(code)
