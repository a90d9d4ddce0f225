import contextlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl.files import atomic_path, remove_partials
from etl.sinks.parquet import ParquetSink, hold_at_most, with_lineage


def write_parquet(batches, path, schema=None, row_group_bytes=64 * 2**20):
    with ParquetSink(path, schema, row_group_bytes=row_group_bytes) as sink:
        for batch in batches:
            sink.write(batch)
    return sink


def batches(n, rows):
    for i in range(n):
        yield pa.record_batch({"x": pa.array(range(i * rows, (i + 1) * rows), pa.int64())})


def test_row_groups_are_buffered_to_a_size_in_bytes(tmp_path):
    result = write_parquet(batches(100, 1000), tmp_path / "a.parquet", row_group_bytes=200_000)
    meta = pq.ParquetFile(tmp_path / "a.parquet").metadata
    assert result.rows == 100_000 and meta.num_rows == 100_000
    # 25 batches of 8 kB each fill a row group, not one group per batch; the first is a quarter of the others.
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [7000, *[25_000] * 3, 18_000]
    assert pq.read_table(tmp_path / "a.parquet").column("x").to_pylist() == list(range(100_000))


def test_lineage_columns():
    b = with_lineage(pa.record_batch({"v": ["a", "b"]}), "f.dbc", 41)
    assert b.to_pydict() == {"v": ["a", "b"], "_source_file": ["f.dbc", "f.dbc"], "_source_row": [41, 42]}


def test_a_failed_write_leaves_nothing(tmp_path):
    def broken():
        yield from batches(2, 10)
        raise RuntimeError("reader died")

    with pytest.raises(RuntimeError):
        write_parquet(broken(), tmp_path / "b.parquet")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_back_to_disk_fails_the_file(tmp_path, monkeypatch):
    def fdatasync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("etl.sinks.parquet.os.fdatasync", fdatasync)  # the sink's own, while row groups come
    with pytest.raises(OSError, match="Input/output"):
        write_parquet(batches(100, 1000), tmp_path / "s.parquet", row_group_bytes=200_000)
    assert list(tmp_path.iterdir()) == []


def test_no_batches_means_no_file_unless_the_schema_is_known(tmp_path):
    with ParquetSink(tmp_path / "none.parquet") as sink:
        pass
    assert sink.rows == 0 and not (tmp_path / "none.parquet").exists()
    write_parquet([], tmp_path / "empty.parquet", pa.schema([("x", pa.int64())]))
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0


