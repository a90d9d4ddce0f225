"""dBase (DBF) files, as DATASUS publishes them: typed Arrow batches by vectorised numpy/pyarrow code.

Records are read in blocks of bounded size and each field is sliced out of the block as a fixed-width column:
no Python loop per value. Quirks of real files handled: a header terminator of 0x00 instead of 0x0D, a pad byte
after it, trailing bytes after the records, no 0x1A end byte. A file holding fewer records than its header
declares is an error (it was truncated); bytes beyond the declared records are ignored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from etl import compute as pc
from etl.arrays import FALSE, NULL_TEXT, bool_array, text_scalar
from etl.codes import Codes, unique_rows
from etl.config import Dataset
from etl.errors import ConversionError, SourceError
from etl.files import atomic_path
from etl.memory import row_group_bytes, working_bytes
from etl.sinks.parquet import LINEAGE_FIELDS, ParquetSink, lineage_columns
from etl.sources import SINGLE_TABLE, Context, ConvertResult

logger = logging.getLogger(__name__)

SPACE, NUL = 0x20, 0x00


@dataclass
class DbfField:
    name: str
    type: str
    length: int
    decimals: int
    offset: int  # within the record, after the deletion flag


@dataclass
class DbfHeader:
    records: int
    header_length: int
    record_length: int
    fields: list[DbfField]


@dataclass
class DbfStats:
    """What a read found besides the rows: deleted records, and values that could not be typed, per column."""

    deleted: list[tuple[int, bytes]] = field(default_factory=list)
    nulled: dict[str, int] = field(default_factory=dict)


@dataclass
class Options:
    paths: list[str] = field(default_factory=list, metadata={"help": "local .dbf files or globs (datasets)"})
    encoding: str = field(
        default="latin-1", metadata={"help": "text encoding: latin-1 (default), cp1252, cp850"}
    )
    column_encodings: dict[str, str] = field(
        default_factory=dict, metadata={"help": "per-column encodings, e.g. NOME=cp850"}
    )


def parse_header(f: BinaryIO, file_name: str) -> DbfHeader:
    """Parse the header and field descriptors from the start of `f` (left at the first record)."""
    head = f.read(32)
    if len(head) < 32:
        raise SourceError("not a DBF file: shorter than a header", file=file_name)
    records, hlen, reclen = struct.unpack("<IHH", head[4:12])
    if hlen < 65 or reclen < 2 or head[0] & 0x07 not in (3, 4, 5):
        raise SourceError(
            "not a DBF file: invalid header",
            file=file_name,
            hint="Check that this is a .dbf (a .dbc must be decompressed first)",
        )
    desc = f.read(hlen - 32)
    fields, offset = [], 1
    # Descriptors end at 0x0D, or 0x00 in some DATASUS files; hlen may count one pad byte more (32n + 34).
    for pos in range(0, len(desc) - 31, 32):
        if desc[pos] in (0x0D, 0x00):
            break
        d = desc[pos : pos + 32]
        name = d[:11].split(b"\x00", 1)[0].decode("latin-1").strip()
        ftype = chr(d[11]).upper()
        length, decimals = d[16], d[17]
        if ftype == "C":  # some writers keep long character lengths in both bytes
            length += decimals * 256
            decimals = 0
        fields.append(DbfField(name, ftype, length, decimals, offset))
        offset += length
    if not fields or offset != reclen:
        raise SourceError(
            f"not a DBF file: fields add up to {offset} bytes, the header says {reclen}", file=file_name
        )
    return DbfHeader(records, hlen, reclen, fields)


@contextlib.contextmanager
def open_dbf(path: Path) -> Iterator[tuple[BinaryIO, DbfHeader]]:
    """A DBF on disk, open at its first record, and its header; an error names the file and what is wrong, a
    truncated file included."""
    with open(path, "rb") as f:
        header = parse_header(f, str(path))
        readable = (Path(path).stat().st_size - header.header_length) // header.record_length
        if readable < header.records:
            raise SourceError(
                f"truncated: the header declares {header.records} records, the file holds {readable}",
                file=str(path),
                hint="Fetch the file again",
            )
        yield f, header


def read_header(path: Path) -> DbfHeader:
    with open_dbf(path) as (_, header):
        return header


def arrow_type(f: DbfField) -> pa.DataType:
    if f.type in ("N", "F"):
        if f.decimals == 0 and f.length <= 18:
            return pa.int64()
        return pa.decimal128(max(f.length, f.decimals + 1), f.decimals)
    if f.type == "D":
        return pa.date32()
    if f.type == "L":
        return pa.bool_()
    return pa.string()


def arrow_schema(header: DbfHeader) -> pa.Schema:
    """The file's declared schema: the same for every file of a group, so a dataset unions cleanly. Text is never
    null (a blank value is ''), and a field that cannot be null costs the Parquet writer no definition levels."""
    return pa.schema(
        [
            pa.field(
                f.name,
                arrow_type(f),
                nullable=f.type != "C",
                metadata={"dbf_type": f"{f.type}({f.length},{f.decimals})"},
            )
            for f in header.fields
        ]
    )


_UTF8_TABLES: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _utf8_table(encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """For each byte value: its UTF-8 encoding in `encoding` (up to 3 bytes) and that length."""
    if encoding not in _UTF8_TABLES:
        table = np.zeros((256, 3), np.uint8)
        lengths = np.zeros(256, np.int64)
        for b in range(256):
            u = bytes([b]).decode(encoding, errors="replace").encode("utf-8")
            table[b, : len(u)] = list(u)
            lengths[b] = len(u)
        _UTF8_TABLES[encoding] = (table, lengths)
    return _UTF8_TABLES[encoding]


def _rstripped(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bytes of each fixed-width value without trailing spaces and NULs, concatenated, with their offsets."""
    n, width = block.shape
    keep = (block != SPACE) & (block != NUL)
    lengths = np.where(keep.any(axis=1), width - np.argmax(keep[:, ::-1], axis=1), 0)
    data = block[np.arange(width)[None, :] < lengths[:, None]]
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return data, offsets


