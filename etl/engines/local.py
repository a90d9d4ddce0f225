"""The local engine: conversions on this machine, in this process or on worker processes; DuckDB transforms."""

from __future__ import annotations

import dataclasses
import functools
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from etl.config import Settings
from etl.engines.tasks import Outcome, Task, run_shipped, run_task
from etl.errors import EtlError
from etl.memory import MB, MIN_MEMORY_LIMIT
from etl.sources import Context, map_here

DRIVER_CHECK_SECONDS = 0.5
# An orphaned worker's cleanup time: then it exits, whatever it is doing.
ORPHAN_EXIT_SECONDS = 5.0
# What a task of workers that stopped when one died (killed, out of memory?) reports: its work was not done.
WORKER_DIED = "a worker process died (killed?) and the work it and the other workers held stopped; run again"


def workers(settings: Settings, tasks: int) -> int:
    """Conversions at once: one per thread etl may use, while the budget holds a share of at least
    MIN_MEMORY_LIMIT for each and one for this process (at 1 GB: 2; at 512 MB: 1, in this process)."""
    return max(1, min(settings.threads, tasks, settings.memory_limit // MIN_MEMORY_LIMIT - 1))


class LocalEngine:
    """Several files convert on worker processes at once, each within its share of the budget (and one DuckDB
    thread); one file, or a budget too small to share, converts in this process with all of it."""

    name = "local"

    def __init__(self, settings: Settings):
        self.settings = settings
        self._pool: ProcessPoolExecutor | None = None
        self._pool_size = 0
        self._shared: tuple[int, int] | None = None  # the most workers a conversion had, and their share

    def driver_budget(self) -> int:
        return self.settings.memory_limit

    def convert(self, tasks: list[Task], ctx: Context) -> Iterator[Outcome]:
        n = workers(ctx.settings, len(tasks))
        if n == 1:
            for task in tasks:
                yield run_task(task, ctx)
            return
        share = dataclasses.replace(
            ctx.settings, memory_limit=ctx.settings.memory_limit // (n + 1), threads=1
        )
        self._shared = max(self._shared or (0, 0), (n, share.memory_limit))
        pool = self._workers(n)
        pending: dict[Future, Task] = {
            pool.submit(_in_task, run_shipped, t, share, ctx.base_dir, ctx.stems): t for t in tasks
        }
        try:
            for future in as_completed(pending):
                task = pending.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    # A worker died (killed for memory, …): the files it and the others held fail, not the run;
                    # the next conversion starts new workers.
                    self._pool = None
                    outcome = Outcome(task, error=WORKER_DIED, memory_limit=share.memory_limit)
                yield outcome
        finally:
            for future in pending:  # interrupted (Ctrl-C, an error recording an outcome): start nothing more
                future.cancel()

    def parallel_map(self, fn: Callable, items: list) -> list:
        """fn over items on the worker processes (as many as a conversion of that many files would have)."""
        n = workers(self.settings, len(items))
        if n == 1:
            return map_here(fn, items)
        try:
            return list(self._workers(n).map(functools.partial(_in_task, fn), items))
        except BrokenProcessPool:  # as in convert: the step fails, and the next one starts new workers
            self._pool = None
            raise EtlError(WORKER_DIED) from None

    def _workers(self, n: int) -> ProcessPoolExecutor:
        """The worker processes, started once per run (spawned: this process has threads running) and kept for
        the next dataset."""
        if self._pool is None or self._pool_size < n:
            self.close()
            self._pool = ProcessPoolExecutor(
                n,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(logging.getLogger().level, os.getpid()),
            )
            self._pool_size = n
        return self._pool

    def transform(self, views, transforms) -> dict:
        return {}

    def describe(self) -> dict:
        if self._shared is None:
            return {"name": self.name}
        n, share = self._shared
        return {"name": self.name, "workers": n, "task_memory_limit_mb": share // MB}

    def end_conversions(self) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# Held while this worker process runs a task, its cleanup after an interrupt included; _ORPHANED set once the
# driver is gone: a task sent before then does not start.
_TASK_LOCK = threading.Lock()
_ORPHANED = threading.Event()


def _in_task(fn: Callable, *args):
    """fn(*args) on a worker, holding the task lock."""
    with _TASK_LOCK:
        if _ORPHANED.is_set():
            raise KeyboardInterrupt
        return fn(*args)


def _start_worker(level: int, driver: int) -> None:
    """A worker logs what the driver would, and exits when the driver is gone (killed: nothing tells an idle
    worker, which would otherwise wait for work forever). It interrupts itself first, so a conversion under way
    stops as at Ctrl-C: its decompressor killed, its partial files removed."""
    logging.getLogger().setLevel(level)
    # A driver started with SIGINT ignored (in the background, under nohup, by a CI job) passes that on to its
    # workers, and the interrupt below would do nothing: the worker would be cut off 5 s later, its partial files
    # left behind.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(DRIVER_CHECK_SECONDS)
        _ORPHANED.set()
        os.kill(os.getpid(), signal.SIGINT)
        # A worker waiting for work exits at the KeyboardInterrupt. One that was running a task makes it that
        # task's outcome, and would wait for work again (tasks sent before the driver went no longer start): it
        # goes once no task runs (the interrupted one cleaned up), or when the time to clean up is over, whatever
        # it is doing.
        time.sleep(DRIVER_CHECK_SECONDS)  # an idle worker's own exit first
        _TASK_LOCK.acquire(timeout=ORPHAN_EXIT_SECONDS - DRIVER_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="driver-watch", daemon=True).start()
