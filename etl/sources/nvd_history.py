"""NVD's CVE Change History API 2.0 (`/rest/json/cvehistory/2.0`) -> the `cve_changes` table.

Synced like the CVE API (etl/sources/nvd_api.py, same rate limit and key): a full sync into `full/`, then
changeStartDate/changeEndDate windows of at most 120 days from the cursor, each folder complete before the cursor
moves. A page holds up to 5,000 changes; each change (cveId, eventName, cveChangeId, sourceIdentifier, created) has
a list of details (action Added/Changed/Removed, type, oldValue, newValue). `cve_changes` has one row per detail
(a change without details, one row with null detail columns); `_source_row` is the change's position in its page.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from etl.arrays import int64_array, int_scalar
from etl.config import Dataset
from etl.errors import ConversionError, FetchFailures
from etl.memory import row_group_bytes
from etl.sinks.parquet import ParquetSink, lineage_columns
from etl.sources import Context, ConvertResult, local_files
from etl.sources.nvd import _explode, _fields, _windows, convert_inputs, pages_of, unreadable

__all__ = ["Options", "acquire", "convert_file", "convert_inputs", "read_batches", "read_page"]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://services.nvd.nist.gov/rest/json/cvehistory/2.0"
TABLE = "cve_changes"
ZERO = int_scalar(0, pa.int32())  # list lengths are int32
_TEXT = pa.string()
_CHANGE = pa.schema(
    [
        ("cveId", _TEXT),
        ("eventName", _TEXT),
        ("cveChangeId", _TEXT),
        ("sourceIdentifier", _TEXT),
        ("created", pa.timestamp("us", "UTC")),
        ("details", pa.list_(pa.struct([(k, _TEXT) for k in ("action", "type", "oldValue", "newValue")]))),
    ]
)


@dataclass
class Options:
    paths: list[str] = field(default_factory=list, metadata={"help": "local window folders or pages"})
    base_url: str = field(default=DEFAULT_BASE_URL, metadata={"help": "Change History API 2.0 endpoint"})
    since: str | None = field(
        default=None, metadata={"help": "incremental start, ISO-8601 (default: the cursor)"}
    )
    full: bool = field(default=False, metadata={"help": "a full sync even when a cursor exists"})
    results_per_page: int = field(default=5000, metadata={"help": "changes per page (NVD's maximum is 5000)"})
    max_requests: int | None = field(
        default=None, metadata={"help": "requests per rolling window (5, 50 with a key)"}
    )
    window_seconds: float = field(default=30.0, metadata={"help": "the rate limit's rolling window"})
    sample: bool = field(default=False, metadata={"help": "generate a sample window instead of fetching"})


def acquire(dataset: Dataset, raw_dir: Path, ctx: Context) -> list[Path]:
    """Complete sync windows (fetched, or the sample's), or the dataset's local paths."""
    opts: Options = dataset.options
    if opts.paths:
        return local_files(opts.paths, ctx)
    if opts.sample:
        from etl.samples.nvd import write_history_sample

        return [write_history_sample(raw_dir / "sample")]
    from etl.sources.nvd_api import HISTORY, sync

    try:
        pages = sync(
            raw_dir,
            state=ctx.state,
            cursor_name=f"nvd_history:{dataset.name}",
            base_url=opts.base_url,
            api_key=os.environ.get("NVD_API_KEY") or None,
            since=opts.since,
            full=opts.full,
            results_per_page=opts.results_per_page,
            max_requests=opts.max_requests,
            window_seconds=opts.window_seconds,
            endpoint=HISTORY,
        )
    except FetchFailures as e:
        raise FetchFailures(_windows(e.fetched), e.failures) from None
    return _windows(pages)


class _Item(msgspec.Struct):
    change: msgspec.Raw


class _Page(msgspec.Struct):
    cveChanges: list[_Item]


_PAGE = msgspec.json.Decoder(_Page)


def read_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The `cve_changes` rows of a window folder or a page, a batch per page."""
    prefix = f"{path.name}/" if path.is_dir() else ""
    for page in pages_of(path):
        batch = read_page(page, prefix + page.name)
        if batch is not None:
            yield batch


def read_page(page: Path, source_file: str | None = None) -> pa.RecordBatch | None:
    """One page's changes as a batch of `cve_changes` rows (a page is at most 5,000 changes); None if empty."""
    opener = gzip.open if page.suffix == ".gz" else open
    try:
        with opener(page, "rb") as f:
            items = _PAGE.decode(f.read()).cveChanges
    except msgspec.DecodeError as e:
        raise ConversionError(f"{page.name}: not a valid Change History page: {e}", file=str(page)) from None
    except (OSError, EOFError) as e:
        raise ConversionError(unreadable(page, e), file=str(page)) from None
    text = pa.py_buffer(b"\n".join(bytes(i.change) for i in items))
    try:
        parsed = (
            pj.read_json(
                text,
                read_options=pj.ReadOptions(use_threads=False, block_size=text.size + 1),
                parse_options=pj.ParseOptions(
                    explicit_schema=_CHANGE, newlines_in_values=True, unexpected_field_behavior="ignore"
                ),
            ).combine_chunks()
            if items
            else None
        )
    except pa.ArrowInvalid as e:
        raise ConversionError(f"{page.name}: {e}", file=str(page)) from None
    n = len(items)
    if not n:
        return None
    change = {name: parsed.column(name).chunk(0) for name in parsed.column_names}
    # A change without details keeps one row: an empty list becomes a list of one null detail.
    details = pc.if_else(
        pc.greater(pc.fill_null(pc.list_value_length(change["details"]), ZERO), ZERO),
        change["details"],
        pa.ListArray.from_arrays(
            pa.Array.from_buffers(pa.int32(), n + 1, [None, pa.py_buffer(np.arange(n + 1, dtype=np.int32))]),
            pa.nulls(n, change["details"].type.value_type),
        ),
    )
    items_, parents, position = _explode(details)
    detail = _fields(items_)
    take = int64_array(parents)
    has = pc.invert(pc.is_null(items_))
    rows = np.arange(1, n + 1)[parents]
    columns = {
        "cve_id": change["cveId"].take(take),
        "event_name": change["eventName"].take(take),
        "cve_change_id": change["cveChangeId"].take(take),
        "source_identifier": change["sourceIdentifier"].take(take),
        "created": change["created"].take(take),
        "detail_index": pc.if_else(has, int64_array(position), pa.nulls(1, pa.int64())[0]),
        "action": detail["action"],
        "type": detail["type"],
        "old_value": detail["oldValue"],
        "new_value": detail["newValue"],
    }
    source, source_row = lineage_columns(source_file or page.name, rows)
    return pa.RecordBatch.from_pydict({**columns, "_source_file": source, "_source_row": source_row})


def convert_file(path: Path, out_dir: Path, dataset: Dataset, ctx: Context) -> ConvertResult:
    """A window folder or a page into `out_dir/cve_changes/<name>.parquet`."""
    path = Path(path)
    stem = path.name.removesuffix(".gz").removesuffix(".json")
    with ParquetSink(
        Path(out_dir) / TABLE / f"{stem}.parquet", row_group_bytes=row_group_bytes(ctx.settings.memory_limit)
    ) as sink:
        for batch in read_batches(path):
            sink.write(batch)
    logger.info("%s: %d change details", path.name, sink.rows)
    return ConvertResult(
        rows_in=sink.rows,
        rows_out=sink.rows,
        rows_rejected=0,
        outputs={TABLE: sink.path} if sink.rows else {},
        bytes_out=sink.bytes,
    )
