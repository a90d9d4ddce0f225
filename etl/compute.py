"""The Arrow compute functions of the readers' and the Parquet sink's hot paths, without `import pyarrow.compute`.

That import builds a Python wrapper, and a docstring scraped from its options class, for each of Arrow's ~290
compute functions: 23 ms of a small `etl convert dbc`'s 260 (whole process, medians of 21 pairs). These call the
same C++ functions by name through `pyarrow._compute`, the extension module pyarrow.compute re-exports them from,
as its own wrappers do. An array's methods that run a compute function (`cast`, `take`, `dictionary_encode`,
`is_null`...) import pyarrow.compute the first time: the hot paths call the functions here instead.
"""

from __future__ import annotations

import pyarrow as pa
from pyarrow._compute import (
    CastOptions,
    MatchSubstringOptions,
    ReplaceSubstringOptions,
    StrftimeOptions,
    StrptimeOptions,
    TrimOptions,
    call_function,
)


def cast(values, target_type: pa.DataType) -> pa.Array:
    """pc.cast(values, target_type): a safe cast."""
    return call_function("cast", [values], CastOptions.safe(target_type))


def take(values, indices) -> pa.Array:
    return call_function("take", [values, indices])


def dictionary_encode(values) -> pa.Array:
    return call_function("dictionary_encode", [values])


def if_else(condition, when_true, when_false) -> pa.Array:
    return call_function("if_else", [condition, when_true, when_false])


def equal(left, right) -> pa.Array:
    return call_function("equal", [left, right])


def and_(left, right) -> pa.Array:
    return call_function("and", [left, right])


def invert(values) -> pa.Array:
    return call_function("invert", [values])


def is_valid(values) -> pa.Array:
    return call_function("is_valid", [values])


def is_null(values) -> pa.Array:
    return call_function("is_null", [values])


def coalesce(*values) -> pa.Array:
    """The first non-null of the arguments, value by value (what pc.fill_null calls, given an Arrow scalar)."""
    return call_function("coalesce", list(values))


def indices_nonzero(values) -> pa.Array:
    return call_function("indices_nonzero", [values])


def sum(values) -> pa.Scalar:  # noqa: A001 (pc.sum's name)
    return call_function("sum", [values])


def count_distinct(values) -> pa.Scalar:
    return call_function("count_distinct", [values])


def ascii_rtrim(values, characters: str) -> pa.Array:
    return call_function("ascii_rtrim", [values], TrimOptions(characters))


def utf8_trim(values, characters: str) -> pa.Array:
    return call_function("utf8_trim", [values], TrimOptions(characters))


def match_substring_regex(values, pattern: str) -> pa.Array:
    return call_function("match_substring_regex", [values], MatchSubstringOptions(pattern))


def replace_substring(values, pattern: str, replacement: str) -> pa.Array:
    return call_function("replace_substring", [values], ReplaceSubstringOptions(pattern, replacement))


def replace_substring_regex(values, pattern: str, replacement: str) -> pa.Array:
    return call_function("replace_substring_regex", [values], ReplaceSubstringOptions(pattern, replacement))


def strptime(values, format: str, unit: str, error_is_null: bool = False) -> pa.Array:  # noqa: A002
    return call_function("strptime", [values], StrptimeOptions(format, unit, error_is_null))


def strftime(values, format: str) -> pa.Array:  # noqa: A002
    return call_function("strftime", [values], StrftimeOptions(format))
