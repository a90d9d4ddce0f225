"""What a command did: its measured steps, the run's summary, and the one line format both are logged in.

Sizes are MB of 2**20 bytes everywhere (as `--memory-limit 512MB` is read), seconds as `s`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from etl.errors import EtlError
from etl.files import atomic_path
from etl.memory import MB, RssMonitor
from etl.state import StateStore

logger = logging.getLogger(__name__)


@dataclass
class Step:
    """One measured unit of work: acquiring a dataset, converting a file, building the warehouse."""

    step: str
    dataset: str | None = None
    file: str | None = None
    status: str = "ok"  # ok | skipped | failed
    rows: int = 0
    rejected: int = 0
    bytes: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    over_budget: bool = False
    error: str | None = None
    rows_before: int | None = None  # a revised file: the rows its earlier version was converted to
    worker: str | None = None  # host:pid of the process that converted the file (a Spark executor's worker)


@dataclass
class Summary:
    command: str
    steps: list[Step] = field(default_factory=list)
    memory_limit_mb: float = 0.0
    run_id: int | None = None
    interrupted: bool = False
    started_at: float = field(default_factory=time.time)
    engine: dict[str, Any] = field(default_factory=lambda: {"name": "local"})  # where the work ran

    @property
    def failed(self) -> list[Step]:
        return [s for s in self.steps if s.status == "failed"]

    @property
    def revised(self) -> list[Step]:
        """Files converted again because their raw file changed (a DATASUS file published anew)."""
        return [s for s in self.steps if s.status == "ok" and s.rows_before is not None]

    def to_dict(self) -> dict[str, Any]:
        done = [s for s in self.steps if s.status == "ok"]
        return {
            "command": self.command,
            "engine": self.engine,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "status": "interrupted" if self.interrupted else "failed" if self.failed else "ok",
            "rows": sum(s.rows for s in done if s.step in ("convert", "load")),
            "rejected": sum(s.rejected for s in done if s.step == "convert"),
            "bytes": sum(s.bytes for s in done if s.step == "convert"),
            "seconds": round(sum(s.seconds for s in self.steps), 3),
            "peak_rss_mb": max((s.peak_rss_mb for s in self.steps), default=0.0),
            "memory_limit_mb": self.memory_limit_mb,
            "failed": len(self.failed),
            "skipped": sum(s.status == "skipped" for s in self.steps),
            "revised": [
                {"file": s.file, "rows_before": s.rows_before, "rows_after": s.rows} for s in self.revised
            ],
            "steps": [asdict(s) for s in self.steps],
        }


def shown(path: Path) -> str:
    """A path as a log line shows it: relative to the current folder when under it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def figures(
    rows: int, rejected: int, nbytes: int, seconds: float, peak_rss_mb: float, rejects: Path | None = None
) -> str:
    """`1,234 rows, 5 rejected (to DIR), 1.2 MB, 0.8 s, peak RSS 180 MB`: the figures of a step or a run."""
    where = f" (to {shown(rejects)})" if rejected and rejects else ""
    return (
        f"{rows:,} rows, {rejected:,} rejected{where}, {nbytes / MB:,.1f} MB, {seconds:,.1f} s, "
        f"peak RSS {peak_rss_mb:,.0f} MB"
    )


def log_converted(step: Step, rejects: Path | None = None) -> None:
    """The INFO line of one converted file."""
    logger.info(
        "%s: %s%s",
        step.file,
        figures(step.rows, step.rejected, step.bytes, step.seconds, step.peak_rss_mb, rejects),
        f" ({step.worker})" if step.worker else "",
    )


def log_findings(name: str, result: Any) -> None:
    """Warn of what a conversion kept but could not fully read: untyped values, and the source's warnings."""
    for column, n in result.nulled.items():
        logger.warning("%s: %s values of %s could not be typed and are null", name, f"{n:,}", column)
    for warning in result.warnings:
        logger.warning("%s: %s", name, warning)


def measured(summary: Summary, step: Step, budget: int | Callable[[], int], work: Callable[[], Any]) -> Any:
    """Run work under the RSS monitor; record the step (failed with the error's text if it raises EtlError).

    `budget` may be a function, asked when the work is done (an engine's budget grows once its cluster runs)."""
    start = time.perf_counter()
    try:
        with RssMonitor() as rss:
            try:
                return work()
            except EtlError as e:
                step.status, step.error = "failed", str(e)
            except Exception as e:  # a bug must not stop the other files; keep its traceback in the log
                logger.debug("unexpected error", exc_info=True)
                step.status, step.error = "failed", f"{type(e).__name__}: {e}"
            return None
    finally:
        step.seconds = round(time.perf_counter() - start, 3)
        step.peak_rss_mb = rss.peak_mb
        finish_step(summary, step, budget() if callable(budget) else budget)


def finish_step(summary: Summary, step: Step, budget: int) -> None:
    """Add a measured step to the summary; log its failure, and a peak RSS over the budget."""
    step.over_budget = step.peak_rss_mb * MB > budget
    summary.steps.append(step)
    if step.status == "failed":
        logger.error("%s", step.error if _names_its_file(step) else f"{label(step)}: {step.error}")
    if step.over_budget:
        logger.warning(
            "%s: peak RSS %.0f MB exceeded the %.0f MB budget", label(step), step.peak_rss_mb, budget / MB
        )


def label(step: Step) -> str:
    """`convert raw/sih_rd/RDSP2301.dbc`, `acquire sih_rd`, `warehouse`: what a step worked on."""
    return " ".join(p for p in (step.step, step.file or step.dataset) if p)


def _names_its_file(step: Step) -> bool:
    """Whether the error's text starts with the step's file (an error raised with file=…), so as not to repeat it."""
    head = re.split(r"[: ]", step.error or "", maxsplit=1)[0]
    return bool(step.file) and Path(step.file).name == Path(head).name


def record(state: StateStore, summary: Summary, reports_dir: Path) -> None:
    """Record the run's steps and summary in the state store, and its report as reports_dir/run-N.json."""
    report = summary.to_dict()
    for s in summary.steps:
        # rows_before and worker live in the report only: the steps table predates them
        fields = {k: v for k, v in asdict(s).items() if k not in ("step", "status", "rows_before", "worker")}
        state.add_step(summary.run_id, s.step, s.status, **fields)
    state.finish_run(summary.run_id, report["status"], {k: v for k, v in report.items() if k != "steps"})
    for name in (f"run-{summary.run_id}.json", "last-run.json"):
        with atomic_path(reports_dir / name) as tmp:
            tmp.write_text(json.dumps(report, indent=2, default=str))


def summary_lines(summary: Summary) -> list[str]:
    """The lines that end a command: its totals, and each revised file."""
    data = summary.to_dict()
    figs = figures(data["rows"], data["rejected"], data["bytes"], data["seconds"], data["peak_rss_mb"])
    lines = [
        f"{data['command']}: {figs} (budget {data['memory_limit_mb']:,.0f} MB), "
        f"{data['skipped']:,} skipped, {data['failed']:,} failed"
    ]
    lines += [f"revised: {s.file}: {s.rows_before:,} rows before, {s.rows:,} now" for s in summary.revised]
    if summary.engine["name"] == "spark":
        from etl.engines.spark import summary_line

        lines.append(summary_line(data))
    return lines
