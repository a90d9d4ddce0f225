"""The commands outside the configured pipeline as library calls: convert files, fetch, load, extract.

Each measures its steps into a Summary and records it in the state store as a run, as `etl run` does.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from etl.config import Config, Dataset, build_options
from etl.errors import EtlError, SourceError
from etl.kinds import get_source
from etl.memory import MB
from etl.sources import Context
from etl.state import StateStore
from etl.summary import Step, Summary, log_converted, log_findings, measured, record

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def recorded_run(config: Config, command: str) -> Iterator[tuple[Summary, StateStore]]:
    """A Summary recorded in the state store as a run however the work ends (Ctrl-C marks it interrupted)."""
    settings = config.settings
    state = StateStore(settings.state_db)
    summary = Summary(command=command, memory_limit_mb=round(settings.memory_limit / MB, 1))
    try:
        # no sweep of runs marked running: `etl run` may be writing beside this command
        summary.run_id = state.start_run(command, sweep=False)
        try:
            yield summary, state
        except KeyboardInterrupt:
            summary.interrupted = True
            raise
        finally:
            record(state, summary, settings.reports_dir)
    finally:
        state.close()


def convert_files(
    config: Config, kind: str, inputs: list[Path], out_dir: Path, given: dict[str, Any], *, progress=None
) -> Summary:
    """`etl convert KIND INPUT… --out DIR`: each input converted to Parquet under out_dir, measured.

    `given` are the source's options by name; a source with `options_for_file(path, given)` checks them against
    each file (a DATASUS file's name says its system and group).
    """
    source = get_source(kind)
    where = f"etl convert {kind}"

    def convert(path: Path, ctx: Context):
        if not path.exists():
            raise SourceError("file not found", file=str(path), hint="Check the path")
        raw = source.options_for_file(path, given) if hasattr(source, "options_for_file") else given
        dataset = Dataset(name=path.name, kind=kind, options=build_options(source.Options, raw, where))
        return source.convert_file(path, out_dir, dataset, ctx)

    with recorded_run(config, f"convert {kind}") as (summary, _):
        ctx = Context(settings=config.settings, base_dir=Path.cwd(), progress=progress)
        # A source may expand an input (`etl convert nvd DIR`: the complete sync windows a fetch wrote there),
        # naming the parts it skips and why.
        expanded = source.convert_inputs(inputs) if hasattr(source, "convert_inputs") else []
        for path, skipped in expanded or [(p, None) for p in inputs]:
            step = Step("convert", dataset=kind, file=str(path))
            if skipped:
                step.status, step.error = "skipped", skipped
                summary.steps.append(step)
                logger.warning("%s: skipped: %s", path, skipped)
                continue
            result = measured(summary, step, config.settings.memory_limit, lambda p=path: convert(p, ctx))
            if result is not None:
                step.rows, step.rejected, step.bytes = result.rows_out, result.rows_rejected, result.bytes_out
                log_findings(str(path), result)
                log_converted(step, Path(out_dir) / "_rejects")
                for output in result.outputs.values():
                    logger.info("%s -> %s", path, output)
    return summary


def fetch_urls(config: Config, urls: list[str], out: Path) -> Summary:
    """`etl fetch url URL… --out DIR`: resumable downloads."""
    from etl.download import download

    with recorded_run(config, "fetch url") as (summary, _):
        for url in urls:
            step = Step("fetch", dataset="url", file=url)
            path = measured(summary, step, config.settings.memory_limit, lambda u=url: download(u, out))
            if path is not None:
                step.bytes = path.stat().st_size
    return summary


def fetch(config: Config, kind: str, options: Any, out: Path | None = None, *, progress=None) -> Summary:
    """`etl fetch KIND`: acquire a source's raw files into out (default data/raw/KIND), under the writer lock."""
    from etl.lock import WriterLock

    source = get_source(kind)
    lock = WriterLock(config.settings.data_dir)
    try:
        with recorded_run(config, f"fetch {kind}") as (summary, state):
            ctx = Context(settings=config.settings, base_dir=Path.cwd(), progress=progress, state=state)
            dataset = Dataset(name=kind, kind=kind, options=options)
            out = out or config.settings.raw_dir / kind
            step = Step("fetch", dataset=kind, file=str(out))
            files = measured(
                summary, step, config.settings.memory_limit, lambda: source.acquire(dataset, out, ctx)
            )
            if files is not None:
                step.rows, step.bytes = len(files), sum(p.stat().st_size for p in files if p.exists())
    finally:
        lock.release()
    return summary


def dsn_or_env(dsn: str | None) -> str:
    """The DSN given, else $ETL_PG_DSN."""
    from etl.sinks.postgres import DEFAULT_DSN_ENV

    dsn = dsn or os.environ.get(DEFAULT_DSN_ENV)
    if not dsn:
        raise EtlError("no PostgreSQL DSN", hint=f"Pass --dsn or set {DEFAULT_DSN_ENV}")
    return dsn


def load_postgres(
    config: Config,
    dsn: str | None,
    schema: str = "etl",
    tables: list[str] | None = None,
    force: bool = False,
) -> Summary:
    """`etl load postgres`: warehouse tables and views into PostgreSQL, each swapped in atomically; a table
    whose inputs are unchanged since its last load is skipped unless `force`."""
    from etl.sinks.postgres import Publisher

    budget = config.settings.memory_limit
    with (
        recorded_run(config, "load postgres") as (summary, _),
        Publisher(config.settings, dsn_or_env(dsn), schema=schema, force=force) as publisher,
    ):
        for obj in publisher.chosen(tables):
            step = Step("load", dataset="postgres", file=obj.qualified)
            done = measured(summary, step, budget, lambda o=obj: publisher.publish(o))
            if done is not None:  # each table's outcome and its reason are logged by the publisher
                step.rows, step.status = done.rows, "skipped" if done.status == "skipped" else "ok"
    return summary


def extract_postgres(
    config: Config, dsn: str | None, out: Path, *, table: str | None = None, query: str | None = None
) -> Summary:
    """`etl extract postgres`: a table or query streamed to Parquet under out."""
    from etl.sources.postgres import extract

    with recorded_run(config, "extract postgres") as (summary, _):
        step = Step("convert", dataset="postgres", file=table or "query")
        result = measured(
            summary,
            step,
            config.settings.memory_limit,
            lambda: extract(config.settings, dsn_or_env(dsn), out, table=table, query=query),
        )
        if result is not None:
            step.rows, step.bytes = result.rows_out, result.bytes_out
            log_converted(step)
    return summary