def _strings(block: np.ndarray, encoding: str) -> pa.Array:
    """Fixed-width text -> strings without trailing spaces and NULs, decoded from `encoding`."""
    block = np.ascontiguousarray(block)
    n, width = block.shape
    if block.max(initial=0) < 0x80:  # ASCII (most DATASUS columns are codes): valid UTF-8, trimmed by Arrow
        if block[:, -1].min(initial=0xFF) > SPACE:  # every value fills the field: the bytes as they are
            offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
            return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(block))
        fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, pa.py_buffer(block)])
        binary = pc.cast(fixed, pa.binary())
        return pc.ascii_rtrim(pa.StringArray.from_buffers(n, *binary.buffers()[1:]), " \x00")
    data, offsets = _rstripped(block)
    table, lengths = _utf8_table(encoding)
    out_len = lengths[data]
    ends = np.cumsum(out_len)
    starts = ends - out_len
    out = np.empty(int(ends[-1]) if len(ends) else 0, np.uint8)
    for k in range(3):
        m = out_len > k
        out[starts[m] + k] = table[data[m], k]
    offsets = np.concatenate(([0], ends))[offsets]
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(out))


EMPTY_TEXT = text_scalar("")  # not a Python literal in compute calls: see etl.arrays
_INT = r"^[+-]?[0-9]+$"
_DEC = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$"


def _numbers(
    block: np.ndarray, typ: pa.DataType, windows: np.ndarray | None = None
) -> tuple[pa.Array, pa.Array | None]:
    """N/F values: blank -> null; a value that does not parse -> null, and marked in the second array. For a field
    of up to 16 bytes, `windows` may hold each value's window (see _right_aligned), `block` being its last bytes."""
    if block.shape[1] <= 16:
        aligned = _right_aligned(_windows(block) if windows is None else windows, typ, block.shape[1])
        if aligned is not None:
            return aligned, None
    text = pc.utf8_trim(_strings(block, "latin-1"), " *")
    text = pc.if_else(pc.equal(text, EMPTY_TEXT), NULL_TEXT, text)
    try:  # the common case, every value well formed: one cast, no regex
        return pc.cast(text, typ), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    text = pc.replace_substring(text, ",", ".")
    valid = pc.coalesce(pc.match_substring_regex(text, _INT if pa.types.is_integer(typ) else _DEC), FALSE)
    bad = pc.and_(pc.is_valid(text), pc.invert(valid))
    values = pc.replace_substring_regex(pc.if_else(valid, text, NULL_TEXT), r"^\+", "")  # Arrow refuses "+4"
    return pc.cast(values, typ), bad


