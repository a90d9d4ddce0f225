"""The shape of a CSV's first lines: how many fields each record has, and the title lines before its header.

DuckDB's sniffer takes a file that opens with a title and a blank line (TabNet's and IBGE's exports do) for a
one-column file named after the title: every row is then rejected, and DuckDB's reader holds each reject in memory
(~1 KB, outside its memory_limit), so 300,000 such rows took 741 MB at a 256 MB budget before failing. Like
data.table's fread, etl looks for the first line from which records keep the file's usual number of fields.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

HEAD_BYTES = 64 * 1024
DELIMITERS = (";", ",", "\t", "|")
# records of the usual width in a row that mark where the table starts (fewer when the head holds fewer)
RUN = 5


@dataclass
class Record:
    line: int  # the 1-based line the record starts on
    fields: int


def read_head(path: Path) -> bytes:
    """The first HEAD_BYTES of the file (of its contents, for a .gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return f.read(HEAD_BYTES)


def head_records(head: bytes, encoding: str, delimiter: str, quote: str) -> list[Record]:
    """The records that start in `head` (the last, maybe cut short where the file goes on, left out); blank lines
    are not records."""
    text = head.decode(
        "utf-8-sig" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding, "replace"
    )
    cut = len(head) == HEAD_BYTES
    if cut:
        text = text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quote or None)
    records, line = [], 1
    try:
        for row in reader:
            if row:
                records.append(Record(line, len(row)))
            line = reader.line_num + 1
    except csv.Error:  # a quote still open where the head was cut: the records before it stand
        pass
    return records[:-1] if cut and records else records


def _table_start(records: list[Record]) -> tuple[int, int, int] | None:
    """(records of the usual width, that width, the index of the first of RUN such records in a row), or None
    where most records have one field."""
    if not records:
        return None
    width, count = Counter(r.fields for r in records).most_common(1)[0]
    if width < 2:
        return None
    run = min(RUN, count)
    for i in range(len(records) - run + 1):
        if all(r.fields == width for r in records[i : i + run]):
            return count, width, i
    return None


def lines_before_header(
    head: bytes, encoding: str, delimiter: str | None, quote: str
) -> tuple[int, str] | None:
    """(lines before the header, the delimiter) where the file's first lines are titles rather than its table;
    None where the table starts on line 1 or no delimiter gives records of two fields or more."""
    best = None
    for d in [delimiter] if delimiter else DELIMITERS:
        found = _table_start(records := head_records(head, encoding, d, quote))
        if found and (best is None or found[:2] > best[0][:2]):
            best = (found, records, d)
    if best is None:
        return None
    (_, _, i), records, d = best
    start = records[i].line
    return (start - 1, d) if start > 1 else None
