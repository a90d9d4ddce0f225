"""DATASUS as a domain: the catalogue of its FTP tree, the listing commands and the Python API.

from etl import datasus
paths = datasus.fetch("SIH", "RD", states=["SP"], years=[2023], months=[1, 2])   # Parquet, fetched once
admissions = datasus.scan("SIH", "RD", states=["SP"], years=[2023])             # staged rows, Polars lazy
"""

from etl.datasus.api import fetch, scan

__all__ = ["fetch", "scan"]
