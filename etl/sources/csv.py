"""Large CSV files: DuckDB infers the types; Arrow's CSV reader converts a clean UTF-8 file, DuckDB's any other.

Arrow's reader takes less CPU than DuckDB's (benchmarks/bench_csv.py: 1 GB CSV, 15.4 s -> 12 s) but keeps no rejects:
it fails on the first row that does not parse or has a field too many or too few. Its pass therefore either writes
the file whole or is thrown away, and DuckDB's reader converts the file again, keeping rows that do not parse or do
not fit their column's type in `_rejects/` with line, reason and raw text. Both write the same rows, types and
lineage.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import logging
import os
import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa

from etl.arrays import text_scalar
from etl.config import Dataset, Settings
from etl.errors import ConfigError, SourceError
from etl.files import atomic_path, tmp_path
from etl.memory import MB, batch_rows, duckdb_memory_limit, row_group_bytes
from etl.sinks.duckdb import connect, quote_ident, quote_literal
from etl.sinks.parquet import ParquetSink, with_lineage
from etl.sources import Context, ConvertResult, local_files
from etl.sources.csv_shape import head_records, lines_before_header, read_head

logger = logging.getLogger(__name__)

NATIVE_ENCODINGS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8",
    "latin-1": "latin-1",
    "latin1": "latin-1",
    "iso-8859-1": "latin-1",
    "utf-16": "utf-16",
}
# Share of a column's sampled values that must cast for the column to get that type; the rest are rejected rows.
TYPE_TOLERANCE = 0.999
INFER_ROWS = 100_000
# rows of the head (csv_shape) below which a mismatch of widths is not judged
MIN_WIDTH_RECORDS = 20
# what DuckDB's reader holds per rejected row until its scan ends (measured 0.2-0.9 KB for short rows)
REJECT_BYTES = 1024
RENUMBER_ROWS = 16_384  # rows read at a time when a file with rejects is numbered again (_renumber)
PRUNE_ROWS = 2_000  # the first values, which rule out most types of a text column (_narrow_types)
CANDIDATE_TYPES = ("BIGINT", "DOUBLE", "DATE", "TIMESTAMP")
TRANSCODE_CHUNK = 4 * 1024 * 1024
# More control bytes (NUL and the like, not tabs or line ends) than this share of the head is a binary file; fewer
# are stray bytes in text, kept in their values.
BINARY_SHARE = 0.01
_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\f\x1a")
UNTERMINATED = "UNQUOTED VALUE"  # DuckDB's error type for a quote opened and never closed
# DuckDB types that Arrow's CSV reader parses as DuckDB does: a value either reads the same or fails Arrow's pass
# (Arrow takes dates in ISO form only, integers without a sign or spaces). A file with a column of another type (a
# timestamp) is read by DuckDB.
ARROW_TYPES = {
    **dict.fromkeys(("BIGINT", "INT8", "LONG"), pa.int64()),
    **dict.fromkeys(("INTEGER", "INT", "INT4", "SIGNED"), pa.int32()),
    **dict.fromkeys(("SMALLINT", "INT2", "SHORT"), pa.int16()),
    **dict.fromkeys(("DOUBLE", "FLOAT8"), pa.float64()),
    **dict.fromkeys(("FLOAT", "FLOAT4", "REAL"), pa.float32()),
    **dict.fromkeys(("VARCHAR", "TEXT", "STRING"), pa.string()),
    **dict.fromkeys(("BOOLEAN", "BOOL"), pa.bool_()),
    "DATE": pa.date32(),
}
# Arrow reads 1 MB blocks: 4 MB ones took the same CPU and wall converting a 640 MB file (whole-process, median of
# 4: 12.4 s CPU either way) and 112 MB more memory. A quoted value longer than a block fails Arrow's pass, and
# DuckDB's reader takes the file.
ARROW_BLOCK = MB
# Arrow's streaming reader parses on one thread, 1.6 s of a 640 MB file's 2.2 s, and the writer's thread then waits:
# segments of the file are parsed two at a time instead, and written in file order (wall 0.94x pair by pair, the
# same CPU, 8 pairs on 2 cores). 8 MB segments took as long as 4 MB ones and 30 MB more memory; 2 MB ones 1.015x the
# time and 22 MB less, which a tight budget needs (1 GB CSV at 256MB: peak 246 MB with 4 MB segments, 221 with 2).
SEGMENT_BYTES = 4 * MB
PARSERS = 2
# The Parquet writer's thread is the critical path (busy 93% of a 640 MB file's conversion) and shared its cores
# with both parsers: parsers niced by 5 (Linux weighs a thread's share by its own nice value) let it run whenever it
# can, and parse in the time it leaves. Wall 0.97x pair by pair (9 pairs; nice 10 and 19 the same), 15 MB less peak.
PARSER_NICE = 5
ISO_DATE = "%Y-%m-%d"


@dataclass
class Options:
    paths: list[str] = field(default_factory=list, metadata={"help": "local files or globs (datasets)"})
    urls: list[str] = field(default_factory=list, metadata={"help": "http(s) URLs to download into data/raw"})
    encoding: str = field(default="utf-8", metadata={"help": "utf-8, latin-1, cp1252, … (default utf-8)"})
    delimiter: str | None = field(default=None, metadata={"help": "field separator (default: detected)"})
    quote: str = field(default='"', metadata={"help": "quote character"})
    header: bool = field(default=True, metadata={"help": "the first line names the columns"})
    skip: int | None = field(
        default=None, metadata={"help": "lines before the header, such as a title (default: detected)"}
    )
    schema: dict[str, str] = field(
        default_factory=dict, metadata={"help": "column types, e.g. IDADE=INTEGER,DT_OBITO=DATE"}
    )
    sample: bool = field(default=False, metadata={"help": "generate the sample CSV when it is missing"})
    sample_rows: int = field(default=300_000, metadata={"help": "rows of the generated sample"})

    def __post_init__(self) -> None:
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(
                f"unknown encoding {self.encoding!r}", hint="Use utf-8, latin-1 or cp1252"
            ) from None
        if self.skip is not None and self.skip < 0:
            raise ConfigError(f"skip must be 0 or more lines, not {self.skip}")
        if self.delimiter is not None and len(self.delimiter.encode()) != 1:
            raise ConfigError(f"delimiter must be one character, not {self.delimiter!r}")


# What `etl fetch csv` and `etl convert csv` take (the pipeline takes every option).
FETCH_OPTIONS = ("urls", "sample", "sample_rows")
CONVERT_OPTIONS = ("encoding", "delimiter", "quote", "header", "skip", "schema")


def acquire(dataset: Dataset, raw_dir: Path, ctx: Context) -> list[Path]:
    """Local files matching `paths`, plus `urls` downloaded into raw_dir; the sample is generated if asked."""
    opts: Options = dataset.options
    if opts.sample:
        from etl import samples
        from etl.samples.csv import write_sample

        name, rows = f"{dataset.name}.csv", opts.sample_rows

        def generate(folder: Path) -> None:
            logger.info("%s: generating the sample CSV (%s rows, once)", dataset.name, f"{rows:,}")
            write_sample(folder / name, rows=rows)

        samples.ensure(raw_dir, {"csv": rows, "generator": 2}, generate, ctx.settings.tmp_dir)
    default = [] if opts.urls else [str(raw_dir / "*.csv"), str(raw_dir / "*.csv.gz")]
    files = local_files(opts.paths or default, ctx)
    if opts.urls:
        from etl.download import download

        files += [download(url, raw_dir) for url in opts.urls]
    return files


def buffer_bytes(budget: int) -> int:
    """DuckDB's CSV buffer: 32 MB per thread by default; smaller ones keep a tight budget (no slower here)."""
    return max(2 * MB, min(32 * MB, budget // 64))


def max_line_bytes(budget: int) -> int:
    """The longest line read: DuckDB's default is 2 MB, but a long text field is data. Half the buffer: DuckDB 1.4
    dropped rows without a word where the limit came near the buffer's size (2,999,957 of 3,000,000 at 5 MB)."""
    return buffer_bytes(budget) // 2


def _reader_args(path: Path, opts: Options, encoding: str, budget: int) -> str:
    args = [
        quote_literal(str(path)),
        f"max_line_size = {max_line_bytes(budget)}",
        f"buffer_size = {buffer_bytes(budget)}",
        f"encoding = {quote_literal(encoding)}",
        f"header = {str(opts.header).lower()}",
        f"quote = {quote_literal(opts.quote)}",
        f"escape = {quote_literal(opts.quote)}",
    ]
    if opts.delimiter:
        args.append(f"delim = {quote_literal(opts.delimiter)}")
    return ", ".join(args)


def _check_input(path: Path) -> None:
    if not path.is_file():
        raise SourceError("file not found", file=str(path), hint="Check the path")
    if path.stat().st_size == 0:
        raise SourceError("file is empty", file=str(path))
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(64 * 1024)
    except (OSError, EOFError) as e:
        raise SourceError(f"cannot read: {e}", file=str(path), hint=TRUNCATED_HINT) from None
    control = len(head) - len(head.translate(None, _CONTROL))
    if control > len(head) * BINARY_SHARE and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError(
            "this looks like a binary file, not CSV",
            file=str(path),
            hint="Check the file, or its encoding if it is UTF-16",
        )


TRUNCATED_HINT = "The file is cut short or not what its name says: fetch or copy it again"


def _explained(e: Exception, path: Path, opts: Options, budget: int) -> tuple[str, str | None, str]:
    """DuckDB's error as (message, position, hint), the hint fitting the error (a truncated .gz is not an encoding
    problem). DuckDB's sniffer places a line over the maximum on line 1 wherever it is: etl finds the line."""
    text = str(e)
    first = text.splitlines()[0].removeprefix("Invalid Input Error: ")
    if "Out of Memory" in text:
        return first, None, "Raise --memory-limit"
    if "GZIP" in text or "zlib" in text.lower():
        return first.removeprefix("IO Error: "), None, TRUNCATED_HINT
    if "Maximum line size of" in text:
        limit = max_line_bytes(budget)
        return _too_long(_first_line(path, lambda n, raw: len(raw) > limit, limit), budget)
    if "Error when sniffing" in text:
        q = opts.quote.encode()
        line = _first_line(path, lambda n, raw: raw.count(q) % 2 == 1, MB) if q else None
        return (
            "could not tell the file's delimiter, quote and header apart"
            + (f" (line {line} opens a {opts.quote} quote that may never close)" if line else ""),
            None,
            "Pass --delimiter and --quote (and --header/--no-header), or fix the quote",
        )
    if "unicode" in text.lower() or "encoding" in text.lower():
        return first, None, "Pass the file's --encoding (latin-1 and cp1252 are common)"
    return first, None, "Check --delimiter and --quote (and --encoding)"


def _too_long(line: int | None, budget: int) -> tuple[str, str | None, str]:
    """(message, position, hint) for a line longer than DuckDB's reader reads at this budget."""
    return (
        f"a line is longer than {max_line_bytes(budget) // MB} MB, the most read at a {budget // MB} MB budget",
        f"line {line}" if line else None,
        "Raise --memory-limit, or check --quote: a quote that is never closed runs many lines into one",
    )


def _long_line(path: Path, limit: int) -> int | None:
    """The 1-based number of the file's first physical line longer than `limit` bytes, or None.

    DuckDB's reader (2.0, with store_rejects) drops a line longer than its buffer without a reject or an error when
    the line lies beyond what its sniffer reads: a 300 MB line 150,002 lines down vanished. Such a line holds a
    whole window of limit // 2 bytes, aligned on that size, without a line end; a window's first 4 kB nearly
    always hold one, so the file is barely read (0.1 s for 3.4 GB), and never more than 2 x limit bytes at once."""
    window = max(1, limit // 2)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for start in range(0, size, window):
            f.seek(start)
            if any(b"\n" in f.read(min(4096, window)) for _ in range(-(-window // 4096))):
                continue
            back = min(start, limit)  # the line's start, at most `limit` bytes before the window
            f.seek(start - back)
            first = start - back + f.read(back).rfind(b"\n") + 1
            f.seek(start + window)  # its end, read only as far as the line could still be short
            rest = f.read(max(0, limit + 1 - (start + window - first)))
            length = start + window - first + (rest.find(b"\n") if b"\n" in rest else len(rest))
            if length > limit:
                f.seek(0)
                return 1 + sum(f.read(min(8 * MB, first - i)).count(b"\n") for i in range(0, first, 8 * MB))
    return None


def _first_line(
    path: Path, match: Callable[[int, bytes], bool], limit: int, lines: int = 100_000
) -> int | None:
    """The 1-based number of the first of the file's first `lines` physical lines that `match`es (read at most
    `limit` + 1 bytes at a time, so a runaway line costs no more memory than that)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        n = 0
        while n < lines and (raw := f.readline(limit + 1)):
            n += 1
            if match(n, raw):
                return n
            while len(raw) > limit and not raw.endswith(b"\n"):  # the rest of a long line
                raw = f.readline(limit + 1)
    return None


def _check_columns(path: Path, types: dict[str, str], opts: Options) -> None:
    """One column whose name holds a delimiter: the sniffer gave up on the delimiter (a stray quote near the top
    can make it), and every row would be one text value."""
    if len(types) == 1 and opts.delimiter is None:
        (name,) = types
        found = [d for d in (",", ";", "\t", "|") if d in name]
        if found:
            raise SourceError(
                f"the delimiter was not recognised: the header {name[:60]!r} became one column",
                file=str(path),
                hint=f"Pass --delimiter {found[0]!r} (and check the quotes near the top of the file)",
            )


def _check_quotes(path: Path, rejects: pa.Table, opts: Options) -> None:
    """A quote opened and never closed makes the rest of the file one value: its rows would be neither written nor
    rejected, so the file fails at that line."""
    types = rejects.column("error_type").to_pylist()
    if UNTERMINATED in types:
        line = rejects.column("line")[types.index(UNTERMINATED)].as_py()
        raise SourceError(
            f"a {opts.quote} quote opens here and is never closed, so the lines after it would run into one value",
            file=str(path),
            position=f"line {line}",
            hint="Fix that line, or pass --quote with a character the file does not use in values",
        )


def _transcode(path: Path, encoding: str, out: Path) -> None:
    """Rewrite a file in an encoding DuckDB cannot read (cp1252, cp850, …) as UTF-8, in bounded chunks."""
    opener = gzip.open if path.suffix == ".gz" else open
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    with opener(path, "rb") as src, open(out, "wb") as dst:
        offset = 0
        while chunk := src.read(TRANSCODE_CHUNK):
            try:
                dst.write(decoder.decode(chunk).encode("utf-8"))
            except UnicodeDecodeError as e:
                raise SourceError(
                    f"not valid {encoding}: {e.reason}",
                    file=str(path),
                    position=f"byte {offset + e.start}",
                    hint="Pass the right --encoding",
                ) from None
            offset += len(chunk)
        dst.write(decoder.decode(b"", final=True).encode("utf-8"))


def _cast_counts(con, source: str, columns: dict[str, tuple[str, ...]], rows: int) -> dict[str, tuple]:
    """Per column, over the first `rows` rows of `source` (read as text): (rows read, non-empty values, values that
    cast to each of its candidate types, values with a leading zero)."""
    checks = ["count(*)"]
    for c, candidates in columns.items():
        col = quote_ident(c)
        checks.append(f"count(NULLIF(trim({col}), ''))")
        checks += [f"count(TRY_CAST(NULLIF(trim({col}), '') AS {t}))" for t in candidates]
        checks.append(f"count(*) FILTER (WHERE regexp_matches({col}, '^\\s*[+-]?0[0-9]'))")
    read, *row = con.execute(
        f"SELECT {', '.join(checks)} FROM (SELECT * FROM read_csv({source}, store_rejects = true) LIMIT {rows})"
    ).fetchall()[0]
    counts, i = {}, 0
    for c, candidates in columns.items():
        width = len(candidates) + 2
        nonempty, *casts, leading_zeros = row[i : i + width]
        counts[c] = (read, nonempty, dict(zip(candidates, casts, strict=True)), leading_zeros)
        i += width
    return counts


def _narrow_types(con, source: str, text_cols: list[str]) -> dict[str, str]:
    """The narrower types of the text columns whose first INFER_ROWS values nearly all cast (TYPE_TOLERANCE).

    Casting 100,000 values four ways per column took most of a clean file's planning (0.3 s for three text columns),
    so the first PRUNE_ROWS values settle what they can first: a leading zero keeps a column text, and a type that
    already fails on more values than the whole sample could tolerate is not tried on the rest. The result is the
    one the full sample gives; only columns with a type still possible are cast INFER_ROWS times.
    """
    first = _cast_counts(con, source, dict.fromkeys(text_cols, CANDIDATE_TYPES), PRUNE_ROWS)
    open_cols = {}
    for c, (read, nonempty, casts, leading_zeros) in first.items():
        # The most values of the full sample that can fail a type the column still gets (+1 for rounding).
        tolerated = (nonempty + max(0, INFER_ROWS - read)) * (1 - TYPE_TOLERANCE) + 1
        candidates = tuple(t for t, ok in casts.items() if nonempty - ok <= tolerated)
        if candidates and not leading_zeros:
            open_cols[c] = candidates
    if not open_cols:
        return {}
    narrowed = {}
    for c, (_, nonempty, casts, leading_zeros) in _cast_counts(con, source, open_cols, INFER_ROWS).items():
        if nonempty == 0 or leading_zeros:  # codes such as 007 stay text
            continue
        for typ, ok in casts.items():
            if ok >= nonempty * TYPE_TOLERANCE:
                narrowed[c] = typ
                break
    return narrowed


def _types_struct(types: dict[str, str]) -> str:
    """The struct of column names to types that read_csv's `columns` and `types` take."""
    return "{" + ", ".join(f"{quote_literal(c)}: {quote_literal(t)}" for c, t in types.items()) + "}"


@dataclass
class Sniffed:
    """What DuckDB's sniffer found: the columns' types and the file's dialect."""

    types: dict[str, str]
    delimiter: str
    skipped: int  # lines before the header
    date_format: str | None
    commented: bool  # the sniffer found a comment character
    # read_csv's arguments for the typed read: the given ones, with the lines before the header etl found
    source: str
    # read_csv's arguments that read every column as text in that dialect, without sniffing again
    text_source: str


def sniff(con, source: str, opts: Options, path: Path, encoding: str) -> Sniffed:
    """One pass of DuckDB's sniffer over `source` (read_csv's arguments for `path`), with rejects kept as when
    reading; where it finds one column, or no dialect, and the file opens with title lines, again past them.

    Every read_csv call sniffs the file anew (17-25 ms here): the types, the dialect and the reads that narrow
    the types share this one. A 640 MB file's plan in a warm process took 62 ms instead of 84 (medians of 15),
    against a DESCRIBE, a sniff on a second thread and a narrowing read that sniffed again; converting a 10 MB
    file, 0.96x the wall (whole process, 25 pairs)."""
    import duckdb

    given = source
    if opts.skip is not None:
        source = f"{source}, skip = {opts.skip}"
    try:
        found, failure = _sniff(con, source), None
    except duckdb.Error as e:
        found, failure = None, e
    if opts.skip is None and (found is None or len(found.columns) == 1):
        titles = lines_before_header(read_head(path), encoding, opts.delimiter, opts.quote)
        if titles:
            skip, delimiter = titles
            logger.info("%s: %d line(s) before the header skipped", path.name, skip)
            source += f", skip = {skip}" + ("" if opts.delimiter else f", delim = {quote_literal(delimiter)}")
            found = _sniff(con, source)
    if found is None:
        raise failure
    delimiter, new_line, comment, skipped, columns, date_format = found
    types = {c["name"]: c["type"] for c in columns}
    fixed = [
        "auto_detect = false",
        f"columns = {_types_struct(dict.fromkeys(types, 'VARCHAR'))}",
        f"new_line = {quote_literal(new_line)}",
        f"skip = {skipped}",
    ]
    if comment != "(empty)":
        fixed.append(f"comment = {quote_literal(comment)}")
    if opts.delimiter is None:
        fixed.append(f"delim = {quote_literal(delimiter)}")
    return Sniffed(
        types, delimiter, skipped, date_format, comment != "(empty)", source, f"{given}, {', '.join(fixed)}"
    )


class _Sniff(NamedTuple):
    """A row of DuckDB's sniff_csv, the columns etl reads."""

    delimiter: str
    new_line: str
    comment: str
    skipped: int
    columns: list[dict]
    date_format: str | None


def _sniff(con, source: str) -> _Sniff:
    return _Sniff(
        *con.execute(
            "SELECT Delimiter, NewLineDelimiter, Comment, SkipRows, Columns, DateFormat "
            f"FROM sniff_csv({source}, store_rejects = true)"
        ).fetchall()[0]
    )


def _check_widths(path: Path, encoding: str, opts: Options, sniffed: Sniffed, budget: int) -> None:
    """Fail before reading a file whose first rows foretell more rejects than the budget holds: most of them
    without the header's number of fields (a dialect that does not fit), or so many that DuckDB's reader, which
    holds each reject in memory (REJECT_BYTES, outside its memory_limit), would outgrow half the budget."""
    if sniffed.commented:  # comment lines would count as rows of one field
        return
    width = len(sniffed.types)
    head = read_head(path)
    records = [
        r for r in head_records(head, encoding, sniffed.delimiter, opts.quote) if r.line > sniffed.skipped
    ]
    body = records[1 if opts.header else 0 :]
    wrong = [r for r in body if r.fields != width]
    if len(body) < MIN_WIDTH_RECORDS or not wrong:
        return
    # rows in the file as many as in the head per byte (a .gz's are not foretold)
    rows = path.stat().st_size * len(records) / len(head) if path.suffix != ".gz" else 0
    foretold = len(wrong) / len(body) * rows
    first = wrong[0]
    found = (
        f"{len(wrong):,} of the first {len(body):,} rows do not have the header's {width} field(s) split at "
        f"{sniffed.delimiter!r} (the first has {first.fields})"
    )
    if len(wrong) * 2 > len(body):
        raise SourceError(
            found,
            position=f"line {first.line}",
            hint="Pass --delimiter and --quote, and --skip N for lines before the header",
        )
    if foretold * REJECT_BYTES > budget / 2:
        raise SourceError(
            f"{found}: about {foretold:,.0f} rejects foretold in the file, more than a {budget // MB} MB budget "
            "holds while DuckDB reads it",
            position=f"line {first.line}",
            hint="Raise --memory-limit, or mend the rows (or the dialect: --delimiter, --quote, --skip)",
        )


def infer_types(con, sniffed: Sniffed, opts: Options) -> dict[str, str]:
    """Column types: DuckDB's sniffer, corrected so a few stray values do not turn a column into text.

    A text column whose sampled values nearly all (TYPE_TOLERANCE) cast to a narrower type gets that type, and
    the rows holding the stray values are rejected with the reason. Declared types (`schema`) win.
    """
    types = dict(sniffed.types)
    text_cols = [c for c, t in types.items() if t == "VARCHAR" and c not in opts.schema]
    if text_cols:
        types.update(_narrow_types(con, sniffed.text_source, text_cols))
    unknown = set(opts.schema) - set(types)
    if unknown:
        raise SourceError(
            f"schema names columns the file does not have: {', '.join(sorted(unknown))}",
            hint=f"Columns are: {', '.join(types)}",
        )
    return {**types, **opts.schema}


def _row_bytes(path: Path) -> int:
    """Average line length in the file's first MiB: enough to size batches in bytes, not only rows."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        head = f.read(1024 * 1024)
    return max(16, len(head) // max(1, head.count(b"\n")))


def read_batches(
    path: Path, options: Options, settings: Settings, on_rejects: Callable[[pa.Table], None] | None = None
) -> Iterator[pa.RecordBatch]:
    """Typed batches of a CSV in file order, read in parallel by DuckDB; the reader contract.

    Rows that do not parse or do not fit their type are not yielded; after the last batch they are passed to
    `on_rejects` as a table (line, error_type, reason, raw, _source_row: the row's 1-based place among the file's
    rows). Batches are bounded by the memory budget.
    """
    import duckdb  # where used, as in etl.sinks.duckdb

    path = Path(path)
    _check_input(path)
    encoding = _native_encoding(options)
    source_path = path
    if encoding is None:
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        source_path = tmp_path(settings.tmp_dir / f"{path.name}.utf8.csv")  # two converts never share it
        try:
            _transcode(path, options.encoding, source_path)
        except BaseException:
            source_path.unlink(missing_ok=True)
            raise
        encoding = "utf-8"
    # Insertion order is kept so that batches (and so _source_row) follow the file.
    con = connect(settings, preserve_order=True)
    try:
        limit = max_line_bytes(settings.memory_limit)
        if source_path.suffix != ".gz" and (line := _long_line(source_path, limit)):
            message, position, hint = _too_long(line, settings.memory_limit)
            raise SourceError(message, file=str(path), position=position, hint=hint)
        source = _reader_args(source_path, options, encoding, settings.memory_limit)
        sniffed = sniff(con, source, options, source_path, encoding)
        _check_widths(source_path, encoding, options, sniffed, settings.memory_limit)
        types = infer_types(con, sniffed, options)
        rows = batch_rows(settings.memory_limit, _row_bytes(path) * 4, cap=500_000)
        reader = con.sql(
            f"SELECT * FROM read_csv({sniffed.source}, types = {_types_struct(types)}, store_rejects = true)"
        )
        _check_columns(path, types, options)
        yield from reader.to_arrow_reader(rows)
        rejects = _placed(
            con.sql(REJECTS_QUERY).to_arrow_table(),
            source_path,
            sniffed.skipped + (1 if options.header else 0),
        )
        _check_quotes(path, rejects, options)
        if on_rejects:
            on_rejects(rejects)
    except (duckdb.Error, OSError) as e:  # errors met while streaming arrive through Arrow as OSError
        message, position, hint = _explained(e, path, options, settings.memory_limit)
        raise SourceError(message, file=str(path), position=position, hint=hint) from None
    finally:
        con.close()
        if source_path != path:
            source_path.unlink(missing_ok=True)


def _native_encoding(options: Options) -> str | None:
    """The name DuckDB reads the file's encoding by, or None for one it cannot read (transcoded first)."""
    return NATIVE_ENCODINGS.get(codecs.lookup(options.encoding).name.replace("_", "-"))


class NotClean(Exception):
    """Arrow's pass met what only DuckDB's reader handles: a value that does not parse, a ragged or long row."""


@dataclass
class ArrowPlan:
    """How Arrow's CSV reader reads a file as DuckDB's would: DuckDB's column names and types, and its dialect."""

    types: dict[str, pa.DataType]
    delimiter: str


def arrow_plan(path: Path, options: Options, settings: Settings) -> ArrowPlan | None:
    """The plan for Arrow's pass, or None for a file it cannot read as DuckDB does (not plain UTF-8, a single
    column, a type outside ARROW_TYPES, dates not in ISO form, lines skipped before the header)."""
    path = Path(path)
    if path.suffix == ".gz" or _native_encoding(options) != "utf-8":
        return None
    _check_input(path)
    import duckdb

    con = connect(settings, preserve_order=True)
    try:
        sniffed = sniff(
            con, _reader_args(path, options, "utf-8", settings.memory_limit), options, path, "utf-8"
        )
        types = infer_types(con, sniffed, options)
    except (duckdb.Error, SourceError):  # DuckDB's reader says what is wrong with the file
        return None
    finally:
        con.close()
    arrow = {c: ARROW_TYPES.get(t.upper()) for c, t in types.items()}
    dates = "DATE" in (t.upper() for t in types.values())
    if (
        None in arrow.values()
        or len(arrow) < 2
        or sniffed.skipped
        or (dates and sniffed.date_format not in (None, ISO_DATE))
    ):
        return None
    return ArrowPlan(arrow, sniffed.delimiter)


def _segments(path: Path, size: int, segment_bytes: int) -> Iterator[tuple[int, int]]:
    """Byte ranges of the file, about `segment_bytes` long, each cut just after a line end (which may lie inside a
    quoted value: arrow_batches finds those), or a block past its size where no line ends sooner: a segment is never
    longer than segment_bytes + ARROW_BLOCK, whatever the file's lines. A line cut so fails Arrow's pass (its
    remainder is a short row), and DuckDB's reader takes the file; read to its end, a 300 MB line had taken the pass
    to 426 MB at a 256 MB budget."""
    with open(path, "rb") as f:
        start = 0
        while start < size:
            f.seek(start + segment_bytes)
            end = f.tell() if f.readline(ARROW_BLOCK) else size
            yield start, end
            start = end


def _parse_segment(
    path: Path, start: int, end: int, plan: ArrowPlan, options: Options
) -> tuple[pa.Table | None, str | None]:
    """The rows of bytes start..end read by Arrow (the header skipped at 0), or Arrow's error."""
    from pyarrow import csv as arrow_csv

    with pa.OSFile(str(path)) as f:
        data = f.read_at(end - start, start)
    try:
        table = arrow_csv.read_csv(
            pa.BufferReader(data),
            read_options=arrow_csv.ReadOptions(
                block_size=ARROW_BLOCK,
                column_names=list(plan.types),
                skip_rows=1 if options.header and start == 0 else 0,
                use_threads=False,  # segments are parsed side by side instead
            ),
            parse_options=arrow_csv.ParseOptions(
                delimiter=plan.delimiter,
                quote_char=options.quote or False,
                double_quote=True,
                newlines_in_values=True,
            ),
            # Only the empty value is NULL, quoted or not, as for DuckDB (Arrow's defaults add "NA", "null", …).
            convert_options=arrow_csv.ConvertOptions(
                column_types=plan.types,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as e:
        return None, str(e).splitlines()[0]
    return table, None


def _nice_parser() -> None:
    """Lower this parser thread's priority (PARSER_NICE) on Linux, where a thread's nice value is its own."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):  # a priority is advice: parsing goes on without it
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PARSER_NICE)


def _ends_in_quotes(table: pa.Table) -> bool:
    """Whether the segment may have been cut inside a quoted value. Arrow takes a quote left open at the end of its
    input as closed there: the open value in any column but the last leaves its row short (an error), and in the
    last it is text that ends with the line end; a number or date does not parse (an error)."""
    last = table.column(table.num_columns - 1)
    if table.num_rows == 0 or not pa.types.is_string(last.type):
        return False
    value = last[-1]
    return value.is_valid and value.as_py().endswith("\n")


def segment_bytes(budget: int) -> int:
    """SEGMENT_BYTES, halved under a budget of less than 512 MB."""
    return SEGMENT_BYTES if budget >= 512 * MB else SEGMENT_BYTES // 2


def arrow_batches(
    path: Path, plan: ArrowPlan, options: Options, segment_bytes: int = SEGMENT_BYTES
) -> Iterator[pa.RecordBatch]:
    """Typed batches of a clean UTF-8 CSV in file order, read by Arrow; NotClean, after the batches read so far,
    when a row does not parse, has too few or too many fields, or holds a quoted value longer than a block.

    The file's segments are parsed PARSERS at a time. A segment that fails, or may end inside a quoted value, is
    read again joined with the next (whose start then lay inside the value): a cut is only trusted where the rows
    before it parse whole and the last does not end open. A segment parses the same bytes as the reader of the
    whole file would, from a row's start, so what it yields is what that reader gives.
    """
    segments = _segments(path, path.stat().st_size, segment_bytes)
    pool = ThreadPoolExecutor(PARSERS, thread_name_prefix="csv-parse", initializer=_nice_parser)
    pending: deque[tuple[int, Future]] = deque()

    def fill() -> None:
        for start, end in islice(segments, PARSERS + 1 - len(pending)):
            pending.append((end, pool.submit(_parse_segment, path, start, end, plan, options)))

    try:
        start = 0
        fill()
        while pending:
            cut, parsed = pending.popleft()
            table, error = parsed.result()
            end = cut
            fill()
            # A quoted value is shorter than a block (Arrow's pass fails on longer ones): read a block past the cut,
            # the segment still fails or ends open for a reason of its own.
            while error or (pending and _ends_in_quotes(table)):
                if not pending or end - cut > ARROW_BLOCK:
                    raise NotClean(error or "a quoted value is longer than a block")
                end, _ = pending.popleft()
                table, error = _parse_segment(path, start, end, plan, options)
                fill()
            yield from table.to_batches()
            start = end
    finally:
        pool.shutdown(cancel_futures=True)


def stem(path: Path) -> str:
    """`DO2022` for `DO2022.csv`, `.txt`, `.tsv` and their `.gz`."""
    return re.sub(r"\.(csv|txt|tsv)(\.gz)?$", "", Path(path).name, flags=re.IGNORECASE)


def convert_file(path: Path, out_dir: Path, dataset: Dataset, ctx: Context) -> ConvertResult:
    """Convert one CSV (or .csv.gz) to `out_dir/<stem>.parquet`; rejected rows to `out_dir/_rejects/`."""
    path = Path(path)
    name, source_file = ctx.output_stem(path, stem(path)), ctx.source_name(path)
    out = Path(out_dir) / f"{name}.parquet"
    rejects_out = Path(out_dir) / "_rejects" / f"{name}.parquet"
    options, settings = dataset.options, ctx.settings
    rejects: list[pa.Table] = []
    sink = None
    plan = arrow_plan(path, options, settings)
    if plan is not None:
        try:
            sink = _write(
                path,
                out,
                source_file,
                ctx,
                arrow_batches(path, plan, options, segment_bytes(settings.memory_limit)),
            )
        except NotClean as e:
            logger.info("%s: read again by DuckDB's reader, with its rejects: %s", path.name, e)
    if sink is None:
        sink = _write(path, out, source_file, ctx, read_batches(path, options, settings, rejects.append))
        if rejects and rejects[0].num_rows:
            _renumber(out, rejects[0]["_source_row"], settings.memory_limit)
    rejected = rejects[0].num_rows if rejects else 0
    if sink.rows == 0 and rejected == 0:
        raise SourceError("no data rows (header only?)", file=str(path))
    _write_rejects(rejects[0] if rejects else None, rejects_out, source_file)
    return ConvertResult.written(sink, rejected)


def _write(
    path: Path, out: Path, source_file: str, ctx: Context, batches: Iterator[pa.RecordBatch]
) -> ParquetSink:
    """Write the batches with lineage to `out` (atomically: an error leaves no file)."""
    # DuckDB does not say how far into the file it is: bytes done are estimated from the average row length.
    size = path.stat().st_size if path.exists() else 0
    per_row = _row_bytes(path) if size and path.suffix != ".gz" else 0
    # DuckDB, reading in this process, holds its memory_limit of the budget: the sink sizes row groups from the rest.
    budget = ctx.settings.memory_limit
    with (
        ctx.bar(size if per_row else None, "B" if per_row else "rows", path.name) as bar,
        ParquetSink(out, row_group_bytes=row_group_bytes(budget - duckdb_memory_limit(budget))) as sink,
    ):
        for batch in batches:
            # `_source_file` as a dictionary: neither built nor hashed a value per row (CPU -2.5% converting a 640 MB
            # CSV, whole-process, median of 8 pairs).
            sink.write(with_lineage(batch, source_file, sink.rows + 1, coded=True))
            bar.update(min(batch.num_rows * per_row, size - bar.n) if per_row else batch.num_rows)
    return sink


def _placed(rejects: pa.Table, path: Path, first_line: int) -> pa.Table:
    """The rejects with `_source_row`, each row's place among the file's rows, for DuckDB's byte offsets.

    DuckDB's `line` counts the lines skipped before the header, the header, blank lines, and then rows (a quoted
    value's own lines not counted); blank lines are not rows, so those before each reject are counted in the file.
    """
    import numpy as np

    from etl.arrays import int64_array

    offsets = rejects["line_byte"].to_numpy()
    lines = rejects["line"].to_numpy().astype(np.int64)
    place = lines - first_line - _blank_lines_before(path, offsets)
    return rejects.drop_columns(["line_byte"]).append_column("_source_row", int64_array(place))


def _blank_lines_before(path: Path, offsets) -> list[int]:
    """How many blank lines (LF LF or LF CR LF) start before each of these ascending byte offsets of the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    counts, j, blanks, start, tail = [0] * len(offsets), 0, 0, 0, b""
    with opener(path, "rb") as f:
        while j < len(offsets) and (block := f.read(TRANSCODE_CHUNK)):
            # a blank line whose line ends lie across two blocks, then those within this block
            edge = tail + block[:2]
            found = [m.start() - len(tail) for m in _BLANK.finditer(edge) if m.end(1) > len(tail) > m.start()]
            for at in found + [m.start() for m in _BLANK.finditer(block)]:
                while j < len(offsets) and offsets[j] <= start + at:
                    counts[j], j = blanks, j + 1
                blanks += 1
            start += len(block)
            tail = (tail + block[-2:])[-2:]
    counts[j:] = [blanks] * (len(offsets) - j)
    return counts


_BLANK = re.compile(rb"\n(?=(\r?\n))")


def _renumber(out: Path, rejected: pa.ChunkedArray, budget: int) -> None:
    """Give each row of `out` its place among the file's rows as `_source_row`, the rejected rows counted.

    The rows were numbered as they were written; DuckDB's reader tells which rows it rejected only once it has
    read them all. So a file with rejects is written again, a row group at a time: row k becomes k + the number of
    rejected rows before it (as DBF records are numbered with the deleted ones counted).
    """
    import numpy as np
    import pyarrow.parquet as pq

    from etl.arrays import int64_array

    places = np.sort(rejected.to_numpy())
    # the number of written rows before the i-th rejected row (1-based i): rows numbered above it move up by i
    before = places - np.arange(1, len(places) + 1)
    first = pq.ParquetFile(out).metadata.row_group(0)
    # text read as the codes it was stored as: the writer takes them without hashing each value again
    coded = [
        first.column(i).path_in_schema
        for i in range(first.num_columns)
        if first.column(i).physical_type == "BYTE_ARRAY" and "RLE_DICTIONARY" in first.column(i).encodings
    ]
    # row groups as the first write made them; read in batches on this thread (whole groups on Arrow's threads
    # took 266 MB at a 256 MB budget, against 199 for the whole conversion before)
    with (
        pq.ParquetFile(out, read_dictionary=coded) as source,
        ParquetSink(out, row_group_bytes=row_group_bytes(budget - duckdb_memory_limit(budget)) // 2) as sink,
    ):
        for batch in source.iter_batches(batch_size=RENUMBER_ROWS, use_threads=False):
            column = batch.schema.get_field_index("_source_row")
            written = batch.column(column).to_numpy()
            moved = written + np.searchsorted(before, written, side="left")
            sink.write(batch.set_column(column, batch.schema.field(column), int64_array(moved)))


# A short row gets one error per missing column: keep the first, with the raw line as it was read.
REJECTS_QUERY = """
SELECT line, arg_min(error_type::VARCHAR, coalesce(column_idx, 0)) AS error_type,
       arg_min(error_message, coalesce(column_idx, 0)) AS reason,
       trim(any_value(csv_line), chr(13) || chr(10)) AS raw, min(line_byte_position) AS line_byte
FROM reject_errors GROUP BY line ORDER BY line
"""


def _write_rejects(table: pa.Table | None, out: Path, source_file: str) -> None:
    if table is None or table.num_rows == 0:
        out.unlink(missing_ok=True)
        return
    import pyarrow.parquet as pq  # here, not on every clean file's path: it imports pyarrow.fs (15 ms)

    source = pa.repeat(text_scalar(source_file), table.num_rows)
    table = table.add_column(table.schema.get_field_index("_source_row"), "_source_file", source)
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
