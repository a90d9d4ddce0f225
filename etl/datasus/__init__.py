"""DATASUS as a domain: the catalogue of its FTP tree, the listing commands and the Python API.

from etl import datasus
paths = datasus.fetch("SIH", "RD", states=["SP"], years=[2023], months=[1, 2])   # Parquet, fetched once
admissions = datasus.scan("SIH", "RD", states=["SP"], years=[2023])             # staged rows, Polars lazy
datasus.export("SIH", "RD", "sp.parquet", states=["SP"])                       # staged rows to Parquet
"""

from etl.datasus.api import export, fetch, scan

__all__ = ["export", "fetch", "scan"]
