import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl.sinks.thrift import BINARY, I64, LIST, STRUCT, Field, ThriftList, decode, encode, field


def footer(path):
    data = path.read_bytes()
    length = int.from_bytes(data[-8:-4], "little")
    return data[-8 - length : -8]


@pytest.mark.parametrize(
    "table",
    [
        pa.table({"x": [1, 2, 3]}),  # small numbers, statistics, one row group
        pa.table(
            {
                "s": ["São", None, "x" * 300] * 50,  # long binary statistics
                "d": [dt.date(2023, 1, 2)] * 150,
                "f": [1.5, None, -2.0] * 50,
                "l": [[1, 2], [], None] * 50,  # nested: repetition levels, lists of fields
                "m": [{"a": 1, "b": "z"}] * 150,
            }
        ),
        pa.table({"x": pa.array([], pa.int64())}),  # no row group
    ],
)
def test_pyarrow_footers_decode_and_encode_back_byte_for_byte(tmp_path, table):
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=40)
    raw = footer(tmp_path / "t.parquet")
    fields = decode(raw)
    assert encode(fields) == raw
    assert field(fields, 3).value == table.num_rows  # FileMetaData.num_rows


def test_encoding_takes_edited_fields_and_long_lists():
    fields = [
        Field(1, I64, -(2**40)),
        Field(20, BINARY, b"far field id"),  # more than 15 past the last: written with its id
        Field(21, LIST, ThriftList(I64, list(range(-20, 20)))),  # 15 elements or more: size as a varint
        Field(22, STRUCT, [Field(1, BINARY, b"")]),
    ]
    assert decode(encode(fields)) == fields
