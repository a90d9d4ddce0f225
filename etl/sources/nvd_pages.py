"""NVD's pages on disk: gzipped JSON as the CVE API 2.0 returns them, a window's folder complete once marked."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from etl.files import atomic_path

COMPLETE = "_complete"  # marker the fetch writes once every page of a window is on disk


def write_page(path: Path, vulnerabilities: list[dict], start_index: int, total: int) -> Path:
    """A page as NVD's API returns it (used by the sample generator and tests)."""
    page = {
        "resultsPerPage": len(vulnerabilities),
        "startIndex": start_index,
        "totalResults": total,
        "format": "NVD_CVE",
        "version": "2.0",
        "timestamp": "2026-11-01T00:00:00.000",
        "vulnerabilities": vulnerabilities,
    }
    with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as f:
        json.dump(page, f)
    return path
