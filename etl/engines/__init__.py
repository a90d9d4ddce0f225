"""Engines: where the work runs. `local` (this process) or `spark` (a cluster), chosen by `[etl] engine`.

An engine does these things for the pipeline:
- ``convert(tasks, ctx) -> Iterator[Outcome]``: convert raw files, one task per file (etl.engines.tasks),
  yielding each outcome as it finishes. A task runs the source's own ``convert_file`` unchanged (`run_task`); the pipeline (the driver)
  alone records outcomes in the state store.
- ``parallel_map(fn, items) -> list``: fn over items for acquire's CPU-bound work (sample files), on worker
  processes where the engine has them.
- ``transform(views, transforms) -> dict[(schema, Path), str]``: compute what the SQL files materialise before
  the DuckDB warehouse is built; returns, per file, the text DuckDB runs instead (empty: DuckDB runs them all).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from etl.config import Config


def get_engine(config: Config):
    """The configured engine; Spark's session starts only when work first needs it."""
    if config.settings.engine == "spark":
        from etl.engines.spark import SparkEngine

        return SparkEngine(config)
    from etl.engines.local import LocalEngine

    return LocalEngine(config.settings)