def _windows(block: np.ndarray) -> np.ndarray:
    """Each value of a (records, width <= 16) block as the last bytes of 16."""
    n, width = block.shape
    windows = np.empty((n, 16), np.uint8)
    items = f"V{width}"
    values = np.ndarray((n,), items, block, 0, block.strides[:1])
    np.ndarray((n,), items, windows, 16 - width, (16,))[...] = values
    return windows


# numpy scalars: a Python int operand on a temporary uint8 array made a comparison 10-20x slower here
_DIGIT, _TEN, _BLANK, _POINT = np.uint8(ord("0")), np.uint8(10), np.uint8(SPACE), np.uint8(ord("."))
_NUL = np.uint8(NUL)
_BLANK_WORD = np.uint64(0x2020202020202020)
_INVERSE_OF_5 = np.uint64(0xCCCCCCCCCCCCCCCD)  # 5 x this = 1 modulo 2^64


def _right_aligned(windows: np.ndarray, typ: pa.DataType, width: int) -> pa.Array | None:
    """Numbers as DBF writers store them, parsed by numpy arithmetic: digits right-aligned after blanks and, with
    decimals, the point in its fixed column. `windows` (records, 16) holds each value's 16 bytes ending in its
    last, those before the field's `width` arbitrary (the previous fields, read with it in one copy); they are
    overwritten. None when some value has another form (a sign, a comma, overflow stars, left alignment) or the
    field has more than 7 decimals: the general parser handles those.
    """
    n = len(windows)
    scale = typ.scale if pa.types.is_decimal(typ) else 0
    point = 15 - scale if scale else -1
    if scale > 7:  # the point in the first word: rare, and left to the general parser
        return None
    words = windows.view("<u8")
    # The bytes before the field become blanks (little-endian words: a word's first bytes are its low ones).
    lead = 16 - width
    for word in range(2):
        fill = min(8, max(0, lead - 8 * word))
        if fill:
            mask = np.uint64((1 << 8 * fill) - 1)
            words[:, word] &= ~mask
            words[:, word] |= _BLANK_WORD & mask
    blank = windows == _BLANK
    present = ~blank[:, -1]  # right-aligned: a value ends in the last byte
    well_formed = ((windows - _DIGIT) < _TEN) | blank  # digits wrap around to 0-9, all else above
    if scale:
        well_formed[:, point] = (windows[:, point] == _POINT) | ~present
    flat = blank.ravel()  # a blank after a digit or point, within a value (whole-array ops: fast)
    blank_after = flat[1:] & ~flat[:-1]
    blank_after[15::16] = False  # from one value to the next
    if not well_formed.all() or blank_after.any():
        return None
    if scale:  # the fraction's bytes moved onto the point, a 0 after them: the number read is the value x 10
        low = np.uint64((1 << 8 * (point - 8)) - 1)  # the bytes of the second word before the point
        fraction = words[:, 1] >> np.uint64(8)
        fraction &= ~low
        words[:, 1] &= low
        words[:, 1] |= fraction
    # Blanks count as 0 (0x20 & 0x0F); the 16 digits as two words of 8.
    digits = _eight_digit_words(words)
    values = digits[:, 0] * np.uint64(10**8) + digits[:, 1]
    if scale:  # / 10, exact: / 2, then times the inverse of 5 modulo 2^64 (numpy's division: 14 ns a value)
        values >>= np.uint64(1)
        values *= _INVERSE_OF_5
    validity = None if present.all() else pa.py_buffer(np.packbits(present, bitorder="little"))
    if scale:  # decimal128: 16 little-endian bytes (never negative here)
        wide = np.zeros((n, 2), np.uint64)
        wide[:, 0] = values
        values = wide
    return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(values)])


def _eight_digit_words(words: np.ndarray) -> np.ndarray:
    """In place: each uint64 holding 8 ASCII digits (its first byte the top digit) -> the number they spell. The
    SWAR steps combine neighbouring digits, then pairs, then quads: 9 whole-array operations in all."""
    words &= np.uint64(0x0F0F0F0F0F0F0F0F)
    for multiplier, shift, mask in ((2561, 8, 0x00FF00FF00FF00FF), (6553601, 16, 0x0000FFFF0000FFFF)):
        words *= np.uint64(multiplier)
        words >>= np.uint64(shift)
        words &= np.uint64(mask)
    words *= np.uint64(42949672960001)
    words >>= np.uint64(32)
    return words


