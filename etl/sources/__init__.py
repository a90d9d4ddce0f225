"""Sources: one module per kind of input (the `kind` of a dataset in etl.toml, and of `etl convert KIND`).

A source module (etl/sources/<kind>.py, registered in etl.kinds.KINDS) provides:

- ``Options``: a dataclass of the dataset's keys in etl.toml (besides ``kind``), validated by etl.config.
  The CLI turns each field into a flag of `etl convert KIND` / `etl fetch KIND` (``batch_rows`` ->
  ``--batch-rows``; a bool -> ``--x/--no-x``); ``field(metadata={"help": ...})`` is its help text.
- ``acquire(dataset, raw_dir, ctx) -> list[Path]`` (optional): make the raw inputs present under raw_dir
  (download them, or generate the sample) and return the raw files to convert, in order. Without it the
  dataset's ``paths`` option (local paths or globs) lists them.
- ``convert_file(path, out_dir, dataset, ctx) -> ConvertResult``: convert one raw file to Parquet:
  ``out_dir/<stem>.parquet`` for a single-table kind (its table is named ``records``),
  ``out_dir/<table>/<stem>.parquet`` for several tables;
  rejected rows under ``out_dir/_rejects/``. Written atomically, with lineage columns.
  The stem is ``ctx.output_stem(path, stem(path))`` and ``_source_file`` is ``ctx.source_name(path)``: the run
  tells apart inputs that share a stem (``y2022/obitos.csv``, ``y2023/obitos.csv``; ``x.csv``, ``x.csv.gz``).
- optionally ``stem(path) -> str``: the name of an input's outputs (default: the file name without extension),
  ``read_batches(path, …) -> Iterator[pyarrow.RecordBatch]``, the reader contract, and
  ``sql_folders(dataset) -> list[str]``: the folders under sql/ whose files transform the dataset (default: the kind).
- optionally ``convert_inputs(paths) -> list[(path, reason | None)]``: what `etl convert KIND` converts for its
  inputs (a folder may stand for several), with the reason it skips one.
- ``acquire`` may raise ``FetchFailures`` carrying the files it did fetch: the run converts those, and records
  each failed file.
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from etl.errors import SourceError
from etl.files import distinct_stems

if TYPE_CHECKING:
    from etl.config import Settings
    from etl.progress import Progress
    from etl.sinks.parquet import ParquetSink
    from etl.state import StateStore

SINGLE_TABLE = "records"


def map_here(fn: Callable, items: list) -> list:
    """fn over items in this process: a Context's parallel_map where no engine gives one (and Spark's)."""
    return [fn(item) for item in items]


@dataclass
class Context:
    """What a stage needs besides its inputs: settings, where relative paths start, progress reporting."""

    settings: Settings
    base_dir: Path = Path(".")
    progress: Callable[..., Progress] | None = None
    state: StateStore | None = None
    # Output stems of the inputs being converted, told apart where two share one (see name_inputs).
    stems: dict[Path, str] = field(default_factory=dict)
    # `fn` over items, on the engine's worker processes where it has them (fn and items picklable); for
    # acquire's CPU-bound work such as generating sample files.
    parallel_map: Callable[[Callable, list], list] = map_here

    def name_inputs(self, paths: list[Path], source: ModuleType) -> None:
        """Give the inputs of one dataset (or one `etl convert`) distinct output names, before converting them."""
        try:
            self.stems = distinct_stems(paths, getattr(source, "stem", stem))
        except ValueError as e:
            raise SourceError(str(e)) from None

    def output_stem(self, path: Path, default: str) -> str:
        """The name of an input's Parquet files (without `.parquet`): its stem unless another input shares it."""
        return self.stems.get(Path(path).resolve(), default)

    def source_name(self, path: Path) -> str:
        """An input's `_source_file`: its file name, with the folders that tell it from another of that name."""
        told = self.stems.get(Path(path).resolve(), "")
        return f"{told.rsplit('/', 1)[0]}/{Path(path).name}" if "/" in told else Path(path).name

    def state_key(self, path: Path) -> str:
        """How the state store names a raw file: relative to the data directory when under it."""
        path = Path(path).resolve()
        try:
            return str(path.relative_to(self.settings.data_dir.resolve()))
        except ValueError:
            return str(path)

    def resolve(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def bar(self, total: int | None, unit: str, desc: str) -> Progress:
        from etl.progress import Progress

        return self.progress(total=total, unit=unit, desc=desc) if self.progress else Progress()


@dataclass
class ConvertResult:
    """What converting one raw file produced. Input rows = output rows + rejected rows."""

    rows_in: int
    rows_out: int
    rows_rejected: int
    outputs: dict[str, Path]  # table name -> Parquet file; a single-table kind names its table SINGLE_TABLE
    bytes_out: int = 0
    nulled: dict[str, int] = field(default_factory=dict)  # values that could not be typed, per column
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def written(cls, sink: ParquetSink, rejected: int = 0) -> ConvertResult:
        """A single-table result: what the sink wrote, plus the rows rejected on the way."""
        return cls(
            rows_in=sink.rows + rejected,
            rows_out=sink.rows,
            rows_rejected=rejected,
            outputs={SINGLE_TABLE: sink.path} if sink.rows else {},
            bytes_out=sink.bytes,
        )


def stem(path: Path) -> str:
    """The default name of an input's outputs: its file name without extension (a source may define its own)."""
    return Path(path).stem


def local_files(patterns: list[str], ctx: Context) -> list[Path]:
    """The files matching a dataset's `paths` (globs resolved from the config's folder), in name order.

    A path that does not exist, or patterns that match no file at all, are a SourceError.
    """
    files: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(ctx.resolve(pattern))))
        if not matches and not glob.has_magic(pattern):
            raise SourceError(f"{ctx.resolve(pattern)} does not exist", hint="Check the dataset's paths")
        files += [Path(m) for m in matches if not m.endswith((".part", ".tmp"))]
    if patterns and not files:
        raise SourceError(
            f"no file matches {', '.join(str(ctx.resolve(p)) for p in patterns)}",
            hint="Check the dataset's paths",
        )
    return files
