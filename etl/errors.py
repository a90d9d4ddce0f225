"""Errors raised by etl. Each carries the context needed to say what failed and what to try next."""

from __future__ import annotations


class EtlError(Exception):
    """Base class: something failed in a way the user can act on."""

    def __init__(
        self,
        message: str,
        *,
        dataset: str | None = None,
        file: str | None = None,
        position: str | None = None,
        hint: str | None = None,
    ):
        self.message = message
        self.dataset = dataset
        self.file = file
        self.position = position
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ", ".join(p for p in (self.file, self.position) if p)
        text = f"{where}: {self.message}" if where else self.message
        return f"{text}. {self.hint}" if self.hint else text


class ConfigError(EtlError):
    """The configuration (etl.toml, ETL_* variables or options) is invalid."""


class LockedError(EtlError):
    """Another etl command is writing to the same data directory."""


class SourceError(EtlError):
    """An input cannot be read: missing, malformed, or not what its kind expects."""


class FetchError(EtlError):
    """A transient network failure that outlasted its retries."""


class FetchFailures(FetchError):
    """Some files of a dataset could not be fetched; `fetched` are those that were, `failures` (file, error) the rest."""

    def __init__(self, fetched: list, failures: list[tuple[str, str]]):
        self.fetched, self.failures = fetched, failures
        super().__init__(
            f"{len(failures)} file(s) could not be fetched: " + "; ".join(f"{f}: {e}" for f, e in failures)
        )


class ConversionError(EtlError):
    """A file could not be converted to Parquet."""


class LoadError(EtlError):
    """A transform or load into DuckDB or PostgreSQL failed."""
