"""The Parquet sink: bounded row groups, zstd, lineage columns, atomic files."""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa

# The writer that pyarrow.parquet's ParquetWriter wraps (with a path, as here, it adds nothing but the defaults below):
# importing pyarrow.parquet imports pyarrow.fs, and with it Arrow's S3, GCS, Azure and HDFS bindings and Python's
# ssl, 12 ms of a small `etl convert dbc`'s 0.2 s (whole process, medians of 21 pairs).
from pyarrow._parquet import ParquetWriter

from etl import compute as pc
from etl.arrays import int64_array, text_array, text_scalar
from etl.files import NoOutput, atomic_path
from etl.memory import DEFAULT_ROW_GROUP_BYTES

# jemalloc, not Arrow's default mimalloc, which kept freed memory mapped (269 MB -> 237 MB peak converting a 1 GB
# CSV at 256 MB). etl/__init__.py makes it the default pool of Arrow's C++ code; this covers Python-side allocations
# in a process (a notebook) that imported pyarrow before etl. Freed pages go back after 100 ms: at 0 they went so
# eagerly that system CPU doubled (3.0 s -> 1.7 s for that CSV at 100 ms, same peak RSS). At 1 s the CSV reader's
# parallel segments took 1-5% less CPU, but memory stayed longer: converting the NVD memory test's 80 pages and feed
# at 320MB peaked 321-324 MB, over the budget, against 277-309 MB at 100 ms (3 runs each); a 640 MB CSV at 100 ms
# took 1.01x the wall and CPU of 1 s (5 pairs).
with contextlib.suppress(NotImplementedError):  # a pyarrow built without jemalloc
    pa.set_memory_pool(pa.jemalloc_memory_pool())
    pa.jemalloc_set_decay_ms(100)
SAMPLE_ROWS = 16_384  # rows of the first row group that choose the columns' encodings


# Lineage columns, on every row of every source's output (never null).
LINEAGE_FIELDS = [
    pa.field("_source_file", pa.string(), nullable=False),
    pa.field("_source_row", pa.int64(), nullable=False),
]


def lineage_columns(source_file: str, rows: np.ndarray, *, coded: bool = False) -> list[pa.Array]:
    """`_source_file` and `_source_row` arrays for the given 1-based row numbers; with `coded`, `_source_file` is
    a dictionary array (one value, a code per row), which the sink writes without hashing a string per row."""
    if coded:
        zeros = pa.Array.from_buffers(
            pa.int32(), len(rows), [None, pa.py_buffer(np.zeros(len(rows), np.int32))]
        )
        source = pa.DictionaryArray.from_arrays(zeros, text_array([source_file.encode()]))
    else:
        source = pa.repeat(text_scalar(source_file), len(rows))
    return [source, int64_array(rows)]


def with_lineage(
    batch: pa.RecordBatch, source_file: str, first_row: int, *, coded: bool = False
) -> pa.RecordBatch:
    """Append `_source_file` and `_source_row` (1-based row index within the source file); `coded` as for
    lineage_columns."""
    rows = np.arange(first_row, first_row + batch.num_rows, dtype=np.int64)
    lineage = lineage_columns(source_file, rows, coded=coded)
    fields = [f.with_type(a.type) for f, a in zip(LINEAGE_FIELDS, lineage, strict=True)]
    schema = pa.schema([*batch.schema, *fields], metadata=batch.schema.metadata)
    return pa.RecordBatch.from_arrays([*batch.columns, *lineage], schema=schema)


