"""The local engine: today's behaviour, in this process."""

from __future__ import annotations

from collections.abc import Iterator

from etl.config import Settings
from etl.engines.tasks import Outcome, Task, run_task
from etl.sources import Context


class LocalEngine:
    """Today's behaviour: conversions one after the other in this process; DuckDB runs every transform."""

    name = "local"

    def __init__(self, settings: Settings):
        self.settings = settings

    def driver_budget(self) -> int:
        return self.settings.memory_limit

    def convert(self, tasks: list[Task], ctx: Context) -> Iterator[Outcome]:
        for task in tasks:
            yield run_task(task, ctx)

    def transform(self, views, transforms) -> dict:
        return {}

    def describe(self) -> dict:
        return {"name": self.name}

    def close(self) -> None:
        pass
