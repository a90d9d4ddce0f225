"""A conversion task: one raw file, run by an engine where it decides (this process, a Spark executor)."""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from etl.errors import EtlError
from etl.files import checksum
from etl.kinds import get_source
from etl.memory import RssMonitor
from etl.sources import Context, ConvertResult

if TYPE_CHECKING:
    from etl.config import Dataset, Settings

logger = logging.getLogger(__name__)


def this_process() -> str:
    """host:pid, how an outcome names the process that converted its file."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Task:
    """Convert one raw file: what a task needs, picklable (it travels to a Spark executor)."""

    dataset: Dataset
    path: Path
    out_dir: Path
    key: str  # the state store's name of the raw file


@dataclass
class Outcome:
    """What one task did: the conversion's result, or its error; the raw file's identity; how it ran."""

    task: Task
    result: ConvertResult | None = None
    error: str | None = None
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    memory_limit: int = 0  # the task's budget, bytes
    size: int | None = None
    mtime_ns: int | None = None
    checksum: str | None = None
    worker: str = field(default_factory=this_process)
    logs: list[logging.LogRecord] = field(
        default_factory=list
    )  # what a worker process logged, for the driver


def run_task(task: Task, ctx: Context) -> Outcome:
    """Run one conversion under the RSS monitor; any error becomes the outcome's error (one file fails alone)."""
    outcome = Outcome(task, memory_limit=ctx.settings.memory_limit)
    path = Path(task.path)
    start = time.perf_counter()
    with RssMonitor() as rss:
        try:
            st = path.stat() if path.exists() else None
            outcome.result = get_source(task.dataset.kind).convert_file(path, task.out_dir, task.dataset, ctx)
            if st is not None:
                outcome.size, outcome.mtime_ns = st.st_size, st.st_mtime_ns
            outcome.checksum = checksum(path) if path.is_file() else None
        except EtlError as e:
            outcome.error = str(e)
        except Exception as e:  # a bug must not stop the other files; keep its traceback in the log
            logger.debug("unexpected error", exc_info=True)
            outcome.error = f"{type(e).__name__}: {e}"
    outcome.seconds = round(time.perf_counter() - start, 3)
    outcome.peak_rss_mb = rss.peak_mb
    return outcome


def run_shipped(task: Task, settings: Settings, base_dir: Path, stems: dict[Path, str]) -> Outcome:
    """run_task in another process (a local worker, a Spark executor): its context rebuilt from what travelled,
    and what it logs kept in the outcome (messages formatted here), which the driver logs as it records it."""
    records: list[logging.LogRecord] = []
    keep = logging.Handler()
    keep.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(keep)
    try:
        outcome = run_task(task, Context(settings=settings, base_dir=base_dir, stems=stems))
    finally:
        root.removeHandler(keep)
    for r in records:
        r.msg, r.args, r.exc_info, r.exc_text = r.getMessage(), None, None, None
    outcome.logs = records
    return outcome
