"""A picture of the last run: peak RSS and time per step, against the budget (PNG, optionally in an HTML page)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from etl.config import Settings
from etl.errors import EtlError
from etl.files import atomic_path


def render(settings: Settings, *, as_html: bool = False) -> Path:
    """Write data/reports/last-run.png (and last-run.html) from data/reports/last-run.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source = settings.reports_dir / "last-run.json"
    if not source.exists():
        raise EtlError(f"no run report at {source}", hint="Run `etl run` first")
    report = json.loads(source.read_text())
    steps = [s for s in report["steps"] if s["status"] != "skipped"] or report["steps"]
    labels = [
        f"{s['step']} {Path(s['file']).name if s['file'] else s['dataset'] or ''}".strip() for s in steps
    ]
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
    fig.suptitle(f"run {report['run_id']} ({report['command']}): {report['status']}, {report['rows']:,} rows")
    fig.tight_layout()
    png = settings.reports_dir / "last-run.png"
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    if not as_html:
        return png
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{s['status']}</td><td>{s['rows']:,}</td>"
        f"<td>{s['peak_rss_mb']:.0f}</td><td>{s['seconds']:.2f}</td></tr>"
        for label, s in zip(labels, steps, strict=True)
    )
    image = base64.b64encode(png.read_bytes()).decode()
    page = settings.reports_dir / "last-run.html"
    with atomic_path(page) as tmp:
        tmp.write_text(
            f"<!doctype html><meta charset=utf-8><title>etl run {report['run_id']}</title>"
            f"<h1>etl run {report['run_id']}: {report['status']}</h1>"
            f"<img src='data:image/png;base64,{image}' alt='peak RSS and time per step'>"
            "<table><tr><th>step</th><th>status</th><th>rows</th><th>peak RSS (MB)</th><th>s</th></tr>"
            f"{rows}</table>",
            encoding="utf-8",
        )
    return page
