"""CISA's Known Exploited Vulnerabilities catalogue (JSON) -> one Parquet file per catalogue release.

Every release seen is kept (`known_exploited_vulnerabilities-<catalogVersion>.json` under data/raw/<dataset>/),
so additions and removals between releases can be queried (sql/kev/). The catalogue is small (about 1,500
entries, 1.3 MB); its entries are parsed by pyarrow's JSON reader against a declared schema.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from etl.arrays import text_array, text_scalar
from etl.config import Dataset
from etl.errors import ConversionError
from etl.memory import batch_rows
from etl.sinks.parquet import LINEAGE_FIELDS, ParquetSink, lineage_columns
from etl.sources import Context, ConvertResult, local_files
from etl.sources.enrichment import write_rejects

logger = logging.getLogger(__name__)

DEFAULT_URL = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"
NAME = "known_exploited_vulnerabilities"

_TEXT = pa.string()
_ENTRY = pa.schema(
    [
        ("cveID", _TEXT),
        ("vendorProject", _TEXT),
        ("product", _TEXT),
        ("vulnerabilityName", _TEXT),
        ("dateAdded", _TEXT),
        ("shortDescription", _TEXT),
        ("requiredAction", _TEXT),
        ("dueDate", _TEXT),
        ("knownRansomwareCampaignUse", _TEXT),
        ("notes", _TEXT),
        ("cwes", pa.list_(_TEXT)),
    ]
)
SCHEMA = pa.schema(
    [
        ("catalog_version", _TEXT),
        ("date_released", pa.timestamp("us", "UTC")),
        ("cve_id", _TEXT),
        ("vendor_project", _TEXT),
        ("product", _TEXT),
        ("vulnerability_name", _TEXT),
        ("date_added", pa.date32()),
        ("short_description", _TEXT),
        ("required_action", _TEXT),
        ("due_date", pa.date32()),
        ("known_ransomware_campaign_use", _TEXT),
        ("notes", _TEXT),
        ("cwes", pa.list_(_TEXT)),
    ]
)
LINEAGE_SCHEMA = pa.schema([*SCHEMA, *LINEAGE_FIELDS])


@dataclass
class Options:
    paths: list[str] = field(default_factory=list, metadata={"help": "local catalogue files or globs"})
    url: str = field(default=DEFAULT_URL, metadata={"help": "the catalogue's URL (when no paths)"})
    sample: bool = field(default=False, metadata={"help": "generate sample releases instead of fetching"})


class _Catalog(msgspec.Struct):
    catalogVersion: str
    dateReleased: str
    vulnerabilities: list[msgspec.Raw]


def acquire(dataset: Dataset, raw_dir: Path, ctx: Context) -> list[Path]:
    """Local files; the sample's releases; or today's catalogue downloaded and kept under its release's name."""
    opts: Options = dataset.options
    if opts.paths:
        return local_files(opts.paths, ctx)
    if opts.sample:
        from etl.samples.kev import write_sample

        return write_sample(raw_dir)
    from etl.download import download

    fetched = download(opts.url, raw_dir / "_download", name=f"{NAME}.json")
    version = _read_catalog(fetched).catalogVersion
    kept = raw_dir / f"{NAME}-{version}.json"
    if kept.exists():
        fetched.unlink()
    else:
        os.replace(fetched, kept)
        logger.info("CISA KEV: new release %s", version)
    return sorted(raw_dir.glob(f"{NAME}-*.json"))


def _read_catalog(path: Path) -> _Catalog:
    try:
        return msgspec.json.decode(Path(path).read_bytes(), type=_Catalog)
    except msgspec.ValidationError as e:
        raise ConversionError(f"not a CISA KEV catalogue: {e}", file=str(path)) from None
    except msgspec.DecodeError as e:
        raise ConversionError(f"not valid JSON: {e}", file=str(path)) from None