def test_partials_are_cleaned_up(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d/x.parquet.tmp").write_bytes(b"half")
    (tmp_path / "d/y.parquet").write_bytes(b"whole")
    assert [p.name for p in remove_partials(tmp_path)] == ["x.parquet.tmp"]
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["y.parquet"]


def test_atomic_path_replaces_only_on_success(tmp_path):
    final = tmp_path / "f.txt"
    final.write_text("old")
    with pytest.raises(ValueError), atomic_path(final) as tmp:
        tmp.write_text("new")
        raise ValueError
    assert final.read_text() == "old"
    with atomic_path(final) as tmp:
        tmp.write_text("new")
    assert final.read_text() == "new" and not tmp.exists()


def test_encodings_follow_the_first_row_group(tmp_path):
    n = 5000
    batch = pa.RecordBatch.from_pydict(
        {
            "uf": [["SP", "RJ", "MG"][i % 3] for i in range(n)],
            "n_aih": [f"{i:013d}" for i in range(n)],
            "sexo": [i % 2 for i in range(n)],
            "idade": list(range(n)),
        }
    )
    with ParquetSink(tmp_path / "d.parquet") as sink:
        sink.write(with_lineage(batch, "x.csv", 1))
    group = pq.ParquetFile(tmp_path / "d.parquet").metadata.row_group(0)
    chunks = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    dictionary = {name for name, c in chunks.items() if "RLE_DICTIONARY" in c.encodings}
    assert dictionary == {"uf", "sexo", "_source_file"}  # few distinct values; ids and ages stay plain
    with_stats = {name for name, c in chunks.items() if c.is_stats_set}
    assert with_stats == {"sexo", "idade", "_source_file", "_source_row"}  # text only where it is constant
    assert chunks["idade"].statistics.max == n - 1
    assert pq.read_table(tmp_path / "d.parquet").column("n_aih").to_pylist()[-1] == f"{n - 1:013d}"


def test_plain_numbers_dates_and_times_are_delta_or_byte_stream_split_and_read_back_by_every_reader(tmp_path):
    import datetime as dt

    import duckdb
    import polars as pl

    n = 5000
    values = {
        "id": pa.array([7_000_000_000 + i * 13 for i in range(n)], pa.int64()),
        "cep": pa.array([(i * 7919) % 99_999_999 for i in range(n)], pa.int32()),
        "day": pa.array([dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(n)], pa.date32()),
        "at": pa.array(
            [dt.datetime(2024, 5, 1) + dt.timedelta(seconds=i * 61) for i in range(n)], pa.timestamp("us")
        ),
        "valor": pa.array([None if i % 100 == 0 else i / 7 for i in range(n)], pa.float64()),
        "peso": pa.array([i / 3 for i in range(n)], pa.float32()),
    }
    with ParquetSink(tmp_path / "n.parquet") as sink:
        sink.write(with_lineage(pa.RecordBatch.from_pydict(values), "x.csv", 1))
    group = pq.ParquetFile(tmp_path / "n.parquet").metadata.row_group(0)
    chunks = {group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)}
    assert {name for name, e in chunks.items() if "DELTA_BINARY_PACKED" in e} == {
        "id",
        "cep",
        "day",
        "at",
        "_source_row",
    }
    assert {name for name, e in chunks.items() if "BYTE_STREAM_SPLIT" in e} == {"valor", "peso"}
    expected = pa.table(values)
    assert (
        pq.read_table(tmp_path / "n.parquet").drop_columns(["_source_file", "_source_row"]).equals(expected)
    )
    assert (
        pl.read_parquet(tmp_path / "n.parquet")
        .drop("_source_file", "_source_row")
        .equals(pl.from_arrow(expected))
    )
    back = duckdb.sql(f"SELECT * EXCLUDE (_source_file, _source_row) FROM '{tmp_path}/n.parquet'")
    assert back.to_arrow_table().equals(expected)


def test_dictionary_columns_are_written_as_their_codes_and_read_back_as_values(tmp_path):
    def coded(values, dictionary):
        return pa.DictionaryArray.from_arrays(pa.array(values, pa.int32()), pa.array(dictionary))

    field = pa.field(
        "uf", pa.dictionary(pa.int32(), pa.string()), nullable=False, metadata={"dbf_type": "C(2,0)"}
    )
    schema = pa.schema([field, pa.field("n", pa.int64())], metadata={"source": "test"})
    first = pa.record_batch([coded([0, 1] * 1000, ["SP", "RJ"]), pa.array(range(2000))], schema=schema)
    # A later batch whose dictionary differs (values in another order, one new): unified per row group.
    second = pa.record_batch(
        [coded([2, 0, 1] * 500, ["RJ", "MG", "SP"]), pa.array(range(1500))], schema=schema
    )
    with ParquetSink(tmp_path / "d.parquet") as sink:
        sink.write(first)
        sink.write(second)
    back = pq.read_table(tmp_path / "d.parquet")
    assert back.schema.field("uf").type == pa.string() and not back.schema.field("uf").nullable
    assert back.schema.field("uf").metadata == {b"dbf_type": b"C(2,0)"}
    assert back.schema.metadata == {b"source": b"test"}
    assert back.column("uf").to_pylist() == ["SP", "RJ"] * 1000 + ["SP", "RJ", "MG"] * 500
    chunk = pq.ParquetFile(tmp_path / "d.parquet").metadata.row_group(0).column(0)
    assert "RLE_DICTIONARY" in chunk.encodings and not chunk.is_stats_set  # three values: no min/max


