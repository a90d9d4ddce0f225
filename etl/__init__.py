"""etl: out-of-core ETL for large public data sets."""

__version__ = "0.1.0"
