"""NVD's pages on disk: gzipped JSON as the CVE API 2.0 returns them, a window's folder complete once marked."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from etl.files import atomic_path

COMPLETE = "_complete"  # marker the fetch writes once every page of a window is on disk
WINDOW_META = "_window.json"  # the fetch's record of a window's query (etl/sources/nvd_api.py)
FULL = "full"  # the window folder of a full sync


def write_page(path: Path, items: list[dict], start_index: int, total: int, *, history: bool = False) -> Path:
    """A page as NVD's CVE API (or, with history, its Change History API) returns it (samples and tests)."""
    page = {
        "resultsPerPage": len(items),
        "startIndex": start_index,
        "totalResults": total,
        "format": "NVD_CVEHistory" if history else "NVD_CVE",
        "version": "2.0",
        "timestamp": "2026-11-01T00:00:00.000",
        "cveChanges" if history else "vulnerabilities": items,
    }
    # json.dumps encodes in C (json.dump in Python, a write at a time): 1.33 -> 0.42 s of CPU for the NVD sample;
    # level 6 rather than gzip's 9: 0.32 s. mtime 0 and no name: the same page is the same bytes whenever written.
    with atomic_path(path, durable=False) as tmp:  # the sample's pages, which its manifest vouches for
        tmp.write_bytes(gzip.compress(json.dumps(page).encode(), compresslevel=6, mtime=0))
    return path
