"""Arrow values built from buffers, for the readers' hot paths.

pyarrow imports pandas (0.4 s and 40-50 MB of RSS, measured here) the first time `pa.array`, `pa.scalar`,
`to_numpy` or a Python literal in a compute call converts a Python or numpy value. A conversion of a few
seconds under a tight budget should not pay for that, so the readers build their Arrow values with these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

NULL_TEXT = pa.nulls(1, pa.string())[0]


def text_array(values: Sequence[bytes]) -> pa.StringArray:
    """Byte strings (bytes or buffers), back to back, as one string array; not UTF-8 is an error."""
    lengths = np.fromiter(map(len, values), dtype=np.int32, count=len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    strings = pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(b"".join(values)))
    strings.validate(full=True)  # UTF-8, as Parquet's strings must be
    return strings


def optional_text_array(values: Sequence[str | None]) -> pa.StringArray:
    """Python strings as one string array, null where None."""
    strings = text_array([b"" if v is None else v.encode() for v in values])
    if all(v is not None for v in values):
        return strings
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    buffers = strings.buffers()
    return pa.StringArray.from_buffers(
        len(values), buffers[1], buffers[2], pa.py_buffer(np.packbits(valid, bitorder="little"))
    )


def text_scalar(value: str) -> pa.StringScalar:
    return text_array([value.encode()])[0]


def int64_array(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """A numpy array as Arrow int64, null where not valid."""
    validity = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    data = pa.py_buffer(np.ascontiguousarray(values, dtype=np.int64))
    return pa.Array.from_buffers(pa.int64(), len(values), [validity, data])


def int_scalar(value: int, typ: pa.DataType) -> pa.Scalar:
    """An integer scalar (`pa.scalar` and Python literals in compute calls import pandas)."""
    data = pa.py_buffer(np.array([value], dtype=typ.to_pandas_dtype()))
    return pa.Array.from_buffers(typ, 1, [None, data])[0]


def bool_array(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """A numpy bool array as Arrow booleans, null where not valid."""
    bits = [pa.py_buffer(np.packbits(b, bitorder="little")) for b in (valid, values)]
    return pa.Array.from_buffers(pa.bool_(), len(values), bits)


FALSE = bool_array(np.array([False]), valid=np.array([True]))[0]  # `pa.scalar(False)` imports pandas


def date_scalar(day: dt.date) -> pa.Date32Scalar:
    days = np.array([(day - dt.date(1970, 1, 1)).days], dtype=np.int32)
    return pa.Array.from_buffers(pa.date32(), 1, [None, pa.py_buffer(days)])[0]
