"""Thrift's compact protocol, as Parquet footers are written in it: a struct decoded to a tree of fields and
encoded back byte for byte, so that the sink can move row groups between files (etl.sinks.parquet).

A struct is a list of `Field`s in their order (or, to encode, the bytes `encode` made of it); a list is
`ThriftList(element type, values)`. Values keep their wire type, so nothing needs Parquet's schema of the footer;
callers edit fields by id.
"""

from __future__ import annotations

from dataclasses import dataclass

STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)


@dataclass(slots=True)
class Field:
    id: int
    type: int
    value: object


@dataclass(slots=True)
class ThriftList:
    type: int  # of the elements
    values: list


def field(fields: list[Field], field_id: int) -> Field | None:
    return next((f for f in fields if f.id == field_id), None)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _read_value(data: bytes, pos: int, kind: int) -> tuple[object, int]:
    if kind in (I16, I32, I64):
        n, pos = _read_varint(data, pos)
        return (n >> 1) ^ -(n & 1), pos
    if kind == STRUCT:
        return _read_struct(data, pos)
    if kind == BINARY:
        n, pos = _read_varint(data, pos)
        return data[pos : pos + n], pos + n
    if kind in (LIST, SET):
        head = data[pos]
        pos += 1
        size, element = head >> 4, head & 0x0F
        if size == 15:
            size, pos = _read_varint(data, pos)
        values = []
        for _ in range(size):
            value, pos = _read_value(data, pos, element)
            values.append(value)
        return ThriftList(element, values), pos
    if kind in (BYTE, TRUE, FALSE):  # a bool in a list is one byte; as a field, its type says it
        return data[pos], pos + 1
    if kind == DOUBLE:
        return data[pos : pos + 8], pos + 8
    raise ValueError(f"Thrift type {kind} is not in Parquet footers")


def _read_struct(data: bytes, pos: int) -> tuple[list[Field], int]:
    fields, last = [], 0
    while True:
        head = data[pos]
        pos += 1
        if head == STOP:
            return fields, pos
        kind, delta = head & 0x0F, head >> 4
        if delta:
            last += delta
        else:
            n, pos = _read_varint(data, pos)
            last = (n >> 1) ^ -(n & 1)
        if kind in (TRUE, FALSE):
            fields.append(Field(last, kind, kind == TRUE))
        else:
            value, pos = _read_value(data, pos, kind)
            fields.append(Field(last, kind, value))


def decode(data: bytes | memoryview) -> list[Field]:
    """The struct encoded in `data`."""
    return _read_struct(bytes(data), 0)[0]


def _write_varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)


def _write_value(out: bytearray, kind: int, value: object) -> None:
    if kind in (I16, I32, I64):
        _write_varint(out, (value << 1) ^ (value >> 63))  # zigzag
    elif kind == STRUCT:
        if isinstance(value, bytes):  # a struct encoded already
            out += value
        else:
            _write_struct(out, value)
    elif kind == BINARY:
        _write_varint(out, len(value))
        out += value
    elif kind in (LIST, SET):
        size = len(value.values)
        if size < 15:
            out.append(size << 4 | value.type)
        else:
            out.append(0xF0 | value.type)
            _write_varint(out, size)
        for v in value.values:
            _write_value(out, value.type, v)
    elif kind in (BYTE, TRUE, FALSE):
        out.append(value)
    elif kind == DOUBLE:
        out += value
    else:
        raise ValueError(f"Thrift type {kind} is not in Parquet footers")


def _write_struct(out: bytearray, fields: list[Field]) -> None:
    last = 0
    for f in fields:
        kind = (TRUE if f.value else FALSE) if f.type in (TRUE, FALSE) else f.type
        delta = f.id - last
        if 0 < delta <= 15:
            out.append(delta << 4 | kind)
        else:
            out.append(kind)
            _write_varint(out, (f.id << 1) ^ (f.id >> 63))
        if kind not in (TRUE, FALSE):
            _write_value(out, kind, f.value)
        last = f.id
    out.append(STOP)


def encode(fields: list[Field]) -> bytes:
    """`fields` as a struct (the inverse of decode)."""
    out = bytearray()
    _write_struct(out, fields)
    return bytes(out)