def _dates(block: np.ndarray) -> tuple[pa.Array, pa.Array | None]:
    """YYYYMMDD -> date32; blank or zeros -> null; anything else invalid (`15/05/20`) -> null, and marked in the
    second array (None: none)."""
    if block.shape[1] == 8 and (digits := _digit_dates(block)) is not None:
        return digits
    return _text_dates(block)


def _text_dates(block: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """_dates of values in any form, by Arrow's strptime."""
    text = pc.utf8_trim(_strings(block, "latin-1"), " ")
    present = pc.invert(pc.match_substring_regex(text, r"^0*$"))
    eight = pc.if_else(pc.match_substring_regex(text, r"^[0-9]{8}$"), text, NULL_TEXT)
    stamps = pc.strptime(eight, format="%Y%m%d", unit="s", error_is_null=True)
    # strptime rolls impossible days over (20230230 -> 2023-03-02): a date must format back to its text.
    exact = pc.equal(pc.strftime(stamps, format="%Y%m%d"), eight)
    values = pc.if_else(exact, pc.cast(stamps, pa.date32()), pa.nulls(1, pa.date32())[0])
    return values, pc.and_(present, pc.is_null(values))


# Days before each month of a common year, and the days of each month.
_MONTH_STARTS = np.array([0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], np.int64)
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)


