"""TabWin conversion tables (`.CNV`, as DATASUS ships them in `Auxiliar/*.zip`): one row per code, for joins.

A `.CNV` file is latin-1 text with CRLF line ends. Its first line holds the number of categories and the width of
the codes (`2428 6 L`); every other line one category: its number right-aligned in columns 1-7, its label in
columns 10-60, and from column 61 the codes it covers: single codes, comma lists and `a-b` ranges
(`001,005,010-019`); a blank code (`      ,`) is the label of blank values. Ranges are expanded into one row per
code (numeric, or letters and digits position by position: `A00-B99` is 200 codes), since one row per code is what a
join wants. A code listed by several lines takes the label of the last one: TabWin files put catch-alls such as
OCUPACAO.CNV's `Ignorado 000-999` first and the specific codes after (`overlaps = "all"` keeps every pair instead).

A `.zip` (an `Auxiliar/` archive) is read member by member: each `.CNV` in it becomes a table of its own, named
after the member (`CNV/CBO2002.CNV` -> table `cbo2002`).
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from etl.arrays import int64_array, text_array
from etl.config import Dataset
from etl.errors import ConfigError, ConversionError, SourceError
from etl.files import atomic_path
from etl.memory import batch_rows, row_group_bytes
from etl.sinks.parquet import LINEAGE_FIELDS, ParquetSink, lineage_columns
from etl.sources import SINGLE_TABLE, Context, ConvertResult

logger = logging.getLogger(__name__)

LABEL_START, CODES_START = 9, 60  # 0-based columns: the label is columns 10-60, the codes start at 61
DIGITS, LETTERS = "0123456789", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SCHEMA = pa.schema([("codigo", pa.string()), ("rotulo", pa.string()), ("categoria", pa.int32())])
CODE_BYTES = 48  # an expanded code in memory: its text, offset, line index and its share of the dedup


@dataclass
class Options:
    paths: list[str] = field(default_factory=list, metadata={"help": "local .CNV or .zip files (datasets)"})
    encoding: str = field(
        default="latin-1", metadata={"help": "text encoding of the labels (cp850 for some)"}
    )
    overlaps: str = field(
        default="last", metadata={"help": "a code on several lines: 'last' line's label, or 'all' pairs"}
    )
    max_range: int = field(default=1_000_000, metadata={"help": "most codes one a-b range may expand to"})

    def __post_init__(self) -> None:
        if self.overlaps not in ("last", "all"):
            raise ConfigError(f"overlaps must be 'last' or 'all', not {self.overlaps!r}")
        if self.max_range < 1:
            raise ConfigError("max_range must be at least 1")


@dataclass
class Rejected:
    line: int
    reason: str
    raw: str


class LineError(ValueError):
    """A category line that cannot be read; its message is the reason."""


def _alphabet(a: str, b: str) -> str:
    if a == b:
        return a
    if a in DIGITS and b in DIGITS:
        return DIGITS
    if a in LETTERS and b in LETTERS:
        return LETTERS
    raise LineError(f"range characters {a!r} and {b!r} are neither both digits nor both letters")


def expand_range(start: str, end: str, max_range: int) -> pa.StringArray:
    """Every code from start to end, each position counting over its own alphabet (digits or letters)."""
    if len(start) != len(end) or not start:
        raise LineError(f"range {start}-{end}: its ends differ in length")
    alphabets = [_alphabet(a, b) for a, b in zip(start.upper(), end.upper(), strict=True)]
    radices = np.array([len(a) for a in alphabets], dtype=np.int64)
    place = np.concatenate([np.cumprod(radices[::-1])[::-1][1:], [1]])
    first = sum(alphabets[k].index(c) * place[k] for k, c in enumerate(start.upper()))
    last = sum(alphabets[k].index(c) * place[k] for k, c in enumerate(end.upper()))
    count = int(last - first + 1)
    if count < 1:
        raise LineError(f"range {start}-{end}: its start comes after its end")
    if count > max_range:
        raise LineError(f"range {start}-{end} covers {count:,} codes, more than max_range = {max_range:,}")
    n = np.arange(first, last + 1, dtype=np.int64)
    chars = np.empty((count, len(start)), dtype=np.uint8)
    for k, alphabet in enumerate(alphabets):
        table = np.frombuffer(alphabet.encode("ascii"), dtype=np.uint8)
        chars[:, k] = table[(n // place[k]) % radices[k]]
    offsets = np.arange(0, (count + 1) * len(start), len(start), dtype=np.int32)
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))


def parse_codes(text: str, max_range: int) -> list[pa.StringArray]:
    """The codes of a line's code field: singles, comma lists, `a-b` ranges; whitespace alone is the blank code."""
    singles, ranges = [], []
    for token in text.rstrip().split(","):
        code = token.strip()
        if not code:
            if token:  # spaces where a code goes: the label of blank values
                singles.append(b"")
            continue
        if "-" in code:
            start, _, end = code.partition("-")
            ranges.append(expand_range(start.strip(), end.strip(), max_range))
        elif " " in code:
            raise LineError(f"code {code!r} holds a space (a missing comma?)")
        else:
            singles.append(code.encode())
    if not singles and not ranges:
        raise LineError("no codes from column 61")
    return ([text_array(singles)] if singles else []) + ranges


