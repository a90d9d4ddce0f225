"""The Parquet sink: bounded row groups, zstd, lineage columns, atomic files."""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.arrays import int64_array, text_array, text_scalar

MB = 1024 * 1024

# jemalloc, not Arrow's default mimalloc, which kept freed memory mapped (269 MB -> 237 MB peak converting a 1 GB
# CSV at 256 MB). etl/__init__.py makes it the default pool of Arrow's C++ code; this covers Python-side allocations
# in a process (a notebook) that imported pyarrow before etl. Freed pages go back after 100 ms: at 0 they went so
# eagerly that system CPU doubled (3.0 s -> 1.7 s for that CSV at 100 ms, same peak RSS); NVD pages at 256 MB
# peaked ~10 MB higher.
with contextlib.suppress(NotImplementedError):  # a pyarrow built without jemalloc
    pa.set_memory_pool(pa.jemalloc_memory_pool())
    pa.jemalloc_set_decay_ms(100)
TMP_SUFFIX = ".tmp"
DEFAULT_ROW_GROUP_BYTES = 64 * MB
SAMPLE_ROWS = 16_384  # rows of the first row group that choose the columns' encodings


def row_group_bytes(budget: int) -> int:
    """Row groups of about 64 MB in memory, smaller under a tight budget (a row group is buffered whole)."""
    return max(2 * MB, min(DEFAULT_ROW_GROUP_BYTES, (budget - 120 * MB) // 8))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success fsync it and rename it into place, else remove it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + TMP_SUFFIX)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except _NoOutput:
        tmp.unlink(missing_ok=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_partials(root: Path) -> list[Path]:
    """Delete temporary files an interrupted run left under root; return what was removed."""
    removed = []
    if Path(root).exists():
        for p in Path(root).rglob(f"*{TMP_SUFFIX}"):
            if p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


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


class ParquetSink:
    """Writes batches to one Parquet file, buffering them into row groups of about `row_group_bytes`.

    Use as a context manager; the file appears under its final name only when the block completes. Without a
    schema, the first batch's is used, and a sink that received no batch writes no file.

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
        self._writer: pq.ParquetWriter | None = None
        # Row groups are encoded and compressed on a background thread (pyarrow releases the GIL), so the
        # reader producing the next batches runs meanwhile; at most one row group is in flight.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-sink")
        self._in_flight: Future | None = None

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
        """Open the file once the first row group is known: its values choose the columns' encodings."""
        dictionary, statistics = column_encodings(first)
        # Lineage row numbers rise by one: delta encoding stores them in almost nothing.
        delta = {"_source_row": "DELTA_BINARY_PACKED"} if "_source_row" in self.schema.names else None
        stored = stored_schema(self.schema)
        self._writer = pq.ParquetWriter(
            self._tmp,
            self.schema,
            # zstd level 1 wrote smaller files than level 3 here, 20% faster; values are encoded 8192 at a time
            # rather than 1024 (fewer calls per page).
            compression="zstd",
            compression_level=1,
            write_batch_size=8192,
            use_dictionary=dictionary,
            write_statistics=statistics,
            column_encoding=delta,
            store_schema=stored == self.schema,
        )
        if stored != self.schema:  # what store_schema writes, for the values' types rather than dictionaries
            schema_ipc = base64.b64encode(stored.serialize().to_pybytes())
            self._writer.add_key_value_metadata({**(stored.metadata or {}), b"ARROW:schema": schema_ipc})

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
        if self._pending_bytes >= self.row_group_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            # One dictionary per column chunk: the writer re-encodes chunks whose dictionaries differ.
            table = pa.Table.from_batches(self._pending, schema=self.schema).unify_dictionaries()
            self._pending, self._pending_bytes = [], 0
            self._wait()
            if self._writer is None:
                self._open(table)
            self._in_flight = self._pool.submit(
                self._writer.write_table, table, row_group_size=table.num_rows
            )

    def _wait(self) -> None:
        if self._in_flight is not None:
            future, self._in_flight = self._in_flight, None
            future.result()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self.schema is not None:
                self._flush()
                self._wait()
                if self._writer is None:  # a declared schema and no rows: a file with no row group
                    self._open(self.schema.empty_table())
        except BaseException as e:
            exc_type, exc, tb = type(e), e, e.__traceback__
            raise
        finally:
            self._pending = []
            self._pool.shutdown(wait=True)
            if self._writer is not None:
                self._writer.close()
                self._atomic.__exit__(exc_type, exc, tb)
            else:  # nothing to write: leave no file
                self._atomic.__exit__(exc_type or _NoOutput, exc or _NoOutput(), tb)

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0


class _NoOutput(Exception):
    """Tells atomic_path to discard its temporary file."""