def _digit_dates(block: np.ndarray) -> tuple[pa.Array, pa.Array | None] | None:
    """_dates by numpy arithmetic, when each value is 8 digits or blank (spaces and NULs): a date's digits
    checked against the proleptic Gregorian calendar, as Arrow's strptime and the check that a date formats back
    to its text judge them (Arrow's strftime took 0.5 us a value, 1-2 ms per date column of a small .dbc). None
    when some value has another form: the general parser handles those."""
    digits = block - _DIGIT  # bytes below '0' wrap around above 9
    numeric = (digits < _TEN).all(axis=1)
    blank = ((block == _BLANK) | (block == _NUL)).all(axis=1)
    if not (numeric | blank).all():
        return None
    d = digits.astype(np.int64)
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month = d[:, 4] * 10 + d[:, 5]
    day = d[:, 6] * 10 + d[:, 7]
    present = numeric & ((year | month | day) != 0)  # zeros are a blank date
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    good_month = (month >= 1) & (month <= 12)
    m = np.where(good_month, month, 1)
    valid = present & good_month & (day >= 1) & (day <= _MONTH_DAYS[m] + (leap & (m == 2)))
    # Days since 1970-01-01: the days before the year (leap days through year - 1), month and day.
    y = year - 1
    days = (
        365 * (year - 1970)
        + (y // 4 - y // 100 + y // 400)
        - 477
        + _MONTH_STARTS[m]
        + (leap & (m > 2))
        + day
        - 1
    )
    validity = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    values = pa.Array.from_buffers(pa.date32(), len(block), [validity, pa.py_buffer(days.astype(np.int32))])
    bad = present & ~valid
    return values, bool_array(bad, valid=np.ones(len(bad), bool)) if bad.any() else None


def _bools(block: np.ndarray) -> pa.Array:
    first = block[:, 0]
    true = np.isin(first, np.frombuffer(b"TtYy", np.uint8))
    false = np.isin(first, np.frombuffer(b"FfNn", np.uint8))
    return bool_array(true, valid=true | false)


def _typed(
    fld: DbfField, typ: pa.DataType, block: np.ndarray, encoding: str
) -> tuple[pa.Array, pa.Array | None]:
    """A field's fixed-width values, typed; the second array marks values that could not be (None: none)."""
    if fld.type in ("N", "F"):
        return _numbers(block, typ)
    if fld.type == "D":
        return _dates(block)
    if fld.type == "L":
        return _bools(block), None
    return _strings(block, encoding), None


def _count(bad: pa.Array | None) -> int:
    return 0 if bad is None else pc.sum(bad).as_py() or 0


DICTIONARY_LIMIT = 1 << 15  # distinct values of a coded field; past it, text is hashed by Arrow, others typed


# A batch's records are read into a frame: SPARE_BYTES after the last record, as a field is read as whole 8-byte
# words, and LEAD_BYTES before the first, as a number is read as the 16 bytes that end in its last.
SPARE_BYTES = LEAD_BYTES = 16
# Records per batch at most: each column's numpy operations run once a batch, and their fixed cost per call
# dominated smaller ones. 1M SIH records of 237 bytes read in 1.54 s of CPU in batches of 9,401 (a quarter of the
# working share at 256 MB), 1.33 s of 16k, 1.00 s of 32k, 1.11 s of 64k (best of 3 each).
BATCH_ROWS = 1 << 15


# Fields are copied out of the records GATHER_ROWS records at a time, every field of those records in turn: their
# 1.1 MB stay in the core's cache meanwhile. Copying a field out of a whole batch of 32k records (4.5 MB) at a time
# cost 3.2 ns a value, 0.5 ns from records in cache: 90 of the 350 ms that 1M 140-byte records took to read. Fields
# are copied in groups of up to GATHER_BYTES a record, each group typed before the next is copied: all of a 237-byte
# record's fields at once peaked 12 MB higher (216 MB at 256MB), at the same speed.
GATHER_ROWS = 8192
GATHER_BYTES = 128


def _groups(columns: list[_Column]) -> Iterator[list[_Column]]:
    """The columns in order, in groups whose spans add up to at most GATHER_BYTES (or one wider column)."""
    group, width = [], 0
    for col in columns:
        span = col.span()[1]
        if group and width + span > GATHER_BYTES:
            yield group
            group, width = [], 0
        group.append(col)
        width += span
    if group:
        yield group


def _gather(frame: np.ndarray, n: int, reclen: int, spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """For each (offset, width) span of a record, that span of each of the `n` records of `frame` (see
    _Column.read), as a contiguous (n, width) array."""
    out = [np.empty((n, width), np.uint8) for _, width in spans]
    for start in range(0, n, GATHER_ROWS):
        rows = min(GATHER_ROWS, n - start)
        first = LEAD_BYTES + start * reclen
        for (offset, width), items in zip(spans, out, strict=True):
            values = np.ndarray((rows,), f"V{width}", frame, first + offset, (reclen,))
            items[start : start + rows].view(f"V{width}")[:, 0] = values
    return out


class _Column:
    """One field, batch after batch. With `coded`, a field of at most 16 bytes whose first batch holds few
    distinct values (at most a quarter) is read as codes: each value's bytes become a key of one or two uint64
    words, keys get stable codes, and only distinct values are typed. Text comes out as dictionary arrays of
    those codes, which the Parquet writer writes rather than hashing every value (a third of its time); other
    types as plain arrays taken by code: their nulls need no mapping to null indices, their column chunks keep
    min/max statistics, and the writer's own dictionary of numbers cost it 19 ms per 1M values against 29 for
    one handed over."""

    def __init__(self, fld: DbfField, typ: pa.DataType, encoding: str, coded: bool):
        self.fld, self.typ, self.encoding = fld, typ, encoding
        self.words = -(-fld.length // 8)
        self.codes = Codes(self.words, 8 * fld.length) if coded and fld.length <= 16 else None
        self.values: pa.Array | None = None  # typed, by code (text is never null: nor is its dictionary)
        self.bad_codes = np.zeros(0, np.int32)  # codes of values that could not be typed

    def span(self) -> tuple[int, int]:
        """Where the next read takes each value's bytes: (offset within the record, bytes)."""
        length = self.fld.length
        if self.codes is not None and len(self.codes) <= DICTIONARY_LIMIT:  # a key of whole words
            return self.fld.offset, 8 * self.words
        if self.fld.type in ("N", "F") and length <= 16:
            return self.fld.offset + length - 16, 16  # the 16 bytes ending in its last, parsed as they are
        return self.fld.offset, length

    def read(self, items: np.ndarray, frame: np.ndarray, n: int, reclen: int) -> tuple[pa.Array, int]:
        """The field of `n` records, from `items`, the bytes of span() of each record (gathered from `frame`, the
        records of `reclen` bytes flat after LEAD_BYTES and before SPARE_BYTES); and how many of its values could
        not be typed."""
        length = self.fld.length
        if self.codes is not None and len(self.codes) <= DICTIONARY_LIMIT:
            keys = items.view("<u8")
            if length % 8:  # the bytes after the field, in its last word
                keys[:, -1] &= np.uint64((1 << 8 * (length % 8)) - 1)
            if self.values is not None:
                return self._coded(self.codes.codes(keys))
            # The first batch: its keys are counted before any is coded (a table growing to thousands of keys,
            # each placed by Python, only to find the field mostly distinct, cost 0.25 s a file).
            distinct = unique_rows(keys)
            if len(distinct) <= max(1, n // 4):
                self.codes.add(distinct)
                return self._coded(self.codes.codes(keys))
            self.codes = None  # mostly distinct: typed plainly, from bytes of another span
            items = _gather(frame, n, reclen, [self.span()])[0]
        if self.fld.type in ("N", "F") and length <= 16:
            values, bad = _numbers(items[:, 16 - length :], self.typ, items)
        else:
            values, bad = _typed(self.fld, self.typ, items, self.encoding)
        if self.codes is not None and pa.types.is_string(self.typ):
            values = pc.dictionary_encode(values)  # too many distinct values to code now; a dictionary still
        return values, _count(bad)

    def _coded(self, codes: np.ndarray) -> tuple[pa.Array, int]:
        known = 0 if self.values is None else len(self.values)
        if len(self.codes) > known or self.values is None:  # type the values seen for the first time
            raw = self.codes.keys[known:].view(np.uint8)[:, : self.fld.length]
            new, bad = _typed(self.fld, self.typ, np.ascontiguousarray(raw), self.encoding)
            self.values = new if self.values is None else pa.concat_arrays([self.values, new])
            if bad is not None:
                flagged = np.frombuffer(pc.indices_nonzero(bad).buffers()[1], np.uint64, count=_count(bad))
                self.bad_codes = np.concatenate([self.bad_codes, (flagged + known).astype(np.int32)])
        untyped = int(np.isin(codes, self.bad_codes).sum()) if len(self.bad_codes) else 0
        indices = pa.Array.from_buffers(pa.int32(), len(codes), [None, pa.py_buffer(codes)])
        if pa.types.is_string(self.typ):
            return pa.DictionaryArray.from_arrays(indices, self.values, safe=False), untyped
        return pc.take(self.values, indices), untyped


def read_batches(
    path: Path,
    *,
    encoding: str = "latin-1",
    column_encodings: dict[str, str] | None = None,
    memory_limit: int = 1 << 30,
    lineage: str | None = None,
    stats: DbfStats | None = None,
    coded: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Typed batches of a DBF, bounded in bytes by the memory budget; deleted records are skipped.

    With `lineage`, each batch carries `_source_file` (that name) and `_source_row` (the record's 1-based
    index in the file, deleted records included). `stats` collects deleted records and untyped values. With
    `coded`, text fields of up to 16 bytes with few distinct values come as dictionary arrays (codes stable
    across the batches of the file), as the conversion to Parquet reads them.
    """
    with open_dbf(path) as (f, header):
        yield from _batches(
            f,
            header,
            encoding=encoding,
            column_encodings=column_encodings,
            memory_limit=memory_limit,
            lineage=lineage,
            stats=stats,
            name=str(path),
            coded=coded,
        )


def _batches(
    f: BinaryIO,
    header: DbfHeader,
    *,
    encoding: str,
    column_encodings: dict[str, str] | None,
    memory_limit: int,
    lineage: str | None,
    stats: DbfStats | None,
    name: str,
    coded: bool,
) -> Iterator[pa.RecordBatch]:
    """read_batches from an open file positioned at the first record."""
    schema = arrow_schema(header)
    if lineage:
        schema = pa.schema([*schema, *LINEAGE_FIELDS], metadata=schema.metadata)
    encodings = {fld.name: (column_encodings or {}).get(fld.name, encoding) for fld in header.fields}
    for enc in set(encodings.values()):
        _utf8_table(enc)  # an unknown encoding fails here, before any output
    columns = [_Column(fld, schema.field(fld.name).type, encodings[fld.name], coded) for fld in header.fields]
    reclen = header.record_length
    # A batch's records and its typed arrays (about as many bytes again) take at most the working share of the
    # budget; the sink's row groups have a share of their own.
    rows = max(1024, min(BATCH_ROWS, working_bytes(memory_limit) // (2 * reclen)))
    stats = stats if stats is not None else DbfStats()
    batch_schema = None  # the declared types, or dictionaries of them
    done = 0
    while done < header.records:
        n = min(rows, header.records - done)
        frame = np.empty(LEAD_BYTES + n * reclen + SPARE_BYTES, np.uint8)
        records = frame[LEAD_BYTES:]
        got = f.readinto(memoryview(records)[: n * reclen])
        if got < n * reclen:
            raise SourceError(
                f"truncated: the header declares {header.records} records, the file ends in record "
                f"{done + got // reclen + 1}",
                file=name,
                hint="Fetch the file again",
            )
        records[n * reclen :] = 0
        block = records[: n * reclen].reshape(n, reclen)
        live = block[:, 0] != ord("*")
        if not live.all():
            for i in np.flatnonzero(~live):
                stats.deleted.append((done + int(i) + 1, bytes(block[i])))
            block = block[live]
            frame = np.zeros(LEAD_BYTES + block.size + SPARE_BYTES, np.uint8)
            frame[LEAD_BYTES : LEAD_BYTES + block.size] = block.ravel()
        arrays = []
        for group in _groups(columns):
            gathered = _gather(frame, len(block), reclen, [col.span() for col in group])
            for col, items in zip(group, gathered, strict=True):
                values, bad = col.read(items, frame, len(block), reclen)
                if bad:
                    stats.nulled[col.fld.name] = stats.nulled.get(col.fld.name, 0) + bad
                arrays.append(values)
        if lineage:
            arrays.extend(lineage_columns(lineage, np.flatnonzero(live) + done + 1, coded=coded))
        done += n
        if batch_schema is None:
            batch_schema = pa.schema(
                [f.with_type(a.type) for f, a in zip(schema, arrays, strict=True)], metadata=schema.metadata
            )
        yield pa.RecordBatch.from_arrays(arrays, schema=batch_schema)


def convert_file(path: Path, out_dir: Path, dataset: Dataset, ctx: Context) -> ConvertResult:
    """Convert one .dbf to `out_dir/<stem>.parquet`; deleted records go to `_rejects/` with reason 'deleted'."""
    opts = dataset.options
    return convert_dbf(
        Path(path),
        Path(out_dir),
        ctx,
        encoding=opts.encoding,
        column_encodings=opts.column_encodings,
        source_name=ctx.source_name(path),
        stem=ctx.output_stem(path, Path(path).stem),
    )


def convert_dbf(
    path: Path,
    out_dir: Path,
    ctx: Context,
    *,
    encoding: str,
    column_encodings: dict[str, str],
    source_name: str,
    stem: str,
    stream: BinaryIO | None = None,
    check: Callable[[], None] | None = None,
) -> ConvertResult:
    """DBF -> Parquet under the budget: `out_dir/<stem>.parquet`, rejects `out_dir/_rejects/<stem>.parquet`;
    `source_name` is the lineage's `_source_file`.

    With `stream`, the DBF is read from that binary stream (at its start) rather than from `path`, and
    `check`, called after the last record, can still refuse the output: a .dbc is converted while it is
    decompressed, and its Parquet is committed only once the decompressed size and CRC-32 are verified.
    """
    out = out_dir / f"{stem}.parquet"
    stats = DbfStats()
    with contextlib.ExitStack() as files:
        warnings = []
        if stream is None:
            stream, header = files.enter_context(open_dbf(path))
            warnings = _surplus(path, header)
        else:
            header = parse_header(stream, source_name)
        with (
            ctx.bar(header.records, "rec", source_name) as bar,
            # Half the budget: the reader holds a batch or two. Fewer, larger row groups cost the encoders less
            # (1M SIH records: 0.92 s at 22 MB, 1.02 s at 11 MB, medians of 12 runs each).
            ParquetSink(out, row_group_bytes=row_group_bytes(ctx.settings.memory_limit, share=0.5)) as sink,
        ):
            for batch in _batches(
                stream,
                header,
                encoding=encoding,
                column_encodings=column_encodings,
                memory_limit=ctx.settings.memory_limit,
                lineage=source_name,
                stats=stats,
                name=source_name,
                coded=True,
            ):
                sink.write(batch)
                bar.update(batch.num_rows)
            if check is not None:
                check()
    rejects = out_dir / "_rejects" / f"{stem}.parquet"
    if stats.deleted:
        table = pa.table(
            {
                "record": [r for r, _ in stats.deleted],
                "reason": ["deleted"] * len(stats.deleted),
                "raw": [raw.decode(encoding, errors="replace") for _, raw in stats.deleted],
                "_source_file": [source_name] * len(stats.deleted),
            }
        )
        import pyarrow.parquet as pq

        with atomic_path(rejects) as tmp:
            pq.write_table(table, tmp)
    else:
        rejects.unlink(missing_ok=True)
    if sink.rows + len(stats.deleted) != header.records:
        raise ConversionError(
            f"read {sink.rows} records and {len(stats.deleted)} deleted, the header declares "
            f"{header.records}",
            file=source_name,
        )
    return ConvertResult(
        rows_in=header.records,
        rows_out=sink.rows,
        rows_rejected=len(stats.deleted),
        outputs={SINGLE_TABLE: out} if sink.rows else {},
        bytes_out=sink.bytes,
        nulled=stats.nulled,
        warnings=warnings,
    )


def _surplus(path: Path, header: DbfHeader) -> list[str]:
    """A warning when whole records follow the ones the header declares: they are not read (the header's count
    decides, as for dbfread and DBF's other readers), but never passed over in silence."""
    extra = (Path(path).stat().st_size - header.header_length) // header.record_length - header.records
    if extra <= 0:
        return []
    return [
        f"the header declares {header.records:,} records, but {extra:,} more whole records follow them and were "
        "not read (a writer that did not update the count?); ask the file's producer for a corrected file"
    ]


def _field_format(f: DbfField) -> tuple[str, Callable[[object], object] | None]:
    """How a value of field f is written: a %-format that pads and cuts it to the field's width, and what turns
    the value into text first (None: printed as str() prints it). None values are blank."""
    n = f.length
    if f.type == "C":
        return f"%-{n}.{n}s", None
    if f.type in ("N", "F"):
        if not f.decimals:  # a number is printed as str() prints it
            return f"%{n}.{n}s", None
        spec = f".{f.decimals}f"
        return f"%{n}.{n}s", lambda v: v if v is None or isinstance(v, str) else format(v, spec)
    if f.type == "D":

        def day(v):
            return f"{v.year:04d}{v.month:02d}{v.day:02d}" if isinstance(v, dt.date) else v

        return "%-8.8s", day
    if f.type == "L":
        return "%1.1s", lambda v: v if v is None else "T" if v else "F"
    raise ValueError(f"cannot write DBF field type {f.type!r}")


def _fit(text: object, width: int, encoding: str, *, left: bool) -> bytes:
    data = str(text).encode(encoding)[:width]
    return data.ljust(width) if left else data.rjust(width)


def write_dbf(
    path: Path,
    fields: list[tuple[str, str, int, int]],
    records,
    *,
    encoding: str = "latin-1",
    deleted: set[int] = frozenset(),
) -> Path:
    """Write a dBase III file: fields as (name, type, length, decimals); records as tuples of values.

    Records are streamed, so a generator of millions of records writes in constant memory.
    """
    flds, offset = [], 1
    for name, ftype, length, decimals in fields:
        flds.append(DbfField(name, ftype, length, decimals, offset))
        offset += length
    hlen = 32 + 32 * len(flds) + 1
    path = Path(path)
    # Not durable: etl writes DBF files only as samples (and for tests), which their manifest vouches for.
    with atomic_path(path, durable=False) as tmp, open(tmp, "wb") as out:
        out.write(b"\x00" * hlen)
        count = 0
        # One %-format per record, encoded once: a call per value cost 4x more.
        formats, texts = zip(*(_field_format(f) for f in flds), strict=True)
        record = "%s" + "".join(formats)
        typed = [(k, text) for k, text in enumerate(texts, 1) if text is not None]
        for i, rec in enumerate(records):
            if len(rec) != len(flds):
                raise ValueError(f"record {i} has {len(rec)} values for {len(flds)} fields")
            values = ["*" if i in deleted else " ", *rec]
            for k, text in typed:
                values[k] = text(values[k])
            if None in values:
                values = ["" if v is None else v for v in values]
            data = (record % tuple(values)).encode(encoding)
            if len(data) != offset:  # cut to a width in characters, longer in bytes (UTF-8)
                data = values[0].encode() + b"".join(
                    _fit(v, f.length, encoding, left=f.type not in ("N", "F"))
                    for f, v in zip(flds, values[1:], strict=True)
                )
            out.write(data)
            count += 1
        out.write(b"\x1a")
        today = dt.date.today()
        head = struct.pack(
            "<BBBBIHH20x", 0x03, today.year - 1900, today.month, today.day, count, hlen, offset
        )
        for f in flds:
            head += struct.pack(
                "<11sc4xBB14x", f.name.encode("latin-1"), f.type.encode(), f.length, f.decimals
            )
        out.seek(0)
        out.write(head + b"\x0d")
    return path
