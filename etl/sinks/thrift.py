"""Thrift's compact protocol, as Parquet footers are written in it: a struct decoded to a tree of fields and
encoded back byte for byte, so that the sink can move row groups between files (etl.sinks.parquet).

A struct is a list of `Field`s in their order; a list is `ThriftList(element type, values)`. Values keep their
wire type, so nothing needs Parquet's schema of the footer; callers edit fields by id.
"""

from __future__ import annotations

from dataclasses import dataclass

STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)


@dataclass
class Field:
    id: int
    type: int
    value: object


@dataclass
class ThriftList:
    type: int  # of the elements
    values: list


def field(fields: list[Field], field_id: int) -> Field | None:
    return next((f for f in fields if f.id == field_id), None)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = memoryview(data).cast("B"), 0  # unsigned: a pyarrow Buffer's view is signed

    def byte(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def take(self, n: int) -> bytes:
        self.pos += n
        return bytes(self.data[self.pos - n : self.pos])

    def value(self, kind: int) -> object:
        if kind in (I16, I32, I64):
            return self.zigzag()
        if kind == BINARY:
            return self.take(self.varint())
        if kind == STRUCT:
            return self.struct()
        if kind in (LIST, SET):
            head = self.byte()
            size = head >> 4 if head >> 4 != 15 else self.varint()
            element = head & 0x0F
            return ThriftList(element, [self.value(element) for _ in range(size)])
        if kind in (BYTE, TRUE, FALSE):  # a bool in a list is one byte; as a field, its type says it
            return self.byte()
        if kind == DOUBLE:
            return self.take(8)
        raise ValueError(f"Thrift type {kind} is not in Parquet footers")

    def struct(self) -> list[Field]:
        fields, last = [], 0
        while (head := self.byte()) != STOP:
            kind, delta = head & 0x0F, head >> 4
            last = last + delta if delta else self.zigzag()
            value = kind == TRUE if kind in (TRUE, FALSE) else self.value(kind)
            fields.append(Field(last, kind, value))
        return fields


def decode(data: bytes) -> list[Field]:
    """The struct encoded in `data`."""
    return _Reader(data).struct()


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zigzag(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


def _value(kind: int, value: object) -> bytes:
    if kind in (I16, I32, I64):
        return _zigzag(value)
    if kind == BINARY:
        return _varint(len(value)) + value
    if kind == STRUCT:
        return encode(value)
    if kind in (LIST, SET):
        size = len(value.values)
        head = bytes([size << 4 | value.type]) if size < 15 else bytes([0xF0 | value.type]) + _varint(size)
        return head + b"".join(_value(value.type, v) for v in value.values)
    if kind in (BYTE, TRUE, FALSE):
        return bytes([value])
    if kind == DOUBLE:
        return value
    raise ValueError(f"Thrift type {kind} is not in Parquet footers")


def encode(fields: list[Field]) -> bytes:
    """`fields` as a struct (the inverse of decode)."""
    out, last = bytearray(), 0
    for f in fields:
        kind = (TRUE if f.value else FALSE) if f.type in (TRUE, FALSE) else f.type
        delta = f.id - last
        out += bytes([delta << 4 | kind]) if 0 < delta <= 15 else bytes([kind]) + _zigzag(f.id)
        if kind not in (TRUE, FALSE):
            out += _value(kind, f.value)
        last = f.id
    out.append(STOP)
    return bytes(out)
