"""Text tables for the terminal.

Listings (`etl status`, `etl datasus …`) are drawn by tabulate as plain aligned columns, easy to read and to
grep; query results by DuckDB itself (etl/query.py).
"""

from __future__ import annotations

from typing import Any


def show_rows(columns: dict[str, list[Any]]) -> None:
    """Print rows given column by column (name -> values) as aligned columns under their names."""
    from tabulate import tabulate

    rows = list(zip(*columns.values(), strict=True))
    print(tabulate(rows, headers=list(columns), tablefmt="simple", missingval="", disable_numparse=True))