def column_encodings(first: pa.Table) -> tuple[list[str], list[str]]:
    """The columns to dictionary-encode and those to keep min/max statistics for, judged on the first rows.

    A dictionary pays for a column with few distinct values (codes, sexes, states, municipalities): at most a
    quarter of the first SAMPLE_ROWS distinct. For mostly distinct values (ids, postcodes, amounts), hashing
    until the dictionary overflows cost a third of a DATASUS file's encoding time here, and zstd compressed
    them better plain. Columns that arrive dictionary-encoded stay so.

    Min/max statistics prune row groups only where a row group's values span a narrow range. Text and
    dictionary columns get them only when their first rows hold a single value (a file's year, month, state):
    in unsorted data their range is the whole domain, and computing it was a third of the encoding time of
    plain text, half of that of a dictionary column (Arrow finds the codes a chunk uses first).
    """
    text = {f.name for f in first.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)}
    coded = [f.name for f in first.schema if pa.types.is_dictionary(f.type)]  # dictionaries already
    sample = first.slice(0, SAMPLE_ROWS)  # counting distinct values over a whole row group took 0.5 s
    if sample.num_rows < 1000:  # too few rows to judge: the defaults of a text-heavy file
        return sorted(text.union(coded)), first.schema.names
    distinct = {  # for a dictionary column, the values of its first chunk's dictionary
        f.name: len(sample[f.name].chunk(0).dictionary)
        if f.name in coded
        else pc.count_distinct(sample[f.name]).as_py()
        for f in first.schema
        if not pa.types.is_nested(f.type) and f.name != "_source_row"
    }
    dictionary = [name for name, count in distinct.items() if name in coded or count <= sample.num_rows // 4]
    ranged = text.union(coded)
    statistics = [name for name in first.schema.names if name not in ranged or distinct[name] == 1]
    return dictionary, statistics


def stored_schema(schema: pa.Schema) -> pa.Schema:
    """The schema a file is read back with: dictionary columns as their values' type."""
    return pa.schema(
        [f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema],
        metadata=schema.metadata,
    )


class ParquetSink:
    """Writes batches to one Parquet file, buffering them into row groups of about `row_group_bytes`.

    Use as a context manager; the file appears under its final name only when the block completes. Without a
    schema, the first batch's is used, and a sink that received no batch writes no file.

    One pyarrow ParquetWriter writes the row groups on a thread of its own (it releases the GIL while it
    encodes), one at a time while the next fills: the reader produces batches meanwhile. Two row groups encoded at
    once, each as a file of its own spliced into the output, measured no faster on 2 cores (1M SIH records:
    0.74-0.78 s either way), the reader taking the other core.

    A column may arrive dictionary-encoded (a reader that has the codes cheaply): its codes are written as the
    column chunk's dictionary encoding, which spares the writer hashing every value, and the file declares the
    values' type, so readers get plain strings as from any other file.
    """

    def __init__(
        self,
        path: Path,
        schema: pa.Schema | None = None,
        *,
        row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
        metadata: dict[str, str] | None = None,
    ):
        self.path = Path(path)
        self.schema = schema
        self.metadata = metadata
        self.row_group_bytes = row_group_bytes
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self.pending_bytes = 0
        self._atomic = atomic_path(self.path)
        self._tmp: Path | None = None
        self._writer: ParquetWriter | None = (
            None  # opened on the first row group, whose values choose options
        )
        self._fd: int | None = None  # the file being written, for write-back
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-sink")
        self._in_flight: Future | None = None
        self._started = False  # the first row group handed to the writer
        # Row groups written so far go to disk meanwhile, so the final fsync waits only for the last (it was 5% of
        # converting a DBF: 55 ms for 27 MB).
        self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-sync")
        self._synced: Future | None = None

    def __enter__(self) -> ParquetSink:
        self._tmp = self._atomic.__enter__()
        if self.schema is not None:
            self._set_schema(self.schema)
        return self

    def _set_schema(self, schema: pa.Schema) -> None:
        if self.metadata:
            schema = schema.with_metadata({**(schema.metadata or {}), **self.metadata})
        self.schema = schema

    def _open(self, first: pa.Table) -> None:
        """The writer, once the first row group is known: its values choose the columns' encodings."""
        dictionary, statistics = column_encodings(first)
        # Lineage row numbers rise by one: delta encoding stores them in almost nothing. Decimals of up to 18
        # digits are stored as integers, as the format prefers: delta-encoded when not a dictionary, they took the
        # writer 60 ms per 1M values of two DATASUS amounts against 87 ms as 16-byte big-endian values, in a
        # smaller file (5.3 MB against 6.5). Other integers, dates and timestamps that are not a dictionary are
        # delta-encoded too, and floats split into byte streams: zstd then has less (or more alike) input. Per 1.7M
        # values, the writer took 20 ms instead of 43 for random 27-bit integers (6.1 MB instead of 6.6), 20
        # instead of 38 for sorted ones, 21 instead of 46 for amounts with 2 decimals (8.7 MB instead of 9.2).
        encodings = {
            f.name: "BYTE_STREAM_SPLIT" if pa.types.is_floating(f.type) else "DELTA_BINARY_PACKED"
            for f in self.schema
            if f.name not in dictionary
            and (
                pa.types.is_integer(f.type)
                or pa.types.is_date(f.type)
                or pa.types.is_timestamp(f.type)
                or f.type in (pa.float32(), pa.float64())
                or (pa.types.is_decimal(f.type) and f.type.precision <= 18)
            )
        }
        stored = stored_schema(self.schema)
        self._writer = ParquetWriter(
            str(self._tmp),
            self.schema,
            # pyarrow.parquet.ParquetWriter's defaults
            version="2.6",
            data_page_version="1.0",
            writer_engine_version="V2",
            # zstd level 1 wrote smaller files than level 3 here, 20% faster; values are encoded 8192 at a time
            # rather than 1024 (fewer calls per page).
            compression="zstd",
            compression_level=1,
            write_batch_size=8192,
            # Pages end at 1 MB, not at Arrow's 20,000 rows: a column of codes got 7 pages a row group, each
            # compressed by a zstd context of its own (1M 140-byte SIH records: 361 ms in the writer, 389 at
            # 20,000 rows, medians of 7, and a 2% smaller file). No page index is written to use small pages.
            max_rows_per_page=1 << 20,
            use_dictionary=dictionary,
            write_statistics=statistics,
            column_encoding=encodings or None,
            store_decimal_as_integer=True,
            store_schema=stored == self.schema,
        )
        if stored != self.schema:  # what store_schema writes, for the values' types rather than dictionaries
            schema_ipc = base64.b64encode(stored.serialize().to_pybytes())
            self._writer.add_key_value_metadata({**(stored.metadata or {}), b"ARROW:schema": schema_ipc})
        self._fd = os.open(self._tmp, os.O_RDONLY)

    def write(self, batch: pa.RecordBatch) -> None:
        if self.schema is None:
            self._set_schema(batch.schema)
        if batch.num_rows == 0:
            return
        if batch.schema != self.schema:
            batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
        self._pending.append(batch)
        self.pending_bytes += batch.nbytes
        self.rows += batch.num_rows
        # The first row group is a quarter of the others: the writer starts sooner.
        if self.pending_bytes >= self.row_group_bytes // (1 if self._started else 4):
            self.flush()

    def flush(self) -> None:
        """Hand the rows held so far to the writer as a row group, full or not (hold_at_most)."""
        if self._pending:
            # One dictionary per column chunk: the writer re-encodes chunks whose dictionaries differ.
            table = pa.Table.from_batches(self._pending, schema=self.schema).unify_dictionaries()
            self._pending, self.pending_bytes = [], 0
            self._wait()
            self._in_flight = self._pool.submit(self._write_group, table)
            self._started = True

    def _wait(self) -> None:
        if self._in_flight is not None:
            self._in_flight.result()
            self._in_flight = None

    def _write_group(self, table: pa.Table) -> None:
        # The writer is opened here, not on the reader's thread, which reads on meanwhile (8 ms of a DBF's start).
        if self._writer is None:
            self._open(table)
        self._writer.write_table(table, row_group_size=table.num_rows)
        self._write_back()

    def _write_back(self) -> None:
        """Start writing what the file holds to disk, unless a write-back is still under way."""
        if self._synced is not None:
            if not self._synced.done():
                return
            self._synced.result()  # a failed write-back fails the file
        self._synced = self._syncer.submit(os.fdatasync, self._fd)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self.schema is not None:
                self.flush()
                self._wait()
                if self._writer is None:  # a declared schema and no rows: a file with no row group
                    self._open(self.schema.empty_table())
                self._writer.close()
                if self._synced is not None:
                    self._synced.result()
        except BaseException as e:
            exc_type, exc, tb = type(e), e, e.__traceback__
            raise
        finally:
            self._pending = []
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._syncer.shutdown(wait=True)  # before the descriptor closes
            if self._writer is not None:
                self._writer.close()  # again after an error: it releases the file
                os.close(self._fd)
                self._atomic.__exit__(exc_type, exc, tb)
            else:  # nothing to write: leave no file
                self._atomic.__exit__(exc_type or NoOutput, exc or NoOutput(), tb)

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0


def hold_at_most(limit: int, sinks: Iterable[ParquetSink]) -> None:
    """Flush the sinks holding most until they hold `limit` bytes of rows between them: several sinks written at once
    (NVD's nine tables) share what one sink would hold.

    Each of NVD's sinks holding a row group of its own let memory grow with the pages until the smallest tables had
    filled theirs: 200 pages at 256 MB peaked at 242 MB (184 shared), and 400 pages over the budget. The largest
    table is most of the bytes, so it is most of the row groups written; the small ones go when they add up.
    """
    sinks = list(sinks)
    while sum(s.pending_bytes for s in sinks) > limit:
        max(sinks, key=lambda s: s.pending_bytes).flush()