def _date(text: pa.Array) -> pa.Array:
    return pc.strptime(text, "%Y-%m-%d", "s", error_is_null=True).cast(pa.date32())


def read_batches(
    path: Path, *, batch_rows: int = 10_000, rejects: list | None = None, nulled: dict | None = None
) -> Iterator[pa.RecordBatch]:
    """The catalogue's entries as batches of SCHEMA; entries without a cveID go to `rejects` (row, reason, raw),
    dates that are not YYYY-MM-DD become null, counted per column in `nulled`."""
    catalog = _read_catalog(path)
    released = pc.cast(
        pc.strptime(text_array([catalog.dateReleased[:19].encode()]), "%Y-%m-%dT%H:%M:%S", "us"),
        pa.timestamp("us", "UTC"),
    )[0]
    entries = catalog.vulnerabilities
    for start in range(0, len(entries), batch_rows):
        chunk = entries[start : start + batch_rows]
        text = pa.py_buffer(b"\n".join(bytes(e) for e in chunk))
        try:
            parsed = pj.read_json(
                text,
                read_options=pj.ReadOptions(use_threads=False, block_size=text.size + 1),
                parse_options=pj.ParseOptions(
                    explicit_schema=_ENTRY, newlines_in_values=True, unexpected_field_behavior="ignore"
                ),
            ).combine_chunks()
        except pa.ArrowInvalid as e:
            raise ConversionError(f"entries from {start + 1}: {e}", file=str(path)) from None
        n = parsed.num_rows
        valid = pc.invert(pc.is_null(parsed["cveID"]))
        if rejects is not None:
            for i in pc.indices_nonzero(pc.invert(valid)).to_pylist():
                rejects.append((start + i + 1, "an entry without cveID", bytes(chunk[i]).decode()))
        columns = [
            pa.repeat(text_scalar(catalog.catalogVersion), n),
            pa.repeat(released, n),
            parsed["cveID"],
            parsed["vendorProject"],
            parsed["product"],
            parsed["vulnerabilityName"],
            _date(parsed["dateAdded"]),
            parsed["shortDescription"],
            parsed["requiredAction"],
            _date(parsed["dueDate"]),
            parsed["knownRansomwareCampaignUse"],
            parsed["notes"],
            parsed["cwes"],
        ]
        columns = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns]
        for name, text, typed in (
            ("date_added", parsed["dateAdded"], columns[6]),
            ("due_date", parsed["dueDate"], columns[9]),
        ):
            bad = pc.sum(pc.and_(pc.is_valid(text), pc.is_null(typed))).as_py() or 0
            if bad and nulled is not None:
                nulled[name] = nulled.get(name, 0) + bad
        rows = np.arange(start + 1, start + n + 1)
        batch = pa.RecordBatch.from_arrays(
            [*columns, *lineage_columns(Path(path).name, rows)], schema=LINEAGE_SCHEMA
        )
        yield batch.filter(valid)


def convert_file(path: Path, out_dir: Path, dataset: Dataset, ctx: Context) -> ConvertResult:
    """One release to `out_dir/<stem>.parquet`; entries without a CVE id to `out_dir/_rejects/<stem>.parquet`."""
    path = Path(path)
    stem = path.name.removesuffix(".json")
    rejects: list[tuple[int, str, str]] = []
    nulled: dict[str, int] = {}
    rows = batch_rows(ctx.settings.memory_limit, 1024)
    with ParquetSink(Path(out_dir) / f"{stem}.parquet", LINEAGE_SCHEMA) as sink:
        for batch in read_batches(path, batch_rows=rows, rejects=rejects, nulled=nulled):
            sink.write(batch)
    write_rejects(Path(out_dir) / "_rejects" / f"{stem}.parquet", path.name, rejects)
    logger.info("%s: CISA KEV release, %d entries", path.name, sink.rows)
    result = ConvertResult.written(sink, len(rejects))
    result.nulled = nulled
    return result
