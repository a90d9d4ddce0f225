"""DATASUS as a domain: the catalogue of its FTP tree, the listing commands and the Python API.

from etl import datasus
paths = datasus.fetch("SIH", "RD", states=["SP"], years=[2023], months=[1, 2])   # Parquet, fetched once
admissions = datasus.scan("SIH", "RD", states=["SP"], years=[2023])             # staged rows, Polars lazy
datasus.export("SIH", "RD", "sp.parquet", states=["SP"])                       # staged rows to Parquet
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from etl.datasus.api import export, fetch, scan

__all__ = ["export", "fetch", "scan"]


def __getattr__(name: str):
    """export, fetch and scan, from etl.datasus.api at first use: the `etl` command builds its parser with
    etl.datasus.cli, and its other commands need not the catalogue (3 ms of a small `etl convert dbc`)."""
    if name in __all__:
        from etl.datasus import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
