"""Text tables for the terminal.

Query results are drawn by DuckDB itself (types under the names, fitted to the terminal's width); listings
(`etl status`, `etl datasus …`) by tabulate as plain aligned columns, easy to read and to grep.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any


def show(relation: Any, max_rows: int) -> None:
    """Print a DuckDB relation on stdout, up to max_rows rows, fitted to the terminal (or $COLUMNS; unbounded
    when piped)."""
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() or "COLUMNS" in os.environ else 10_000
    relation.show(max_width=width, max_rows=max_rows, null_value="NULL")


def show_rows(columns: dict[str, list[Any]]) -> None:
    """Print rows given column by column (name -> values) as aligned columns under their names."""
    from tabulate import tabulate

    rows = list(zip(*columns.values(), strict=True))
    print(tabulate(rows, headers=list(columns), tablefmt="simple", missingval="", disable_numparse=True))
