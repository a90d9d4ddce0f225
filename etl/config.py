"""Typed configuration from etl.toml, overridable by ETL_* environment variables and CLI options."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl.errors import ConfigError
from etl.kinds import get_source
from etl.memory import check_budget, parse_size

DEFAULT_MEMORY_LIMIT = "1GB"
# Dataset, schema and table names become folders under data/ and identifiers in DuckDB and PostgreSQL.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
NAME_RULE = "letters, digits and underscores, not starting with a digit, at most 63 characters"
# Settings that an ETL_<NAME> variable overrides (ETL_MEMORY_LIMIT, ETL_DATA_DIR, ETL_THREADS, ETL_SQL_DIR,
# ETL_ENGINE).
ENV_SETTINGS = ("memory_limit", "data_dir", "threads", "sql_dir", "engine")
ENGINES = ("local", "spark")


@dataclass
class Settings:
    """Where data lives and how much the machine may use."""

    data_dir: Path = Path("data")
    sql_dir: Path = Path("sql")
    memory_limit: int = parse_size(DEFAULT_MEMORY_LIMIT)
    threads: int = min(4, os.cpu_count() or 1)
    engine: str = "local"  # where conversions and transforms run: local, or spark (its [spark] table)

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def parquet_dir(self) -> Path:
        return self.data_dir / "parquet"

    @property
    def marts_dir(self) -> Path:
        return self.data_dir / "marts"

    @property
    def warehouse(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def state_db(self) -> Path:
        return self.data_dir / "state.sqlite"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"


@dataclass
class Dataset:
    """One dataset of etl.toml: its name, its kind of source, that source's options, and its label policy.

    `labels`: "text" (default) gives the staging views their decoded label columns; "codes" keeps the codes only
    (see etl/dictionary.py).
    """

    name: str
    kind: str
    options: Any
    labels: str = "text"


@dataclass
class Config:
    settings: Settings = field(default_factory=Settings)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    sections: dict[str, dict] = field(default_factory=dict)  # other top-level tables, e.g. [publish.postgres]
    path: Path | None = None


def _check_type(value: Any, tp: Any, where: str) -> Any:
    """Validate a TOML value against a dataclass field annotation; return it converted where needed."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check_type(value, arg, where)
            except ConfigError as e:
                errors.append(e)
        raise errors[0] if errors else ConfigError(f"{where}: unexpected value {value!r}")
    if origin is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, not {value!r}")
        (item,) = typing.get_args(tp)
        return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, not {value!r}")
        _, vt = typing.get_args(tp)
        return {str(k): _check_type(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a path, not {value!r}")
        return Path(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is typing.Any:
        return value
    if isinstance(tp, type) and (not isinstance(value, tp) or (tp is int and isinstance(value, bool))):
        raise ConfigError(f"{where} must be {tp.__name__}, not {value!r}")
    return value


def build_options(cls: type, raw: dict[str, Any], where: str) -> Any:
    """Build a dataclass from a TOML table, rejecting unknown keys and values of the wrong type."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}", hint=f"Valid keys: {', '.join(sorted(fields))}"
        )
    missing = [
        n
        for n, f in fields.items()
        if n not in raw and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing key {missing[0]!r}")
    values = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in raw.items()}
    try:
        return cls(**values)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: {e}") from None


def settings_from(
    raw: dict[str, Any], env: dict[str, str], overrides: dict[str, Any], base: Path | None, where: str
) -> Settings:
    """Settings from the file's [etl] table, then ETL_* variables, then CLI options, each winning over the last.

    Relative paths in the file start at the file's folder; those from the environment or CLI at the cwd.
    """
    raw = dict(raw)
    if base is not None:
        for name in ("data_dir", "sql_dir"):
            raw[name] = str(base / raw.get(name, getattr(Settings, name)))
    for name in ENV_SETTINGS:
        if f"ETL_{name.upper()}" in env:
            value: Any = env[f"ETL_{name.upper()}"]
            raw[name] = int(value) if name == "threads" and value.isdigit() else value
    raw.update({k: v for k, v in overrides.items() if v is not None})
    if "memory_limit" in raw:
        raw["memory_limit"] = check_budget(parse_size(raw["memory_limit"]))
    settings = build_options(Settings, raw, where)
    if settings.threads < 1:
        raise ConfigError(f"{where}.threads must be at least 1")
    if settings.engine not in ENGINES:
        raise ConfigError(f"{where}.engine: unknown engine {settings.engine!r}", hint="Use local or spark")
    return settings


def check_name(name: str, where: str) -> str:
    """A dataset, schema or table name that is safe as a folder and as an identifier, or a ConfigError."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(f"{where}: invalid name {name!r}", hint=f"Use {NAME_RULE} (e.g. sim_2022)")
    return name


def _check_publish_names(sections: dict[str, Any]) -> None:
    postgres = sections.get("publish", {}).get("postgres", {})
    if not isinstance(postgres, dict):
        return
    if "schema" in postgres:
        check_name(postgres["schema"], "[publish.postgres].schema")
    for i, table in enumerate(postgres.get("tables") or []):
        for part in str(table).split("."):
            check_name(part, f"[publish.postgres].tables[{i}]")


def load_config(
    path: Path | None = None,
    *,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
    with_datasets: bool = True,
) -> Config:
    """Load etl.toml (if given), apply ETL_* variables, then CLI overrides (e.g. memory_limit).

    With with_datasets=False the datasets are left out, unchecked: checking them imports every kind's source module.
    """
    env = dict(os.environ if env is None else env)
    doc: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found", hint="Pass --config PATH") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML: {e}") from None
    base = path.resolve().parent if path is not None else None
    settings = settings_from(doc.pop("etl", {}), env, overrides or {}, base, "[etl]")
    datasets = {}
    tables = doc.pop("datasets", {})
    for name, table in tables.items() if with_datasets else ():
        where = f"[datasets.{name}]"
        check_name(name, where)
        if not isinstance(table, dict) or "kind" not in table:
            raise ConfigError(f"{where}: missing key 'kind'")
        table = dict(table)
        kind = table.pop("kind")
        labels = table.pop("labels", "text")
        if labels not in ("text", "codes"):
            raise ConfigError(f'{where}.labels must be "text" or "codes", not {labels!r}')
        source = get_source(kind, where)
        options = build_options(source.Options, table, where)
        datasets[name] = Dataset(name=name, kind=kind, options=options, labels=labels)
    _check_publish_names(doc)
    return Config(settings=settings, datasets=datasets, sections=doc, path=path)
