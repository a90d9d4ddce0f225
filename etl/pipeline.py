"""Runs the stages for the configured datasets: acquire -> convert -> warehouse (+ SQL transforms).

The state store decides what is done: a raw file whose size and mtime match its `converted` record is skipped.
Each step is measured (rows, bytes, seconds, peak RSS) and recorded; one failed file fails that file only.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from etl.config import Config, Dataset
from etl.engines import get_engine
from etl.engines.tasks import Outcome, Task, this_process
from etl.errors import EtlError, FetchFailures
from etl.extras import require
from etl.files import checksum, remove_partials
from etl.kinds import get_source
from etl.lock import WriterLock
from etl.memory import MB
from etl.sources import Context, local_files
from etl.state import FileRecord, StateStore
from etl.summary import Step, Summary, finish_step, log_converted, log_findings, measured, record, shown

if TYPE_CHECKING:  # DuckDB is imported only by the steps that use it: a conversion's RSS need not carry it
    from etl.sinks import duckdb as warehouse

logger = logging.getLogger(__name__)

# The transforms that ship with etl (sql/ beside the package), used where the configured sql_dir has none.
BUILTIN_SQL = Path(__file__).resolve().parent.parent / "sql"


# The state store's record of what the warehouse was last built from (a digest, kept with the cursors).
WAREHOUSE_CURSOR = "warehouse"


def warehouse_digest(
    views: list[warehouse.View], transforms: dict[str, list[Path]], labels: dict[str, str]
) -> str:
    """A digest of what a warehouse build reads: each view's Parquet files (name, size, modification time),
    each transform file's bytes, the label policies and the package's reference tables."""
    from etl.reference import DATA_DIR as REFERENCE_DIR

    h = hashlib.sha256()

    def stat(path: Path) -> str:
        st = path.stat()
        return f"{path}\t{st.st_size}\t{st.st_mtime_ns}\n"

    for view in views:
        h.update(f"view {view.schema}.{view.name}\n".encode())
        for f in sorted(view.files):
            h.update(stat(f).encode())
    for schema, files in sorted(transforms.items()):
        h.update(f"transforms {schema} {labels.get(schema, 'text')}\n".encode())
        for f in files:
            h.update(f"{f}\n".encode() + hashlib.sha256(f.read_bytes()).digest())
    for f in sorted(REFERENCE_DIR.glob("*.parquet")):
        h.update(stat(f).encode())
    return h.hexdigest()


class Pipeline:
    def __init__(self, config: Config, *, progress=None, force: bool = False, writes: bool = True):
        """With writes (the default) the data directory's writer lock is held until close()."""
        self.config = config
        self.settings = config.settings
        self.force = force
        self.shared: set[str] = set()  # outputs named by two raw files' records (see shared_outputs)
        self.lock = WriterLock(self.settings.data_dir) if writes else None
        try:
            self.state = StateStore(self.settings.state_db)
        except BaseException:
            if self.lock:
                self.lock.release()
            raise
        base = config.path.resolve().parent if config.path else Path.cwd()
        self.engine = get_engine(config)
        self.ctx = Context(
            settings=self.settings, base_dir=base, progress=progress, state=self.state,
            parallel_map=self.engine.parallel_map,
        )  # fmt: skip

    def close(self) -> None:
        self.engine.close()
        self.state.close()
        if self.lock:
            self.lock.release()

    def datasets(self, only: Iterable[str] | None) -> list[Dataset]:
        names = list(only or self.config.datasets)
        unknown = [n for n in names if n not in self.config.datasets]
        if unknown:
            raise EtlError(
                f"unknown dataset {unknown[0]!r}",
                hint=f"Datasets in the config: {', '.join(self.config.datasets) or 'none'}",
            )
        return [self.config.datasets[n] for n in names]

    def run(self, only: Iterable[str] | None = None, *, command: str = "run") -> Summary:
        """acquire + convert every selected dataset, then rebuild the warehouse and run its transforms."""
        summary = self._start(command)
        with self._recorded(summary):
            for ds in self.datasets(only):
                self.convert_dataset(ds, summary)
            self.engine.end_conversions()  # local workers exit: the warehouse build has the memory
            self.build_warehouse(summary, when_changed=True)
            if "postgres" in self.config.sections.get("publish", {}):
                self.publish_postgres(summary)
        return summary

    def convert(self, datasets: Iterable[Dataset], *, command: str) -> Summary:
        """acquire + convert the given datasets (which need not be in the config), leaving the warehouse alone."""
        summary = self._start(command)
        with self._recorded(summary):
            for ds in datasets:
                self.convert_dataset(ds, summary)
        return summary

    def publish_postgres(self, summary: Summary) -> None:
        """The `[publish.postgres]` section: load the warehouse's tables into PostgreSQL."""
        import os

        from etl.config import build_options

        step = Step("publish", dataset="postgres")

        def publish() -> None:
            require("psycopg")
            from etl.sinks.postgres import PublishOptions, load

            opts = build_options(
                PublishOptions, self.config.sections["publish"]["postgres"], "[publish.postgres]"
            )
            dsn = os.environ.get(opts.dsn_env)
            if not dsn:
                raise EtlError(
                    f"[publish.postgres] needs a DSN in ${opts.dsn_env}", hint="Set it, or remove the section"
                )
            step.rows = sum(
                t.rows for t in load(self.settings, dsn, schema=opts.schema, tables=opts.tables or None)
            )

        measured(summary, step, self.engine.driver_budget, publish)

    def transform(self) -> Summary:
        summary = self._start("transform")
        with self._recorded(summary):
            self.build_warehouse(summary)
        return summary

    @contextlib.contextmanager
    def _recorded(self, summary: Summary) -> Iterator[None]:
        """Record the run and write its report however it ends; Ctrl-C marks it interrupted."""
        try:
            yield
        except KeyboardInterrupt:
            summary.interrupted = True
            raise
        finally:
            self._finish(summary)

    def _start(self, command: str) -> Summary:
        settings = self.settings
        # raw files, Parquet, reports, scratch, marts and a warehouse that were being written
        for leftover in remove_partials(settings.data_dir):
            logger.info("removed %s left by an interrupted run", leftover)
        summary = Summary(command=command, memory_limit_mb=round(self.settings.memory_limit / MB, 1))
        summary.run_id = self.state.start_run(command)
        return summary

    def _finish(self, summary: Summary) -> None:
        summary.engine = self.engine.describe()
        record(self.state, summary, self.settings.reports_dir)

    def raw_files(self, ds: Dataset, summary: Summary) -> list[Path]:
        source = get_source(ds.kind)
        raw_dir = self.settings.raw_dir / ds.name
        step = Step("acquire", dataset=ds.name)

        def acquire() -> list[Path]:
            if hasattr(source, "acquire"):
                return source.acquire(ds, raw_dir, self.ctx)
            return local_files(ds.options.paths, self.ctx)

        def acquire_recording_failures() -> list[Path]:
            try:
                return acquire()
            except FetchFailures as e:  # the files fetched are converted; each failure is recorded
                for file, error in e.failures:
                    summary.steps.append(
                        Step("fetch", dataset=ds.name, file=file, status="failed", error=error)
                    )
                    logger.error("fetch %s: %s", file, error)
                return e.fetched

        files = measured(summary, step, self.engine.driver_budget, acquire_recording_failures) or []
        step.rows = len(files)
        return files

    def convert_dataset(self, ds: Dataset, summary: Summary) -> None:
        """Skip what is done; the engine converts the rest, and each outcome is recorded as it arrives."""
        out_dir = self.settings.parquet_dir / ds.name
        files = [Path(p) for p in self.raw_files(ds, summary)]
        try:
            self.ctx.name_inputs(files, get_source(ds.kind))
        except EtlError as e:
            summary.steps.append(Step("convert", dataset=ds.name, status="failed", error=str(e)))
            logger.error("convert %s: %s", ds.name, e)
            return
        self.shared = self.shared_outputs(ds)
        tasks, before, revised = [], {}, {}
        for path in files:
            key = self.ctx.state_key(path)
            before[key] = self.state.get_file(ds.name, key)
            # asked before converting: the new Parquet takes the old one's name
            revised[key] = self._revised(before[key])
            if self.is_done(ds, key, path):
                summary.steps.append(Step("convert", dataset=ds.name, file=key, status="skipped"))
                logger.info("%s: already converted, skipped", key)
            else:
                tasks.append(Task(ds, path, out_dir, key))
        with self.ctx.bar(len(tasks), "file", ds.name) as bar:
            for outcome in self.engine.convert(tasks, self.ctx):
                for record in outcome.logs:  # what a worker process logged while converting the file
                    logging.getLogger(record.name).handle(record)
                key = outcome.task.key
                self.record_outcome(outcome, before[key], revised[key], summary)
                bar.update(1)

    def shared_outputs(self, ds: Dataset) -> set[str]:
        """Parquet files that the records of two raw files both name: written by an etl that gave inputs with one
        stem one output, they hold one file's rows only, so both files are converted again (to distinct names)."""
        seen: dict[str, str] = {}
        shared = set()
        for rec in self.state.files(ds.name):
            for p in rec.outputs.values():
                if seen.setdefault(str(p), rec.path) != rec.path:
                    shared.add(str(p))
        return shared

    def _drop_stale(self, ds: Dataset, key: str, before: FileRecord | None, outputs: dict[str, Path]) -> None:
        """Delete the Parquet an earlier conversion of this raw file wrote under another name, once no other
        record names it (a view or scan over the folder must not find its rows twice)."""
        if before is None:
            return
        new = {str(p) for p in outputs.values()}
        claimed = {str(p) for r in self.state.files(ds.name) if r.path != key for p in r.outputs.values()}
        for old in before.outputs.values():
            if str(old) not in new and str(old) not in claimed:
                Path(old).unlink(missing_ok=True)

    def is_done(self, ds: Dataset, key: str, path: Path) -> bool:
        """Converted before, every output present, and the raw file unchanged (or gone, as with keep_raw = false).

        Same size and mtime is unchanged; same size with another mtime (a file downloaded again) is unchanged
        when its checksum matches.
        """
        rec = self.state.get_file(ds.name, key)
        if self.force or rec is None or rec.stage not in ("converted", "loaded"):
            return False
        if not all(Path(p).exists() for p in rec.outputs.values()):
            return False
        # A source that now writes more tables than it did (a newer etl: NVD's `affected`, `ssvc`, …) converts
        # the file again, so every table the SQL expects exists.
        if not set(getattr(get_source(ds.kind), "TABLES", ())) <= set(rec.outputs):
            return False
        if any(str(p) in self.shared for p in rec.outputs.values()):
            return False
        if not path.exists():
            return True
        st = path.stat()
        if rec.size != st.st_size:
            return False
        if rec.mtime_ns == st.st_mtime_ns:
            return True
        if rec.checksum and rec.checksum == checksum(path):
            self.state.put_file(ds.name, key, rec.stage, mtime_ns=st.st_mtime_ns)
            return True
        return False

    def _revised(self, before: FileRecord | None) -> bool:
        """Converted before, its Parquet still there, and not redone by --force: the raw file itself changed."""
        return (
            not self.force
            and before is not None
            and before.rows_out is not None
            and bool(before.outputs)
            and all(Path(p).exists() for p in before.outputs.values())
        )

    def record_outcome(
        self, outcome: Outcome, before: FileRecord | None, revised: bool, summary: Summary
    ) -> None:
        """Record one conversion in the state store (the driver alone writes it); `before`: the file's earlier
        record, `revised`: the raw file changed since (its row counts before and now are reported)."""
        ds, key, result = outcome.task.dataset, outcome.task.key, outcome.result
        worker = (
            outcome.worker if outcome.worker != this_process() else None
        )  # a Spark executor's, a worker process
        step = Step("convert", dataset=ds.name, file=key, seconds=outcome.seconds, worker=worker)
        step.peak_rss_mb = outcome.peak_rss_mb
        if result is not None and result.rows_in != result.rows_out + result.rows_rejected:
            outcome.error = (
                f"row counts do not add up: {result.rows_in} read, {result.rows_out} written, "
                f"{result.rows_rejected} rejected"
            )
        if outcome.error is not None:
            step.status, step.error = "failed", outcome.error
            finish_step(summary, step, outcome.memory_limit)
            self.state.put_file(ds.name, key, "failed", error=step.error)
            return
        step.rows, step.rejected, step.bytes = result.rows_out, result.rows_rejected, result.bytes_out
        finish_step(summary, step, outcome.memory_limit)
        log_findings(key, result)
        if revised:
            step.rows_before = before.rows_out
            logger.info("%s: revised: %d rows before, %d now", key, before.rows_out, step.rows)
        self.state.put_file(
            ds.name,
            key,
            "converted",
            size=outcome.size,
            mtime_ns=outcome.mtime_ns,
            checksum=outcome.checksum,
            rows_in=result.rows_in,
            rows_out=result.rows_out,
            rows_rejected=result.rows_rejected,
            outputs=result.outputs,
            error=None,
        )
        self._drop_stale(ds, key, before, result.outputs)
        log_converted(step, outcome.task.out_dir / "_rejects")

    def views(self) -> list[warehouse.View]:
        """A view per dataset table over the Parquet files the state store lists as converted."""
        from etl.sinks import duckdb as warehouse

        views = []
        for ds in self.config.datasets.values():
            tables: dict[str, list[Path]] = {}
            for rec in self.state.files(ds.name):
                if rec.stage in ("converted", "loaded"):
                    for table, p in rec.outputs.items():
                        if Path(p).exists():
                            tables.setdefault(table, []).append(Path(p))
            views += [warehouse.View(ds.name, table, files) for table, files in sorted(tables.items())]
        return views

    def transforms(self, views: list[warehouse.View]) -> dict[str, list[Path]]:
        """SQL files per dataset with data: sql/<kind>/*.sql (or the kind's sql_folders), then sql/<dataset>/."""
        with_data = {v.schema for v in views}
        return {
            ds.name: self.transform_files(ds) for ds in self.config.datasets.values() if ds.name in with_data
        }

    def transform_files(self, ds: Dataset) -> list[Path]:
        """A dataset's transform files in order; each folder from the configured sql_dir, else etl's own SQL."""
        from etl.sinks import duckdb as warehouse

        roots = [self.settings.sql_dir] + ([BUILTIN_SQL] if self.settings.sql_dir != BUILTIN_SQL else [])
        source = get_source(ds.kind)
        names = source.sql_folders(ds) if hasattr(source, "sql_folders") else [ds.kind]
        names += [ds.name] if ds.name != ds.kind else []
        folders = [next((r / n for r in roots if (r / n).is_dir()), roots[0] / n) for n in names]
        return [f for folder in folders for f in warehouse.transform_files(folder)]

    def build_warehouse(self, summary: Summary, *, when_changed: bool = False) -> None:
        """Rebuild the warehouse; with `when_changed` (etl run), only when what it is built from changed since
        the last build: the Parquet files, the transform files, the label policies (--force rebuilds)."""
        step = Step("warehouse")
        views = self.views()
        transforms = self.transforms(views)
        labels = {ds.name: ds.labels for ds in self.config.datasets.values()}
        digest = (
            f"{warehouse_digest(views, transforms, labels)}:{self.engine.name}"  # another engine rebuilds
        )
        if (
            when_changed
            and not self.force
            and self.settings.warehouse.exists()
            and self.state.get_cursor(WAREHOUSE_CURSOR) == digest
        ):
            step.status = "skipped"
            summary.steps.append(step)
            logger.info("warehouse: its inputs are unchanged, kept as built (`etl transform` rebuilds it)")
            return
        sql_text: dict | None = {}
        if (
            self.engine.name != "local"
        ):  # its marts, measured apart: its driver's JVM is a child of this process
            spark_step = Step("transform", dataset=self.engine.name)
            sql_text = measured(
                summary,
                spark_step,
                self.engine.driver_budget,
                lambda: self.engine.transform(views, transforms),
            )
            if sql_text is None:
                return

        def build() -> bool:
            from etl.transform import build_warehouse

            build_warehouse(self.settings, views, transforms, labels, sql_text)
            step.rows = len(views)
            self.state.set_cursor(WAREHOUSE_CURSOR, digest)
            return True

        if measured(summary, step, self.engine.driver_budget, build):
            logger.info(
                "warehouse %s: %d views, %d transform files, %.1f s, peak RSS %.0f MB",
                shown(self.settings.warehouse),
                step.rows,
                sum(len(files) for files in transforms.values()),
                step.seconds,
                step.peak_rss_mb,
            )