def test_row_groups_written_while_the_next_fill_make_one_file_every_reader_reads(tmp_path):
    import duckdb
    import polars as pl

    def batch(i):
        n = 1000
        return pa.record_batch(
            {
                "id": pa.array(range(i * n, (i + 1) * n), pa.int64()),
                "uf": [["SP", "RJ", "MG"][j % 3] for j in range(n)],
                "name": [f"name {i}-{j}" for j in range(n)],
                "tags": [[j, j + 1] if j % 2 else None for j in range(n)],
            }
        )

    with ParquetSink(tmp_path / "p.parquet", row_group_bytes=20_000) as sink:
        for i in range(25):  # each row group written on the sink's thread while the next fills
            sink.write(batch(i))
    f = pq.ParquetFile(tmp_path / "p.parquet")
    assert f.metadata.num_rows == 25_000 and f.metadata.num_row_groups > 5
    starts = [f.metadata.row_group(g).column(0).data_page_offset for g in range(f.metadata.num_row_groups)]
    assert starts == sorted(starts) and starts[0] > 0  # row groups in order
    table = f.read()
    assert table.column("id").to_pylist() == list(range(25_000))
    assert table.slice(24_999).to_pylist() == [
        {"id": 24_999, "uf": "SP", "name": "name 24-999", "tags": [999, 1000]}
    ]
    path = str(tmp_path / "p.parquet")
    counts = duckdb.sql(f"SELECT count(*), sum(id), count(tags) FROM '{path}'").fetchall()
    assert counts == [(25_000, 312_487_500, 12_500)]
    assert pl.read_parquet(path)["name"].to_list() == table.column("name").to_pylist()
    assert f.metadata.row_group(3).column(1).statistics is None  # text of three values: no min/max


def test_decimals_are_stored_as_integers_and_read_back_as_decimals(tmp_path):
    from decimal import Decimal

    import duckdb

    amounts = [Decimal("1234.56"), None, Decimal("-0.01"), Decimal("99999999999.99")] * 1000
    wide = [Decimal("1" * 20 + ".5")] * 4000  # beyond 18 digits: no integer holds it
    batch = pa.record_batch(
        {"amount": pa.array(amounts, pa.decimal128(13, 2)), "wide": pa.array(wide, pa.decimal128(22, 1))}
    )
    write_parquet([batch], tmp_path / "d.parquet")
    column = pq.ParquetFile(tmp_path / "d.parquet").metadata.row_group(0).column
    assert (column(0).physical_type, column(1).physical_type) == ("INT64", "FIXED_LEN_BYTE_ARRAY")
    table = pq.read_table(tmp_path / "d.parquet")
    assert table.schema == batch.schema
    assert table.column("amount").to_pylist() == amounts and table.column("wide").to_pylist() == wide
    totals = duckdb.sql(f"SELECT sum(amount), count(amount) FROM '{tmp_path / 'd.parquet'}'").fetchall()
    assert totals == [(Decimal("100000001234.54") * 1000, 3000)]  # DuckDB reads them as the same decimals


def test_sinks_written_at_once_hold_between_them_what_one_would(tmp_path):
    """The largest holders are written out until the sinks hold `limit` bytes in all; every row reaches its file."""
    sizes = {"big": 6000, "mid": 2500, "small": 400}  # rows of 8-byte values
    with contextlib.ExitStack() as stack:
        sinks = {name: stack.enter_context(ParquetSink(tmp_path / f"{name}.parquet")) for name in sizes}
        for name, sink in sinks.items():
            sink.write(pa.record_batch({"v": np.arange(sizes[name], dtype=np.int64)}))
        hold_at_most(4000 * 8, sinks.values())
        held = {name: sink.pending_bytes for name, sink in sinks.items()}
        assert held == {"big": 0, "mid": 2500 * 8, "small": 400 * 8}
        hold_at_most(2000 * 8, sinks.values())
        assert [sink.pending_bytes for sink in sinks.values()] == [0, 0, 400 * 8]
    assert {name: pq.read_metadata(tmp_path / f"{name}.parquet").num_rows for name in sizes} == sizes
