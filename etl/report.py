"""A picture of a run: peak RSS and time per step, against the budget (PNG, optionally in an HTML page)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl.config import Settings
from etl.errors import EtlError
from etl.extras import require
from etl.files import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# What a step's `rows` counts, where it is not rows: an acquire step counts the raw files it listed, the
# warehouse step the views it built.
COUNTED = {"acquire": "files", "fetch": "files", "warehouse": "views"}

# Steps every run does, whether or not anything changed.
ROUTINE = ("acquire", "warehouse")

PAGE_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #1f2328; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; } p.meta { color: #59636e; margin-top: 0; }
img { max-width: 100%; border: 1px solid #d1d9e0; }
table { border-collapse: collapse; margin-top: 1rem; width: 100%; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid #d1d9e0; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #ffebe9; } tr.over td.rss { color: #cf222e; font-weight: 600; }
"""


@dataclass
class Rendered:
    """The files a report was written to."""

    run_id: int
    png: Path
    html: Path | None = None


def run_reports(settings: Settings) -> list[dict[str, Any]]:
    """Every run report under data/reports/, oldest first."""
    reports = []
    for path in settings.reports_dir.glob("run-*.json"):
        if path.stem.removeprefix("run-").isdigit():
            reports.append(json.loads(path.read_text()))
    return sorted(reports, key=lambda r: r["run_id"])


def choose(settings: Settings, run_id: int | None) -> dict[str, Any]:
    """Run `run_id`'s report, or the last run that did work: converted, loaded or failed something.

    Every run lists its inputs and rebuilds the warehouse's views; a run that did only that did no work.
    """
    reports = run_reports(settings)
    if not reports:
        raise EtlError(f"no run reports under {settings.reports_dir}", hint="Run `etl run` first")
    if run_id is not None:
        for report in reports:
            if report["run_id"] == run_id:
                return report
        known = ", ".join(str(r["run_id"]) for r in reports[-10:])
        raise EtlError(f"no report of run {run_id}", hint=f"Runs with reports: {known}")
    worked = [r for r in reports if any(did_work(s) for s in r["steps"])]
    return (worked or reports)[-1]


def did_work(step: dict[str, Any]) -> bool:
    return step["status"] == "failed" or (step["status"] == "ok" and step["step"] not in ROUTINE)


def label(step: dict[str, Any]) -> str:
    where = Path(step["file"]).name if step["file"] else step["dataset"] or ""
    return f"{step['step']} {where}".strip()


def output(step: dict[str, Any]) -> str:
    """What a step produced, in its own unit: rows for conversions and loads, files, views."""
    return f"{step['rows']:,} {COUNTED.get(step['step'], 'rows')}"


def started(report: dict[str, Any]) -> str:
    """When the run started, in UTC (reports written before etl recorded it have no date)."""
    if not report.get("started_at"):
        return "date not recorded"
    return dt.datetime.fromtimestamp(report["started_at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(settings: Settings, *, run_id: int | None = None, as_html: bool = False) -> Rendered:
    """Write data/reports/run-<id>.png (and run-<id>.html) from that run's report."""
    report = choose(settings, run_id)
    png = settings.reports_dir / f"run-{report['run_id']}.png"
    matplotlib = require("matplotlib")

    matplotlib.use("Agg")  # a file, not a screen (a notebook's inline backend stays its own in plot())
    fig = plot(report)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    if not as_html:
        return Rendered(report["run_id"], png)
    page = png.with_suffix(".html")
    with atomic_path(page) as tmp:
        tmp.write_text(_page(report, shown(report), png), encoding="utf-8")
    return Rendered(report["run_id"], png, page)


def shown(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps worth a bar: those that did work (all of them when every step was skipped)."""
    return [s for s in report["steps"] if s["status"] != "skipped"] or report["steps"]


def plot(report: dict[str, Any]) -> Figure:
    """Peak RSS against the budget and seconds, one bar per step (a notebook shows it inline, writing nothing)."""
    # matplotlib logs "building the font cache" on its first import in a new environment: not the user's concern.
    logging.getLogger("matplotlib").setLevel(logging.ERROR)
    matplotlib = require("matplotlib")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = shown(report)
    labels = [label(s) for s in steps]
    height = max(3.0, 0.35 * len(steps) + 1.5)
    fig, (rss, secs) = plt.subplots(1, 2, figsize=(12, height), sharey=True)
    colors = ["tab:red" if s["status"] == "failed" or s["over_budget"] else "tab:blue" for s in steps]
    rss.barh(labels, [s["peak_rss_mb"] for s in steps], color=colors)
    rss.axvline(report["memory_limit_mb"], color="black", linestyle="--", label="budget")
    rss.set_xlabel("peak RSS (MB)")
    rss.legend(loc="lower right")
    rss.invert_yaxis()
    secs.barh(labels, [s["seconds"] for s in steps], color=colors)
    secs.set_xlabel("seconds")
    fig.suptitle(
        f"run {report['run_id']} ({report['command']}, {started(report)}): {report['status']}, "
        f"{report['rows']:,} rows converted"
    )
    fig.tight_layout()
    return fig


def _page(report: dict[str, Any], steps: list[dict[str, Any]], png: Path) -> str:
    rows = []
    for s in steps:
        css = " ".join(c for c, on in (("failed", s["status"] == "failed"), ("over", s["over_budget"])) if on)
        rows.append(
            f"<tr class='{css}'><td>{html.escape(label(s))}</td><td>{html.escape(s['status'])}</td>"
            f"<td class=n>{output(s)}</td><td class=n>{s['rejected']:,}</td>"
            f"<td class=n>{s['bytes'] / 2**20:,.1f}</td><td class='n rss'>{s['peak_rss_mb']:.0f}</td>"
            f"<td class=n>{s['seconds']:.2f}</td><td>{html.escape(s['error'] or '')}</td></tr>"
        )
    image = base64.b64encode(png.read_bytes()).decode()
    title = f"etl run {report['run_id']}: {report['status']}"
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{PAGE_STYLE}</style><h1>{html.escape(title)}</h1>"
        f"<p class=meta><code>etl {html.escape(report['command'])}</code> · started {started(report)} · "
        f"{report['seconds']:.1f} s · {report['rows']:,} rows converted, {report['rejected']:,} rejected · "
        f"peak RSS {report['peak_rss_mb']:.0f} MB of a {report['memory_limit_mb']:.0f} MB budget · "
        f"{report['failed']} failed, {report['skipped']} skipped</p>"
        f"<img src='data:image/png;base64,{image}' alt='peak RSS and time per step'>"
        "<table><tr><th>step</th><th>status</th><th class=n>output</th><th class=n>rejected</th>"
        "<th class=n>MB written</th><th class=n>peak RSS (MB)</th><th class=n>seconds</th><th>error</th></tr>"
        f"{''.join(rows)}</table></html>"
    )
