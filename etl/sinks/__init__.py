"""Where converted data goes: Parquet files, the DuckDB warehouse, PostgreSQL."""
