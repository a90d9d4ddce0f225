"""Statistical files: SAS (.sas7bdat, .xpt), SPSS (.sav, .zsav, .por) and Stata (.dta), read by pyreadstat in chunks.

Chunks are sized from the budget and the row width; value labels go to `_labels/<stem>.parquet` (variable,
value, label) and, with `apply_labels`, replace the codes in the data; variable labels are kept as Parquet field
metadata (`label`); dates and datetimes arrive as dates and timestamps.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from etl.config import Dataset
from etl.errors import ConversionError, SourceError
from etl.extras import require
from etl.files import atomic_path
from etl.memory import batch_rows, row_group_bytes
from etl.sinks.parquet import ParquetSink, with_lineage
from etl.sources import Context, ConvertResult

logger = logging.getLogger(__name__)

READERS = {
    ".sas7bdat": "read_sas7bdat",
    ".xpt": "read_xport",
    ".sav": "read_sav",
    ".zsav": "read_sav",
    ".por": "read_por",
    ".dta": "read_dta",
}


@dataclass
class Options:
    paths: list[str] = field(default_factory=list, metadata={"help": "local files or globs (datasets)"})
    encoding: str | None = field(default=None, metadata={"help": "text encoding, when the file does not say"})
    apply_labels: bool = field(default=False, metadata={"help": "replace coded values by their value labels"})


def _reader(path: Path):
    pyreadstat = require("pyreadstat")

    name = READERS.get(path.suffix.lower())
    if name is None:
        raise SourceError(f"not a statistical file this reads ({', '.join(READERS)})", file=str(path))
    return getattr(pyreadstat, name)


def convert_file(path: Path, out_dir: Path, dataset: Dataset, ctx: Context) -> ConvertResult:
    pyreadstat = require("pyreadstat")

    path, opts = Path(path), dataset.options
    if not path.is_file():
        raise SourceError("file not found", file=str(path))
    reader = _reader(path)
    name, source_file = ctx.output_stem(path, path.stem), ctx.source_name(path)
    kwargs = {"encoding": opts.encoding} if opts.encoding else {}
    if "apply_value_formats" in inspect.signature(reader).parameters:  # not for .xpt and .por
        kwargs.update(apply_value_formats=opts.apply_labels, formats_as_category=False)
    try:
        _, meta = reader(str(path), metadataonly=True, **kwargs)
        # A chunk exists as pyreadstat's buffers, a Polars frame and Arrow batches at once: ~4x its raw width.
        widths = getattr(meta, "variable_storage_width", None) or {}
        row_bytes = sum(widths.get(c) or 8 for c in meta.column_names) + 16 * len(meta.column_names)
        rows = batch_rows(ctx.settings.memory_limit, 4 * row_bytes)
        out = Path(out_dir) / f"{name}.parquet"
        schema = None
        with ParquetSink(out, row_group_bytes=row_group_bytes(ctx.settings.memory_limit)) as sink:
            for df, meta in pyreadstat.read_file_in_chunks(
                reader, str(path), chunksize=rows, output_format="polars", **kwargs
            ):
                table = df.to_arrow()
                schema = schema or _schema(table.schema, meta)
                for batch in table.cast(schema).to_batches():
                    sink.write(with_lineage(batch, source_file, sink.rows + 1))
    except pyreadstat.ReadstatError as e:
        raise ConversionError(
            f"cannot read: {e}", file=str(path), hint="The file may be truncated or corrupt"
        ) from None
    _write_labels(meta, Path(out_dir) / "_labels" / f"{name}.parquet")
    return ConvertResult.written(sink)


def _schema(first: pa.Schema, meta) -> pa.Schema:
    """The first chunk's types, with variable labels; a column null throughout it takes its declared kind."""
    labels = dict(zip(meta.column_names, meta.column_labels or [], strict=False))
    fields = []
    for f in first:
        typ = f.type
        if pa.types.is_null(typ) or pa.types.is_large_string(typ):
            typ = (
                pa.string()
                if meta.readstat_variable_types.get(f.name) == "string" or pa.types.is_large_string(typ)
                else pa.float64()
            )
        meta_ = {"label": labels[f.name]} if labels.get(f.name) else None
        fields.append(pa.field(f.name, typ, metadata=meta_))
    return pa.schema(fields)


def _write_labels(meta, out: Path) -> None:
    rows = [
        (var, str(value), label)
        for var, mapping in (meta.variable_value_labels or {}).items()
        for value, label in mapping.items()
    ]
    if not rows:
        out.unlink(missing_ok=True)
        return
    table = pa.table(
        {"variable": [r[0] for r in rows], "value": [r[1] for r in rows], "label": [r[2] for r in rows]}
    )
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
