"""Helpers for notebooks: the warehouse and the Parquet zone with etl's settings, found from any folder.

from etl import explore
con = explore.warehouse()                 # read-only DuckDB, memory settings applied
deaths = explore.parquet("sim_csv")       # a Polars LazyFrame over the dataset's converted files
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from etl.config import Config, load_config
from etl.errors import EtlError

if TYPE_CHECKING:
    from etl.query import ReadOnlyConnection


def find_config(start: Path | None = None) -> Path | None:
    """The nearest etl.toml in the current folder or above it (a notebook in notebooks/ finds the repo's)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "etl.toml").is_file():
            return folder / "etl.toml"
    return None


def config(config_path: str | Path | None = None) -> Config:
    return load_config(Path(config_path) if config_path else find_config())


def warehouse(
    config_path: str | Path | None = None, allow_paths: list[str | Path] = ()
) -> ReadOnlyConnection:
    """A read-only connection to the warehouse under the memory budget; it never blocks a running `etl run`.

    As with `etl sql`, it reads the data directory's Parquet and `allow_paths` only, and refuses SQL that writes
    files, attaches databases, loads extensions or changes settings.
    """
    from etl import query

    settings = config(config_path).settings
    return query.ReadOnlyConnection(query.connect(settings, [Path(p) for p in allow_paths]))


def parquet(dataset: str, table: str = "records", config_path: str | Path | None = None):
    """A Polars LazyFrame over the Parquet files of a dataset's table (as the state store lists them)."""
    import polars as pl

    from etl.state import StateStore

    settings = config(config_path).settings
    state = StateStore(settings.state_db)
    try:
        files = [
            r.outputs[table] for r in state.files(dataset) if r.stage == "converted" and table in r.outputs
        ]
    finally:
        state.close()
    if not files:
        raise EtlError(f"no converted files for {dataset}.{table}", hint="Run `make etl`, or check the names")
    return pl.scan_parquet(files)
