"""The Parquet sink: bounded row groups, zstd, lineage columns, atomic files."""

from __future__ import annotations

import base64
import collections
import contextlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.arrays import int64_array, text_array, text_scalar
from etl.files import NoOutput, atomic_path
from etl.sinks import thrift

MB = 1024 * 1024

# jemalloc, not Arrow's default mimalloc, which kept freed memory mapped (269 MB -> 237 MB peak converting a 1 GB
# CSV at 256 MB). etl/__init__.py makes it the default pool of Arrow's C++ code; this covers Python-side allocations
# in a process (a notebook) that imported pyarrow before etl. Freed pages go back after 100 ms: at 0 they went so
# eagerly that system CPU doubled (3.0 s -> 1.7 s for that CSV at 100 ms, same peak RSS); NVD pages at 256 MB
# peaked ~10 MB higher.
with contextlib.suppress(NotImplementedError):  # a pyarrow built without jemalloc
    pa.set_memory_pool(pa.jemalloc_memory_pool())
    pa.jemalloc_set_decay_ms(100)
DEFAULT_ROW_GROUP_BYTES = 32 * MB
SAMPLE_ROWS = 16_384  # rows of the first row group that choose the columns' encodings
# Row groups encoded at once, each on its own thread: pyarrow encodes a file's columns one after another, and
# that one core was the bound of a DBF's conversion (0.7-1.0 s of 1.0-1.15 s for 1M SIH records).
ENCODERS = 2


