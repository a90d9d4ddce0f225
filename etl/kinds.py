"""The kinds of source (`kind` in etl.toml, KIND in `etl convert KIND`) and the module that implements each.

Below the config and the sources both: the config names a dataset's source by its kind without importing
every source module, and a module is imported only when a dataset of its kind is used (start-up stays fast).
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

from etl.errors import ConfigError

KINDS = {
    "cnv": "etl.sources.cnv",
    "csv": "etl.sources.csv",
    "dbf": "etl.sources.dbf",
    "dbc": "etl.sources.dbc",
    "datasus": "etl.sources.datasus",
    "nvd": "etl.sources.nvd",
    "stat": "etl.sources.stat",
    "kev": "etl.sources.kev",
    "epss": "etl.sources.epss",
    "cwe": "etl.sources.cwe",
    "nvd_history": "etl.sources.nvd_history",
}


def get_source(kind: str, where: str = "") -> ModuleType:
    """The source module of a kind; a ConfigError naming the known kinds otherwise."""
    if kind not in KINDS:
        raise ConfigError(
            f"{where + ': ' if where else ''}unknown kind {kind!r}",
            hint=f"Known kinds: {', '.join(sorted(KINDS))}",
        )
    return importlib.import_module(KINDS[kind])


def command_options(source: ModuleType, command: str) -> list[str]:
    """The Options fields `etl convert|fetch KIND` takes as flags: the source's CONVERT_OPTIONS or FETCH_OPTIONS,
    by default (a source that only converts) every field but `paths`."""
    names = getattr(source, f"{command.upper()}_OPTIONS", None)
    if names is None:
        names = [f.name for f in dataclasses.fields(source.Options) if f.name != "paths"]
    return list(names)
