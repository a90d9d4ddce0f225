"""Features only some users need come as extras of the package; a missing one is one clear error naming it."""

from __future__ import annotations

import importlib
from types import ModuleType

from etl.errors import EtlError

# module -> (extra, what needs it)
EXTRAS = {
    "psycopg": ("postgres", "PostgreSQL"),
    "pyreadstat": ("stat", "Reading SAS, SPSS and Stata files"),
    "matplotlib": ("report", "Drawing a run's report"),
}


def require(module: str) -> ModuleType:
    """The module of an extra, or an EtlError saying which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra, feature = EXTRAS[module]
        raise EtlError(
            f"{feature} needs the {extra!r} extra", hint=f"Install it with pip install 'etl[{extra}]'"
        ) from None