def row_group_bytes(budget: int, share: float = 0.25) -> int:
    """Row groups of about 32 MB in memory, smaller under a tight budget: a sink holds ENCODERS row groups being
    encoded and one filling, `share` of the budget beyond the interpreter's (11 MB at 256 MB for a quarter)."""
    return max(2 * MB, min(DEFAULT_ROW_GROUP_BYTES, int((budget - 120 * MB) * share) // (ENCODERS + 1)))


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


def with_lineage(batch: pa.RecordBatch, source_file: str, first_row: int) -> pa.RecordBatch:
    """Append `_source_file` and `_source_row` (1-based row index within the source file)."""
    rows = np.arange(first_row, first_row + batch.num_rows, dtype=np.int64)
    schema = pa.schema([*batch.schema, *LINEAGE_FIELDS], metadata=batch.schema.metadata)
    return pa.RecordBatch.from_arrays([*batch.columns, *lineage_columns(source_file, rows)], schema=schema)


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


# Parquet's footer (thrift ids of FileMetaData, RowGroup, ColumnChunk and ColumnMetaData fields).
MAGIC = b"PAR1"
FILE_NUM_ROWS, FILE_ROW_GROUPS = 3, 4
GROUP_COLUMNS, GROUP_FILE_OFFSET, GROUP_ORDINAL = 1, 5, 7
CHUNK_FILE_OFFSET, CHUNK_META_DATA = 2, 3
CHUNK_NOT_MOVABLE = {1: "file_path", 4: "offset index", 6: "column index", 8: "encryption", 9: "encryption"}
META_OFFSETS = {9, 10, 11, 14}  # data, index and dictionary page offsets, bloom filter offset


def _moved(group: list[thrift.Field], shift: int, ordinal: int) -> list[thrift.Field]:
    """A row group's metadata with its offsets moved by `shift` bytes, as the `ordinal`-th of its file."""
    for f in group:
        if f.id == GROUP_FILE_OFFSET:
            f.value += shift
        elif f.id == GROUP_ORDINAL:
            f.value = ordinal
        elif f.id == GROUP_COLUMNS:
            for chunk in f.value.values:
                for c in chunk:
                    if c.id in CHUNK_NOT_MOVABLE:  # written only if asked for: this sink does not
                        raise ValueError(f"cannot move a column chunk with a {CHUNK_NOT_MOVABLE[c.id]}")
                    if c.id == CHUNK_FILE_OFFSET and c.value:  # deprecated; pyarrow writes 0
                        c.value += shift
                    elif c.id == CHUNK_META_DATA:
                        for m in c.value:
                            if m.id in META_OFFSETS:
                                m.value += shift
    return group


class ParquetSink:
    """Writes batches to one Parquet file, buffering them into row groups of about `row_group_bytes`.

    Use as a context manager; the file appears under its final name only when the block completes. Without a
    schema, the first batch's is used, and a sink that received no batch writes no file.

    Row groups are encoded on ENCODERS threads at once, each as a Parquet file of its own in memory ("part");
    the sink copies each part's row group into the output in order, keeps its metadata with the offsets moved
    to where the row group now lies, and ends the file with the first part's footer listing them all.

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
        self._pending_bytes = 0
        self._atomic = atomic_path(self.path)
        self._tmp: Path | None = None
        self._options: dict | None = None  # the ParquetWriter's, chosen on the first row group
        self._stored_metadata: dict | None = None  # for a schema with dictionaries: the values' schema
        self._file: BinaryIO | None = None
        self._footer: list[thrift.Field] = []  # the first part's footer, the template of the file's
        self._row_groups: list[bytes] = []  # their metadata, encoded
        # pyarrow releases the GIL while it encodes: the reader produces the next batches meanwhile.
        self._pool = ThreadPoolExecutor(max_workers=ENCODERS, thread_name_prefix="parquet-sink")
        self._in_flight: collections.deque[Future] = collections.deque()
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

    def _choose(self, first: pa.Table) -> None:
        """The writer's options, once the first row group is known: its values choose the columns' encodings."""
        dictionary, statistics = column_encodings(first)
        # Lineage row numbers rise by one: delta encoding stores them in almost nothing.
        delta = {"_source_row": "DELTA_BINARY_PACKED"} if "_source_row" in self.schema.names else None
        stored = stored_schema(self.schema)
        if stored != self.schema:  # what store_schema writes, for the values' types rather than dictionaries
            schema_ipc = base64.b64encode(stored.serialize().to_pybytes())
            self._stored_metadata = {**(stored.metadata or {}), b"ARROW:schema": schema_ipc}
        self._options = dict(
            # zstd level 1 wrote smaller files than level 3 here, 20% faster; values are encoded 8192 at a time
            # rather than 1024 (fewer calls per page).
            compression="zstd",
            compression_level=1,
            write_batch_size=8192,
            use_dictionary=dictionary,
            write_statistics=statistics,
            column_encoding=delta,
            store_schema=self._stored_metadata is None,
        )

    def _encode(self, table: pa.Table) -> tuple[memoryview, list[thrift.Field]]:
        """`table` as a Parquet file of its own, in memory (one row group, or none for no rows), and its footer
        decoded (here, on the encoder's thread, while the reader's numpy calls leave the GIL free)."""
        out = pa.BufferOutputStream()
        writer = pq.ParquetWriter(out, self.schema, **self._options)
        if self._stored_metadata:
            writer.add_key_value_metadata(self._stored_metadata)
        if table.num_rows:
            writer.write_table(table, row_group_size=table.num_rows)
        writer.close()
        part = memoryview(out.getvalue())
        footer_length = int.from_bytes(part[-8:-4], "little")
        return part[: -8 - footer_length], thrift.decode(part[-8 - footer_length : -8])

    def write(self, batch: pa.RecordBatch) -> None:
        if self.schema is None:
            self._set_schema(batch.schema)
        if batch.num_rows == 0:
            return
        if batch.schema != self.schema:
            batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
        self._pending.append(batch)
        self._pending_bytes += batch.nbytes
        self.rows += batch.num_rows
        # The first row group is a quarter of the others: the encoders start sooner.
        if self._pending_bytes >= self.row_group_bytes // (4 if self._options is None else 1):
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            # One dictionary per column chunk: the writer re-encodes chunks whose dictionaries differ.
            table = pa.Table.from_batches(self._pending, schema=self.schema).unify_dictionaries()
            self._pending, self._pending_bytes = [], 0
            if self._options is None:
                self._choose(table)
            while len(self._in_flight) >= ENCODERS:
                self._append(self._in_flight.popleft().result())
            self._in_flight.append(self._pool.submit(self._encode, table))

    def _append(self, encoded: tuple[memoryview, list[thrift.Field]]) -> None:
        """Copy the row group of an encoded part after those already in the file; keep its metadata, with its
        offsets moved to where it now lies."""
        data, footer = encoded
        if self._file is None:
            self._file = open(self._tmp, "wb")  # noqa: SIM115 (closed by __exit__)
            self._file.write(MAGIC)
            self._footer = footer
        shift = self._file.tell() - len(MAGIC)
        self._file.write(data[len(MAGIC) :])
        for group in thrift.field(footer, FILE_ROW_GROUPS).value.values:  # encoded now, while parts encode
            self._row_groups.append(thrift.encode(_moved(group, shift, len(self._row_groups))))
        self._write_back()

    def _write_back(self) -> None:
        """Start writing what the file holds to disk, unless a write-back is still under way."""
        if self._synced is not None:
            if not self._synced.done():
                return
            self._synced.result()  # a failed write-back fails the file
        self._file.flush()
        self._synced = self._syncer.submit(os.fdatasync, self._file.fileno())

    def _finish(self) -> None:
        """The file's footer: the first part's, listing every row group."""
        for f in self._footer:
            if f.id == FILE_NUM_ROWS:
                f.value = self.rows
            elif f.id == FILE_ROW_GROUPS:
                f.value = thrift.ThriftList(thrift.STRUCT, self._row_groups)
        footer = thrift.encode(self._footer)
        self._file.write(footer + len(footer).to_bytes(4, "little") + MAGIC)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self.schema is not None:
                self._flush()
                while self._in_flight:
                    self._append(self._in_flight.popleft().result())
                if self._file is None:  # a declared schema and no rows: a file with no row group
                    self._choose(self.schema.empty_table())
                    self._append(self._encode(self.schema.empty_table()))
                self._finish()
                if self._synced is not None:
                    self._synced.result()
        except BaseException as e:
            exc_type, exc, tb = type(e), e, e.__traceback__
            raise
        finally:
            self._pending = []
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._syncer.shutdown(wait=True)  # before the file closes: its descriptor is in use
            if self._file is not None:
                self._file.close()
                self._atomic.__exit__(exc_type, exc, tb)
            else:  # nothing to write: leave no file
                self._atomic.__exit__(exc_type or NoOutput, exc or NoOutput(), tb)

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0
