"""MITRE's CWE catalogue (the published CSV or XML, or either zipped) -> one Parquet file: id, name, abstraction,
status, description, so that a weakness's `cwe_id` gets a name.

The CSV (`1000.csv` and the other views) names weaknesses by number (`79`); the XML (`cwec_v4.x.xml`) holds
weaknesses, categories and views, read element by element with iterparse. Both become `CWE-79`, as NVD writes it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from etl.arrays import optional_text_array
from etl.config import Dataset
from etl.errors import ConversionError
from etl.sinks.parquet import LINEAGE_FIELDS, ParquetSink, lineage_columns
from etl.sources import Context, ConvertResult, local_files
from etl.sources.enrichment import write_rejects

logger = logging.getLogger(__name__)

DEFAULT_URL = "https://cwe.mitre.org/data/xml/cwec_latest.xml.zip"
BATCH = 2000
SCHEMA = pa.schema(
    [
        ("cwe_id", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),  # weakness, category or view
        ("abstraction", pa.string()),  # Pillar, Class, Base, Variant, Compound (weaknesses)
        ("status", pa.string()),
        ("description", pa.string()),
        *LINEAGE_FIELDS,
    ]
)
CSV_COLUMNS = {"CWE-ID": "id", "Name": "name", "Weakness Abstraction": "abstraction", "Status": "status"}
ELEMENTS = {"Weakness": "weakness", "Category": "category", "View": "view"}


@dataclass
class Options:
    paths: list[str] = field(default_factory=list, metadata={"help": "local CSV/XML files (or .zip of one)"})
    url: str = field(default=DEFAULT_URL, metadata={"help": "the catalogue's URL (when no paths)"})
    sample: bool = field(default=False, metadata={"help": "generate a sample catalogue instead of fetching"})


def acquire(dataset: Dataset, raw_dir: Path, ctx: Context) -> list[Path]:
    opts: Options = dataset.options
    if opts.paths:
        return local_files(opts.paths, ctx)
    if opts.sample:
        from etl.samples.cwe import write_sample

        return [write_sample(raw_dir / "cwe_sample.csv")]
    from etl.download import download

    return [download(opts.url, raw_dir)]


@contextlib.contextmanager
def _open(path: Path) -> Iterator[tuple[IO[bytes], str]]:
    """The catalogue's bytes and its format (csv or xml), from the file or the one CSV/XML member of a zip."""
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path) as z:
            members = [m for m in z.namelist() if m.lower().endswith((".csv", ".xml"))]
            if len(members) != 1:
                raise ConversionError(
                    f"expected one .csv or .xml in the zip, found {members}", file=str(path)
                )
            with z.open(members[0]) as f:
                yield f, members[0].rsplit(".", 1)[1].lower()
        return
    fmt = path.name.lower().removesuffix(".gz").rsplit(".", 1)[-1]
    if fmt not in ("csv", "xml"):
        raise ConversionError("not a CWE .csv, .xml or .zip", file=str(path))
    with open(path, "rb") as f:
        yield f, fmt


def _batch(rows: list[tuple], source_file: str, first_row: int) -> pa.RecordBatch:
    columns = [optional_text_array([r[i] for r in rows]) for i in range(6)]
    lineage = lineage_columns(source_file, np.arange(first_row, first_row + len(rows)))
    return pa.RecordBatch.from_arrays([*columns, *lineage], schema=SCHEMA)


def _cwe_id(value: str | None) -> str | None:
    value = (value or "").strip()
    return f"CWE-{value}" if value.isdigit() else value if re.fullmatch(r"CWE-\d+", value) else None


def _csv_rows(f: IO[bytes], rejects: list) -> Iterator[tuple]:
    # MITRE's CSV ends each line with a comma (an unnamed last column) and quotes multi-line descriptions.
    table = pcsv.read_csv(
        io.BytesIO(f.read()),  # a few MB: the whole catalogue is about 1,000 weaknesses
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            include_columns=[*CSV_COLUMNS, "Description"],
            column_types=dict.fromkeys([*CSV_COLUMNS, "Description"], pa.string()),
        ),
    )
    for i, r in enumerate(table.to_pylist(), 1):
        cwe = _cwe_id(r["CWE-ID"])
        if cwe is None:
            rejects.append((i, f"CWE-ID {r['CWE-ID']!r} is not a number", str(r)))
            continue
        yield (cwe, r["Name"], "weakness", r["Weakness Abstraction"], r["Status"], r["Description"])


def _xml_rows(f: IO[bytes], rejects: list) -> Iterator[tuple]:
    n = 0
    for _, element in ET.iterparse(f, events=("end",)):
        tag = element.tag.rsplit("}", 1)[-1]
        if tag not in ELEMENTS:
            continue
        n += 1
        cwe = _cwe_id(element.get("ID"))
        description = next(
            (
                "".join(e.itertext()).strip()
                for e in element
                if e.tag.rsplit("}", 1)[-1] in ("Description", "Summary")
            ),
            None,
        )
        if cwe is None:
            rejects.append(
                (
                    n,
                    f"ID {element.get('ID')!r} is not a number",
                    ET.tostring(element, encoding="unicode")[:2000],
                )
            )
        else:
            yield (
                cwe,
                element.get("Name"),
                ELEMENTS[tag],
                element.get("Abstraction"),
                element.get("Status"),
                description,
            )
        element.clear()  # iterparse keeps what it built: drop each entry once read


def read_batches(path: Path, *, rejects: list | None = None) -> Iterator[pa.RecordBatch]:
    """The catalogue's entries as batches of SCHEMA."""
    path = Path(path)
    rejected = rejects if rejects is not None else []
    try:
        with _open(path) as (f, fmt):
            rows: list[tuple] = []
            first = 1
            for r in (_csv_rows if fmt == "csv" else _xml_rows)(f, rejected):
                rows.append(r)
                if len(rows) == BATCH:
                    yield _batch(rows, path.name, first)
                    first, rows = first + len(rows), []
            if rows:
                yield _batch(rows, path.name, first)
    except (ET.ParseError, pa.ArrowInvalid, KeyError, zipfile.BadZipFile) as e:
        raise ConversionError(f"not a CWE catalogue: {e}", file=str(path)) from None


def convert_file(path: Path, out_dir: Path, dataset: Dataset, ctx: Context) -> ConvertResult:
    path = Path(path)
    stem = re.sub(r"(\.xml|\.csv)?(\.zip)?$", "", path.name, flags=re.IGNORECASE)
    rejects: list[tuple[int, str, str]] = []
    with ParquetSink(Path(out_dir) / f"{stem}.parquet", SCHEMA) as sink:
        for batch in read_batches(path, rejects=rejects):
            sink.write(batch)
    write_rejects(Path(out_dir) / "_rejects" / f"{stem}.parquet", path.name, rejects)
    logger.info("%s: %d CWE entries", path.name, sink.rows)
    return ConvertResult.written(sink, len(rejects))
