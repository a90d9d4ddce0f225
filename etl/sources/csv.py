"""Large CSV files: DuckDB's parallel reader and Parquet writer, with rejects kept and types inferred robustly.

The conversion runs as one DuckDB `COPY (SELECT … FROM read_csv(…)) TO '….parquet'`: the fastest engine measured
here for this job (see benchmarks/bench_csv.py), so CSV does not go through Python batches and the ParquetSink,
but it keeps the same contracts: atomic output, lineage columns, rejects with line, raw text and reason.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from etl.config import Dataset
from etl.errors import ConfigError, SourceError
from etl.sinks.duckdb import connect, quote_ident, quote_literal
from etl.sinks.parquet import atomic_path
from etl.sources import SINGLE_TABLE, Context, ConvertResult

logger = logging.getLogger(__name__)

NATIVE_ENCODINGS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8",
    "latin-1": "latin-1",
    "latin1": "latin-1",
    "iso-8859-1": "latin-1",
    "utf-16": "utf-16",
}
# Share of a column's sampled values that must cast for the column to get that type; the rest are rejected rows.
TYPE_TOLERANCE = 0.999
INFER_ROWS = 100_000
CANDIDATE_TYPES = ("BIGINT", "DOUBLE", "DATE", "TIMESTAMP")
TRANSCODE_CHUNK = 4 * 1024 * 1024


@dataclass
class Options:
    paths: list[str] = field(default_factory=list, metadata={"help": "local files or globs (datasets)"})
    urls: list[str] = field(default_factory=list, metadata={"help": "http(s) URLs to download into data/raw"})
    encoding: str = field(default="utf-8", metadata={"help": "utf-8, latin-1, cp1252, … (default utf-8)"})
    delimiter: str | None = field(default=None, metadata={"help": "field separator (default: detected)"})
    quote: str = field(default='"', metadata={"help": "quote character"})
    header: bool = field(default=True, metadata={"help": "the first line names the columns"})
    schema: dict[str, str] = field(
        default_factory=dict, metadata={"help": "column types, e.g. IDADE=INTEGER,DT_OBITO=DATE"}
    )
    sample: bool = field(default=False, metadata={"help": "generate the sample CSV when it is missing"})
    sample_rows: int = field(default=300_000, metadata={"help": "rows of the generated sample"})

    def __post_init__(self) -> None:
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(
                f"unknown encoding {self.encoding!r}", hint="Use utf-8, latin-1 or cp1252"
            ) from None
        if self.delimiter is not None and len(self.delimiter.encode()) != 1:
            raise ConfigError(f"delimiter must be one character, not {self.delimiter!r}")


def acquire(dataset: Dataset, raw_dir: Path, ctx: Context) -> list[Path]:
    """Local files matching `paths`, plus `urls` downloaded into raw_dir; the sample is generated if asked."""
    opts: Options = dataset.options
    if opts.sample and not any(raw_dir.glob("*.csv*")):
        from etl.samples.csv import write_sample

        write_sample(raw_dir / f"{dataset.name}.csv", rows=opts.sample_rows)
    files: list[Path] = []
    for pattern in opts.paths or ([] if opts.urls else [str(raw_dir / "*.csv*")]):
        matches = sorted(glob.glob(str(ctx.resolve(pattern))))
        if not matches and not glob.has_magic(pattern):
            raise SourceError(f"{ctx.resolve(pattern)} does not exist", hint="Check the dataset's paths")
        files += [Path(m) for m in matches if not m.endswith((".part", ".tmp"))]
    if opts.urls:
        from etl.download import download

        files += [download(url, raw_dir) for url in opts.urls]
    return files


def _reader_args(path: Path, opts: Options, encoding: str) -> str:
    args = [
        quote_literal(str(path)),
        f"encoding = {quote_literal(encoding)}",
        f"header = {str(opts.header).lower()}",
        f"quote = {quote_literal(opts.quote)}",
        f"escape = {quote_literal(opts.quote)}",
    ]
    if opts.delimiter:
        args.append(f"delim = {quote_literal(opts.delimiter)}")
    return ", ".join(args)


def _check_input(path: Path) -> None:
    if not path.is_file():
        raise SourceError("file not found", file=str(path), hint="Check the path")
    if path.stat().st_size == 0:
        raise SourceError("file is empty", file=str(path))
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(64 * 1024)
    except (OSError, EOFError) as e:
        raise SourceError(f"cannot read: {e}", file=str(path)) from None
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError(
            "this looks like a binary file, not CSV",
            file=str(path),
            hint="Check the file, or its encoding if it is UTF-16",
        )


def _transcode(path: Path, encoding: str, out: Path) -> None:
    """Rewrite a file in an encoding DuckDB cannot read (cp1252, cp850, …) as UTF-8, in bounded chunks."""
    opener = gzip.open if path.suffix == ".gz" else open
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    with opener(path, "rb") as src, open(out, "wb") as dst:
        offset = 0
        while chunk := src.read(TRANSCODE_CHUNK):
            try:
                dst.write(decoder.decode(chunk).encode("utf-8"))
            except UnicodeDecodeError as e:
                raise SourceError(
                    f"not valid {encoding}: {e.reason}",
                    file=str(path),
                    position=f"byte {offset + e.start}",
                    hint="Pass the right --encoding",
                ) from None
            offset += len(chunk)
        dst.write(decoder.decode(b"", final=True).encode("utf-8"))


def infer_types(con, source: str, opts: Options) -> dict[str, str]:
    """Column types: DuckDB's sniffer, corrected so a few stray values do not turn a column into text.

    A text column whose sampled values nearly all (TYPE_TOLERANCE) cast to a narrower type gets that type, and
    the rows holding the stray values are rejected with the reason. Declared types (`schema`) win.
    """
    described = con.execute(f"DESCRIBE SELECT * FROM read_csv({source}, store_rejects = true)").fetchall()
    types = {name: typ for name, typ, *_ in described}
    text_cols = [c for c, t in types.items() if t == "VARCHAR" and c not in opts.schema]
    if text_cols:
        checks = []
        for c in text_cols:
            col = quote_ident(c)
            checks.append(f"count(NULLIF(trim({col}), ''))")
            checks += [f"count(TRY_CAST(NULLIF(trim({col}), '') AS {t}))" for t in CANDIDATE_TYPES]
            checks.append(f"count(*) FILTER (WHERE regexp_matches({col}, '^\\s*[+-]?0[0-9]'))")
        row = con.execute(
            f"SELECT {', '.join(checks)} FROM (SELECT * FROM read_csv({source}, all_varchar = true, "
            f"store_rejects = true) LIMIT {INFER_ROWS})"
        ).fetchone()
        width = len(CANDIDATE_TYPES) + 2
        for i, c in enumerate(text_cols):
            nonempty, *casts, leading_zeros = row[i * width : (i + 1) * width]
            if nonempty == 0 or leading_zeros:  # codes such as 007 stay text
                continue
            for typ, ok in zip(CANDIDATE_TYPES, casts, strict=True):
                if ok >= nonempty * TYPE_TOLERANCE:
                    types[c] = typ
                    break
    unknown = set(opts.schema) - set(types)
    if unknown:
        raise SourceError(
            f"schema names columns the file does not have: {', '.join(sorted(unknown))}",
            hint=f"Columns are: {', '.join(types)}",
        )
    return {**types, **opts.schema}


def convert_file(path: Path, out_dir: Path, dataset: Dataset, ctx: Context) -> ConvertResult:
    """Convert one CSV (or .csv.gz) to `out_dir/<stem>.parquet`; rejected rows to `out_dir/_rejects/`."""
    opts: Options = dataset.options
    path = Path(path)
    _check_input(path)
    stem = re.sub(r"\.(csv|txt|tsv)(\.gz)?$", "", path.name, flags=re.IGNORECASE)
    out = Path(out_dir) / f"{stem}.parquet"
    rejects_out = Path(out_dir) / "_rejects" / f"{stem}.parquet"
    encoding = NATIVE_ENCODINGS.get(codecs.lookup(opts.encoding).name.replace("_", "-"))
    source_path = path
    transcoded = None
    if encoding is None:
        ctx.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        transcoded = source_path = ctx.settings.tmp_dir / f"{stem}.utf8.csv"
        _transcode(path, opts.encoding, transcoded)
        encoding = "utf-8"
    # Insertion order is kept so that _source_row numbers the rows in file order.
    con = connect(ctx.settings, preserve_order=True)
    try:
        source = _reader_args(source_path, opts, encoding)
        types = infer_types(con, source, opts)
        typed = f"{source}, types = {{{', '.join(f'{quote_literal(c)}: {quote_literal(t)}' for c, t in types.items())}}}"
        query = (
            f"SELECT *, {quote_literal(path.name)} AS _source_file, row_number() OVER () AS _source_row "
            f"FROM read_csv({typed}, store_rejects = true)"
        )
        with ctx.bar(path.stat().st_size, "B", path.name) as bar, atomic_path(out) as tmp:
            rows_out = con.execute(
                f"COPY ({query}) TO {quote_literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd)"
            ).fetchone()[0]
            bar.update(path.stat().st_size)
        rejected = _write_rejects(con, rejects_out, path.name)
    except Exception as e:
        import duckdb

        if isinstance(e, duckdb.Error):
            raise SourceError(
                str(e).splitlines()[0].removeprefix("Invalid Input Error: "),
                file=str(path),
                hint="Check --encoding, --delimiter and --quote",
            ) from None
        raise
    finally:
        con.close()
        if transcoded:
            transcoded.unlink(missing_ok=True)
    if rows_out == 0 and rejected == 0:
        out.unlink(missing_ok=True)
        raise SourceError("no data rows (header only?)", file=str(path))
    return ConvertResult(
        rows_in=rows_out + rejected,
        rows_out=rows_out,
        rows_rejected=rejected,
        outputs={SINGLE_TABLE: out},
        bytes_out=out.stat().st_size,
    )


def _write_rejects(con, out: Path, source_file: str) -> int:
    """Rejected rows (one per line, all its errors joined) to Parquet; return how many."""
    # A short row gets one error per missing column: keep the first, with the raw line as it was read.
    query = (
        "SELECT ? AS _source_file, line, arg_min(error_type::VARCHAR, coalesce(column_idx, 0)) AS error_type, "
        "arg_min(error_message, coalesce(column_idx, 0)) AS reason, "
        "trim(any_value(csv_line), chr(13) || chr(10)) AS raw FROM reject_errors GROUP BY line ORDER BY line"
    )
    table = con.sql(query, params=[source_file]).to_arrow_table()
    if table.num_rows:
        import pyarrow.parquet as pq

        with atomic_path(out) as tmp:
            pq.write_table(table, tmp, compression="zstd")
    else:
        out.unlink(missing_ok=True)
    return table.num_rows