@dataclass
class Category:
    line: int
    number: int
    label: str
    codes: list[pa.StringArray]


def parse(lines: Iterator[str], max_range: int) -> tuple[int, int, list[Category], list[Rejected]]:
    """The header's category count and code width, the categories, and the lines that could not be read."""
    header = next(lines, "")
    m = re.match(r"\s*(\d+)\s+(\d+)\b", header)
    if not m:
        raise LineError(f"line 1: the header {header.strip()!r} is not '<categories> <width> …'")
    categories, rejected = [], []
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        try:
            seq = line[:LABEL_START].strip()
            if not seq.isdigit():
                raise LineError("no category number in columns 1-9")
            codes = parse_codes(line[CODES_START:], max_range)
            categories.append(Category(number, int(seq), line[LABEL_START:CODES_START].strip(), codes))
        except LineError as e:
            rejected.append(Rejected(number, str(e), line))
    return int(m.group(1)), int(m.group(2)), categories, rejected


def read_batches(
    path: Path,
    *,
    encoding: str = "latin-1",
    overlaps: str = "last",
    max_range: int = 1_000_000,
    memory_limit: int = 1 << 30,
    on_rejects: Callable[[list[Rejected]], None] | None = None,
    source_name: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """A `.CNV` file as batches of (codigo, rotulo, categoria, _source_file, _source_row = its line).

    Lines that cannot be read go to `on_rejects`; without it the first one is an error naming the file and line.
    """
    path = Path(path)
    name = source_name or path.name
    with open(path, "rb") as f:
        raw = f.read()  # a CNV is a few hundred KB at most; its expansion is what is bounded below
    yield from _batches(raw, name, encoding, overlaps, max_range, memory_limit, on_rejects)


def _batches(
    raw: bytes,
    name: str,
    encoding: str,
    overlaps: str,
    max_range: int,
    memory_limit: int,
    on_rejects: Callable[[list[Rejected]], None] | None,
) -> Iterator[pa.RecordBatch]:
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        raise SourceError(f"not {encoding} text (byte {e.start})", file=name) from None
    except LookupError:
        raise ConfigError(f"unknown encoding {encoding!r}") from None
    if "\0" in text:
        raise SourceError("a binary file, not a TabWin .CNV", file=name)
    try:
        # Lines end at LF only: str.splitlines() would also break at U+0085, which latin-1 decodes byte 0x85 to.
        lines = (line.removesuffix("\r") for line in text.split("\n"))
        declared, _width, categories, rejected = parse(lines, max_range)
    except LineError as e:
        raise SourceError(str(e), file=name, hint="Is this a TabWin .CNV file?") from None
    if rejected and on_rejects is None:
        first = rejected[0]
        raise ConversionError(f"line {first.line}: {first.reason}: {first.raw.strip()!r}", file=name)
    if on_rejects is not None:
        on_rejects(rejected)
    if declared != len(categories) + len(rejected):
        logger.warning(
            "%s: the header declares %d categories, the file has %d", name, declared, len(categories)
        )
    total = sum(len(a) for c in categories for a in c.codes)
    if total * CODE_BYTES > memory_limit // 2:
        raise ConversionError(
            f"the ranges expand to {total:,} codes, more than the memory budget holds",
            file=name,
            hint="Lower max_range to reject the widest ranges, or raise --memory-limit",
        )
    if not categories:
        return
    codes = pa.chunked_array([a for c in categories for a in c.codes], pa.string())
    index = np.repeat(
        np.arange(len(categories), dtype=np.int32), [sum(len(a) for a in c.codes) for c in categories]
    )
    pairs = pa.table({"codigo": codes, "index": index})
    if overlaps == "last":
        kept = pairs.group_by("codigo", use_threads=False).aggregate([("index", "max")])
        pairs = pa.table({"codigo": kept.column("codigo"), "index": kept.column("index_max")})
        if pairs.num_rows < total:
            logger.info(
                "%s: %d codes listed on several lines took the last one's label", name, total - pairs.num_rows
            )
    pairs = pairs.sort_by([("index", "ascending"), ("codigo", "ascending")])
    labels = text_array([c.label.encode() for c in categories])
    numbers = _int32_array(np.array([c.number for c in categories], dtype=np.int32))
    lines = np.array([c.line for c in categories], dtype=np.int64)
    schema = pa.schema([*SCHEMA, *LINEAGE_FIELDS])
    step = batch_rows(memory_limit, CODE_BYTES)
    for start in range(0, pairs.num_rows, step):
        part = pairs.slice(start, step)
        index = part.column("index").combine_chunks()
        positions = np.frombuffer(
            index.buffers()[1], dtype=np.int32, count=len(index), offset=index.offset * 4
        )
        yield pa.RecordBatch.from_arrays(
            [
                part.column("codigo").combine_chunks(),
                labels.take(index),
                numbers.take(index),
                *lineage_columns(name, lines[positions]),
            ],
            schema=schema,
        )


def _int32_array(values: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(pa.int32(), len(values), [None, pa.py_buffer(np.ascontiguousarray(values))])


def _members(archive: Path) -> list[tuple[str, bytes]]:
    """The .CNV members of an Auxiliar/ ZIP as (table name, bytes); the same name twice is an error."""
    out: dict[str, tuple[str, bytes]] = {}
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            name = PurePosixPath(member.filename.replace("\\", "/"))
            if member.is_dir() or name.suffix.lower() != ".cnv":
                continue
            table = re.sub(r"[^a-z0-9_]+", "_", name.stem.lower())
            if table in out:
                raise SourceError(
                    f"two members make table {table!r}: {out[table][0]} and {name}", file=str(archive)
                )
            out[table] = (str(name), zf.read(member))  # members are small text files
    if not out:
        raise SourceError("no .CNV member in the archive", file=str(archive))
    return [(t, *out[t]) for t in sorted(out)]


def convert_file(path: Path, out_dir: Path, dataset: Dataset, ctx: Context) -> ConvertResult:
    """A .CNV to `out_dir/<stem>.parquet`, or each .CNV of a .zip to `out_dir/<member>/<zip stem>.parquet`."""
    path, opts = Path(path), dataset.options
    if not path.is_file():
        raise SourceError("file not found", file=str(path))
    if path.suffix.lower() == ".zip":
        members = [(table, f"{path.name}:{member}", raw) for table, member, raw in _members(path)]
        targets = {table: Path(out_dir) / table / f"{path.stem}.parquet" for table, _, _ in members}
    else:
        members = [(SINGLE_TABLE, path.name, path.read_bytes())]
        targets = {SINGLE_TABLE: Path(out_dir) / f"{path.stem}.parquet"}
    result = ConvertResult(rows_in=0, rows_out=0, rows_rejected=0, outputs={})
    for table, name, raw in members:
        rejected: list[Rejected] = []
        out = targets[table]
        with ParquetSink(out, row_group_bytes=row_group_bytes(ctx.settings.memory_limit)) as sink:
            for batch in _batches(
                raw,
                name,
                opts.encoding,
                opts.overlaps,
                opts.max_range,
                ctx.settings.memory_limit,
                rejected.extend,
            ):
                sink.write(batch)
        stem = out.stem if table == SINGLE_TABLE else f"{table}-{out.stem}"
        _write_rejects(rejected, Path(out_dir) / "_rejects" / f"{stem}.parquet", name)
        if rejected:
            result.warnings.append(f"{name}: {len(rejected)} lines rejected (first: line {rejected[0].line})")
        result.rows_in += sink.rows + len(rejected)
        result.rows_out += sink.rows
        result.rows_rejected += len(rejected)
        result.bytes_out += sink.bytes
        if sink.rows:
            result.outputs[table] = sink.path
    return result


def _write_rejects(rejected: list[Rejected], out: Path, source_file: str) -> None:
    if not rejected:
        out.unlink(missing_ok=True)
        return
    table = pa.table(
        {
            "line": int64_array(np.array([r.line for r in rejected], dtype=np.int64)),
            "reason": text_array([r.reason.encode() for r in rejected]),
            "raw": text_array([r.raw.encode() for r in rejected]),
            "_source_file": text_array([source_file.encode()] * len(rejected)),
        }
    )
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
