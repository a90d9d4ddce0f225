"""Text tables for the terminal.

Query results are drawn by DuckDB itself (types under the names, fitted to the terminal's width); listings
(`etl status`, `etl datasus …`) by tabulate as plain aligned columns, easy to read and to grep.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterable
from typing import Any

# The formats of query results (`etl sql --format`, the shell's .format).
FORMATS = ("table", "csv", "json", "ndjson")


def show(relation: Any, max_rows: int) -> None:
    """Print a DuckDB relation on stdout, up to max_rows rows, fitted to the terminal (or $COLUMNS; unbounded
    when piped)."""
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() or "COLUMNS" in os.environ else 10_000
    relation.show(max_width=width, max_rows=max_rows, null_value="NULL")


def show_rows(records: Iterable[Any], columns: dict[str, str | Callable[[Any], Any]]) -> None:
    """Print records (dicts or objects) as aligned columns: `columns` maps each heading to the record's field
    name, or to a function of the record."""
    from tabulate import tabulate

    def getter(field: str | Callable[[Any], Any]) -> Callable[[Any], Any]:
        if callable(field):
            return field
        return lambda r: r[field] if isinstance(r, dict) else getattr(r, field)

    getters = [getter(f) for f in columns.values()]
    rows = [[get(r) for get in getters] for r in records]
    print(tabulate(rows, headers=list(columns), tablefmt="simple", missingval="", disable_numparse=True))
