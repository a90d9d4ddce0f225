"""The Python API for notebooks and scripts: fetch a selection as Parquet, scan its staged, labelled rows.

Both read etl.toml from the current folder up (as etl.explore does) and keep to its data directory, state store
and memory budget, so a notebook and `etl run` share what was fetched and converted.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

from etl.config import Config, Dataset
from etl.datasus.catalog import check_group, get_system, parse_name, wanted
from etl.errors import ConfigError, EtlError

if TYPE_CHECKING:
    import polars as pl


def load(
    config: str | Path | None = None, *, data_dir: str | Path | None = None, memory_limit=None
) -> Config:
    """etl.toml (the given one, else the nearest from the current folder up) with these settings overriding it."""
    from etl.config import load_config
    from etl.explore import find_config

    path = Path(config) if config else find_config()
    overrides = {"data_dir": str(data_dir) if data_dir else None, "memory_limit": memory_limit}
    return load_config(path, overrides=overrides)


def dataset_for(
    config: Config,
    system: str,
    group: str,
    states: list[str] | None = None,
    years: list[int] | None = None,
    months: list[int] | None = None,
    base_url: str | None = None,
    dataset: str | None = None,
) -> Dataset:
    """The dataset a system/group selection is fetched into and compared with.

    `dataset` names one of the config's `datasus` datasets (a sample too) with this system and group. Otherwise a
    `datasus` dataset of the config for that system and group (not a sample, not local paths) is used with its
    options (base_url, encoding, keep_raw, …) and this selection in place of its own (None selects everything);
    otherwise a dataset named `<system>_<group>` (`sih_rd`; `sih_rd_ftp` when the config already uses that name
    for something else).
    """
    from etl.sources.datasus import Options

    spec = get_system(system)
    group = check_group(spec, group)
    selection = {"states": states or [], "years": years or [], "months": months or []}
    if base_url:
        selection["base_url"] = base_url
    if dataset is not None:
        ds = config.datasets.get(dataset)
        if ds is None or ds.kind != "datasus" or (ds.options.system, ds.options.group) != (spec.name, group):
            mine = [n for n, d in config.datasets.items() if d.kind == "datasus"]
            raise ConfigError(
                f"the config has no {spec.name} {group} dataset named {dataset!r}",
                hint=f"Its datasus datasets: {', '.join(mine) or 'none'}",
            )
        return dataclasses.replace(ds, options=dataclasses.replace(ds.options, **selection))
    for ds in config.datasets.values():
        opts = ds.options
        if (
            ds.kind == "datasus"
            and (opts.system, opts.group) == (spec.name, group)
            and not (opts.sample or opts.paths)
        ):
            return dataclasses.replace(ds, options=dataclasses.replace(opts, **selection))
    name = f"{spec.name}_{group}".lower()
    name = f"{name}_ftp" if name in config.datasets else name
    try:
        options = Options(system=spec.name, group=group, **selection)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None
    return Dataset(name, "datasus", options)


def fetch(
    system: str,
    group: str,
    states: list[str] | None = None,
    years: list[int] | None = None,
    months: list[int] | None = None,
    *,
    config: str | Path | None = None,
    data_dir: str | Path | None = None,
    memory_limit: str | int | None = None,
    force: bool = False,
    base_url: str | None = None,
) -> list[Path]:
    """Fetch and convert a selection (only what is missing or changed); the Parquet files, in name order.

    `etl.datasus.fetch("SIH", "RD", states=["SP"], years=[2023], months=[1, 2])`. A file that fails is recorded
    and the others still convert; then an EtlError names the failures.
    """
    from etl.pipeline import Pipeline

    cfg = load(config, data_dir=data_dir, memory_limit=memory_limit)
    ds = dataset_for(cfg, system, group, states, years, months, base_url)
    pipeline = Pipeline(cfg, force=force)
    try:
        summary = pipeline.convert([ds], command=f"datasus fetch {ds.options.system} {ds.options.group}")
        if summary.failed:
            failures = "; ".join(f"{s.file or s.dataset}: {s.error}" for s in summary.failed)
            raise EtlError(
                f"{len(summary.failed)} of the selection's files failed: {failures}",
                hint="Run the same call again: what was converted is kept and only the rest is retried",
            )
        steps = [s for s in summary.steps if s.step == "convert" and s.status in ("ok", "skipped")]
        records = [pipeline.state.get_file(ds.name, s.file) for s in steps]
        return sorted(Path(r.outputs["records"]) for r in records if r and "records" in r.outputs)
    finally:
        pipeline.close()


def scan(
    system: str,
    group: str,
    states: list[str] | None = None,
    years: list[int] | None = None,
    months: list[int] | None = None,
    *,
    config: str | Path | None = None,
    data_dir: str | Path | None = None,
    memory_limit: str | int | None = None,
    dataset: str | None = None,
) -> pl.LazyFrame:
    """A Polars LazyFrame over the staged, labelled rows of what was converted of a selection (no download).

    The rows are those of the dataset `fetch` converts into, or of the config's `dataset` named (`make etl`'s
    sample: `scan("SIH", "RD", dataset="sih_rd")`).

    The group's staging view (sql/datasus/<system>_<group>/, e.g. SIH RD `stg_internacoes`) is evaluated by
    DuckDB over the selection's Parquet files under the memory budget; the frame streams DuckDB's record batches,
    pushing Polars' column selections and filters down into the query, so the data is never loaded whole.
    """
    from etl.pipeline import Pipeline
    from etl.reference import load_reference
    from etl.sinks import duckdb as warehouse
    from etl.sinks.duckdb import quote_ident
    from etl.transform import run_transform

    cfg = load(config, data_dir=data_dir, memory_limit=memory_limit)
    ds = dataset_for(cfg, system, group, states, years, months, dataset=dataset)
    opts = ds.options
    view = get_system(opts.system).groups[opts.group].staging
    if view is None:
        raise EtlError(
            f"{opts.system} {opts.group} has no staging view",
            hint="Read its Parquet with etl.datasus.fetch(...) and polars.scan_parquet",
        )
    pipeline = Pipeline(cfg, writes=False)  # a reader: it never waits for a run
    try:
        files = _converted(pipeline, ds)
        sql_files = pipeline.transform_files(ds)
    finally:
        pipeline.close()
    os.environ.setdefault("POLARS_MAX_THREADS", str(cfg.settings.threads))
    con = warehouse.connect(cfg.settings)
    schema = quote_ident(ds.name)
    con.execute(f"CREATE SCHEMA {schema}")
    con.execute(f"SET schema = {warehouse.quote_literal(ds.name)}")
    con.execute(
        "CREATE VIEW records AS SELECT * FROM read_parquet("
        f"[{', '.join(warehouse.quote_literal(str(f)) for f in files)}], union_by_name = true)"
    )
    views = [warehouse.View(ds.name, "records", files)]
    load_reference(con)
    staged = False
    for (
        path
    ) in sql_files:  # up to the staging view, then its dictionary: the marts are the warehouse's business
        if not staged or path.suffix == ".csv":
            run_transform(con, cfg.settings, ds.name, path, views, ds.labels)
        staged = staged or bool(
            con.execute(
                "SELECT 1 FROM duckdb_views() WHERE schema_name = ? AND view_name = ?", [ds.name, view]
            ).fetchall()
        )
    if not staged:
        raise EtlError(
            f"no SQL file creates {ds.name}.{view}", hint=f"Looked in: {', '.join(map(str, sql_files))}"
        )
    return con.sql(f"SELECT * FROM {schema}.{quote_ident(view)}").pl(lazy=True)


def _converted(pipeline, ds: Dataset) -> list[Path]:
    """The Parquet files the state store lists as converted for the dataset's selection."""
    opts = ds.options
    spec = get_system(opts.system)
    states = ["BR"] if spec.is_national(opts.group) else opts.states
    files = []
    for rec in pipeline.state.files(ds.name):
        parsed = parse_name(Path(rec.path).name, spec)
        if (
            rec.stage in ("converted", "loaded")
            and "records" in rec.outputs
            and parsed
            and wanted(parsed, opts.group, states, opts.years, opts.months)
            and Path(rec.outputs["records"]).exists()
        ):
            files.append(Path(rec.outputs["records"]))
    if not files:
        raise EtlError(
            f"nothing of {opts.system} {opts.group} matching the selection is converted in {ds.name}",
            hint=f'Fetch it first: etl.datasus.fetch("{opts.system}", "{opts.group}", states=…, years=…)',
        )
    return sorted(files)
