"""What the enrichment sources (kev, epss, cwe) share: files that are local, generated, or downloaded, and the
`_rejects/` file of the rows they could not read."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from etl.files import atomic_path


def write_rejects(out: Path, source_file: str, rejects: list[tuple[int, str, str]]) -> None:
    """`rejects` (row, reason, raw text) as out_dir/_rejects/<stem>.parquet; no file (and no stale one) if none."""
    if not rejects:
        out.unlink(missing_ok=True)
        return
    line, reason, raw = zip(*rejects, strict=True)
    table = pa.table(
        {
            "line": pa.array(line, pa.int64()),
            "reason": pa.array(reason, pa.string()),
            "raw": pa.array(raw, pa.string()),
            "_source_file": pa.repeat(pa.scalar(source_file), len(line)),
        }
    )
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
