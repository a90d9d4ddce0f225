"""FIRST's EPSS daily scores (`epss_scores-YYYY-MM-DD.csv.gz`) -> one Parquet file per score date.

A file starts with `#model_version:v2025.03.14,score_date:2025-03-16T00:00:00+0000`, then `cve,epss,percentile`
and about 300k rows. The model version is kept on every row: scores of different models are not comparable.
Files before 2022 lack the comment line (the date then comes from the file's name) and early ones the percentile.
Read by pyarrow's streaming CSV reader in blocks sized from the budget; a row with the wrong number of fields goes
to `_rejects/`, a score that is not a number becomes null and is counted.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from etl.arrays import NULL_TEXT, date_scalar, text_scalar
from etl.config import Dataset
from etl.errors import ConfigError, ConversionError, FetchError, FetchFailures
from etl.memory import row_group_bytes, working_bytes
from etl.sinks.parquet import LINEAGE_FIELDS, ParquetSink, lineage_columns
from etl.sources import Context, ConvertResult, local_files
from etl.sources.enrichment import write_rejects

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://epss.empiricalsecurity.com"
FILE = re.compile(r"epss_scores-(\d{4}-\d\d-\d\d)\.csv(\.gz)?$")
HEADER = re.compile(rb"^#model_version:([^,]*),score_date:(\d{4}-\d\d-\d\d)")
NUMBER = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"

SCHEMA = pa.schema(
    [
        ("cve_id", pa.string()),
        ("epss", pa.float64()),
        ("percentile", pa.float64()),
        ("score_date", pa.date32()),
        ("model_version", pa.string()),
        *LINEAGE_FIELDS,
    ]
)


@dataclass
class Options:
    paths: list[str] = field(default_factory=list, metadata={"help": "local score files or globs"})
    base_url: str = field(default=DEFAULT_BASE_URL, metadata={"help": "where epss_scores-DATE.csv.gz are"})
    start_date: str | None = field(
        default=None, metadata={"help": "first score date to backfill, YYYY-MM-DD"}
    )
    end_date: str | None = field(default=None, metadata={"help": "last score date (default: yesterday, UTC)"})
    sample: bool = field(default=False, metadata={"help": "generate sample score files instead of fetching"})
    sample_days: int = field(default=8, metadata={"help": "days of the generated sample"})

    def __post_init__(self) -> None:
        for name in ("start_date", "end_date"):
            value = getattr(self, name)
            if value is not None:
                try:
                    dt.date.fromisoformat(value)
                except ValueError:
                    raise ConfigError(
                        f"{name} {value!r} is not a date", hint="Write it as YYYY-MM-DD"
                    ) from None


def dates(opts: Options, today: dt.date | None = None) -> list[dt.date]:
    """The score dates to have: start_date to end_date (default yesterday); just yesterday without a start."""
    end = (
        dt.date.fromisoformat(opts.end_date)
        if opts.end_date
        else (today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=1)
    )
    start = dt.date.fromisoformat(opts.start_date) if opts.start_date else end
    return [start + dt.timedelta(days=d) for d in range((end - start).days + 1)]


def acquire(dataset: Dataset, raw_dir: Path, ctx: Context) -> list[Path]:
    """Local files; the sample; or each day of the date range not yet downloaded (the others stay as they are)."""
    opts: Options = dataset.options
    if opts.paths:
        return local_files(opts.paths, ctx)
    if opts.sample:
        from etl.samples.epss import write_sample

        return write_sample(raw_dir, days=opts.sample_days, parallel_map=ctx.parallel_map)
    from etl.download import download

    files, failures = [], []
    for day in dates(opts):
        name = f"epss_scores-{day.isoformat()}.csv.gz"
        try:
            files.append(
                raw_dir / name
                if (raw_dir / name).exists()
                else download(f"{opts.base_url.rstrip('/')}/{name}", raw_dir)
            )
        except FetchError as e:
            failures.append((name, e.message))
    if failures:
        raise FetchFailures(files, failures)
    return files


def score_header(path: Path) -> tuple[str | None, dt.date, bool]:
    """(model version, score date, whether the first line is the comment) of a score file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            first = f.readline(4096)
    except (OSError, EOFError) as e:
        raise ConversionError(f"cannot read: {e}", file=str(path)) from None
    m = HEADER.match(first)
    if m:
        return m.group(1).decode() or None, dt.date.fromisoformat(m.group(2).decode()), True
    named = FILE.search(path.name)
    if not named:
        raise ConversionError(
            "no `#model_version:…,score_date:…` line and no date in the file's name",
            file=str(path),
            hint="Name it epss_scores-YYYY-MM-DD.csv.gz",
        )
    return None, dt.date.fromisoformat(named.group(1)), False


def _number(text: pa.Array) -> tuple[pa.Array, int]:
    """Text as float64, null where it is not a number; and how many non-empty values were not."""
    try:  # the common case, all numbers: Arrow's cast alone (the check below took half the file's time)
        values = text.cast(pa.float64())
        # "nan" and "inf" cast, but are not scores
        if not pc.any(pc.or_(pc.is_nan(values), pc.is_inf(values))).as_py():
            return values, 0
    except pa.ArrowInvalid:
        pass
    text = pc.utf8_trim_whitespace(text)
    ok = pc.match_substring_regex(text, NUMBER)
    values = pc.if_else(ok, text, NULL_TEXT).cast(pa.float64())
    bad = pc.sum(pc.and_(pc.invert(ok), pc.invert(pc.is_null(text)))).as_py() or 0
    return values, bad


def read_batches(
    path: Path, *, block_bytes: int = 8 << 20, rejects: list | None = None, nulled: dict | None = None
) -> Iterator[pa.RecordBatch]:
    """The scores of one file as batches of SCHEMA (blocks of about block_bytes of CSV text)."""
    path = Path(path)
    model, day, comment = score_header(path)
    bad_rows: list[tuple[int, str, str]] = []

    def invalid(row: pcsv.InvalidRow) -> str:
        bad_rows.append(
            (row.number, f"{row.actual_columns} fields where the header has {row.expected_columns}", row.text)
        )
        return "skip"

    try:
        reader = pcsv.open_csv(
            pa.input_stream(str(path), compression="gzip" if path.suffix == ".gz" else None),
            read_options=pcsv.ReadOptions(
                skip_rows=1 if comment else 0, block_size=block_bytes, use_threads=False
            ),
            parse_options=pcsv.ParseOptions(invalid_row_handler=invalid),
            convert_options=pcsv.ConvertOptions(
                column_types={"cve": pa.string(), "epss": pa.string(), "percentile": pa.string()},
                strings_can_be_null=True,
                null_values=[""],  # "n/a", "NaN" … are values that are not numbers, counted as such
            ),
        )
    except pa.ArrowInvalid as e:
        raise ConversionError(f"not an EPSS score file: {e}", file=str(path)) from None
    if "cve" not in reader.schema.names or "epss" not in reader.schema.names:
        raise ConversionError(
            f"no cve and epss columns (found {', '.join(reader.schema.names)})", file=str(path)
        )
    counts = nulled if nulled is not None else {}
    # A line's number in the file: the comment and the header come first; rejected rows are skipped between.
    row = 1
    day_scalar = date_scalar(day)
    model_scalar = NULL_TEXT if model is None else text_scalar(model)
    try:
        for batch in reader:
            n = batch.num_rows
            epss, bad_e = _number(batch.column("epss"))
            percentile, bad_p = (
                _number(batch.column("percentile"))
                if "percentile" in batch.schema.names
                else (pa.nulls(n, pa.float64()), 0)
            )
            for column, bad in (("epss", bad_e), ("percentile", bad_p)):
                if bad:
                    counts[column] = counts.get(column, 0) + bad
            lineage = lineage_columns(path.name, np.arange(row, row + n))
            row += n
            yield pa.RecordBatch.from_arrays(
                [
                    batch.column("cve"),
                    epss,
                    percentile,
                    pa.repeat(day_scalar, n),
                    pa.repeat(model_scalar, n),
                    *lineage,
                ],
                schema=SCHEMA,
            )
    except pa.ArrowInvalid as e:
        raise ConversionError(f"cannot parse: {e}", file=str(path)) from None
    if rejects is not None:
        rejects.extend(bad_rows)


def convert_file(path: Path, out_dir: Path, dataset: Dataset, ctx: Context) -> ConvertResult:
    """One day's scores to `out_dir/epss_scores-<date>.parquet` (a partition per score date)."""
    path = Path(path)
    _, day, _ = score_header(path)
    stem = f"epss_scores-{day.isoformat()}"
    rejects: list[tuple[int, str, str]] = []
    nulled: dict[str, int] = {}
    budget = ctx.settings.memory_limit
    with ParquetSink(
        Path(out_dir) / f"{stem}.parquet", SCHEMA, row_group_bytes=row_group_bytes(budget)
    ) as sink:
        for batch in read_batches(
            path, block_bytes=working_bytes(budget) // 8, rejects=rejects, nulled=nulled
        ):
            sink.write(batch)
    write_rejects(Path(out_dir) / "_rejects" / f"{stem}.parquet", path.name, rejects)
    logger.info("%s: %d scores of %s", path.name, sink.rows, day)
    result = ConvertResult.written(sink, len(rejects))
    result.nulled = nulled
    return result
