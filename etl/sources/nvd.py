"""NVD CVE API 2.0 pages (and yearly JSON 2.0 feeds) -> normalised Parquet tables.

Each file is read once, as a stream of chunks of whole records: msgspec cuts the `vulnerabilities` array into the
text of each CVE (kept as `cves.raw`, so fields NVD adds later survive), pyarrow's JSON reader parses those records
once into typed columns against a declared schema (undeclared fields are skipped, never an error), and the six tables
(cves, metrics, weaknesses, cpe_matches, references, descriptions) are projections of those columns: lists flattened
with Arrow compute, no Python loop per record. Memory follows the chunk size, set by the budget, whatever the number
or size of the pages. Every table keeps `_source_file` (window folder / page) and `_source_row` (the vulnerability's
1-based position in the page).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import gzip
import logging
import lzma
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from etl.arrays import int64_array, text_array, text_scalar
from etl.config import Dataset
from etl.errors import ConversionError, SourceError
from etl.memory import row_group_bytes, working_bytes
from etl.sinks.parquet import ParquetSink, hold_at_most, lineage_columns
from etl.sources import Context, ConvertResult, local_files
from etl.sources.nvd_pages import COMPLETE, FULL, WINDOW_META

logger = logging.getLogger(__name__)
T = TypeVar("T")

# What `etl fetch nvd` takes (converting pages takes no option).
FETCH_OPTIONS = (
    "base_url",
    "since",
    "full",
    "results_per_page",
    "max_requests",
    "window_seconds",
    "bootstrap",
    "sample",
    "sample_pages",
)
CONVERT_OPTIONS = ()

TABLES = (
    "cves",
    "metrics",
    "weaknesses",
    "cpe_matches",
    "references",
    "descriptions",
    "affected",
    "ssvc",
    "vendor_comments",
)

# cvssData keys per CVSS version, as FIRST names them; v4.0 records from NVD's first months use other names.
CVSS_FIELDS = [
    "version",
    "vectorString",
    "baseScore",
    "baseSeverity",
    "accessVector",
    "accessComplexity",
    "authentication",
    "attackVector",
    "attackComplexity",
    "attackRequirements",
    "privilegesRequired",
    "userInteraction",
    "scope",
    "confidentialityImpact",
    "integrityImpact",
    "availabilityImpact",
    "vulnConfidentialityImpact",
    "vulnIntegrityImpact",
    "vulnAvailabilityImpact",
    "subConfidentialityImpact",
    "subIntegrityImpact",
    "subAvailabilityImpact",
    "exploitMaturity",
    "confidentialityRequirement",
    "integrityRequirement",
    "availabilityRequirement",
    "modifiedAttackVector",
    "modifiedAttackComplexity",
    "modifiedAttackRequirements",
    "modifiedPrivilegesRequired",
    "modifiedUserInteraction",
    "modifiedVulnConfidentialityImpact",
    "modifiedVulnIntegrityImpact",
    "modifiedVulnAvailabilityImpact",
    "modifiedSubConfidentialityImpact",
    "modifiedSubIntegrityImpact",
    "modifiedSubAvailabilityImpact",
    "Safety",
    "Automatable",
    "Recovery",
    "valueDensity",
    "vulnerabilityResponseEffort",
    "providerUrgency",
    "exploitCodeMaturity",
    "remediationLevel",
    "reportConfidence",
    "temporalScore",
    "environmentalScore",
]
NVD_EARLY_V40 = {
    "vulnConfidentialityImpact": "vulnerableSystemConfidentiality",
    "vulnIntegrityImpact": "vulnerableSystemIntegrity",
    "vulnAvailabilityImpact": "vulnerableSystemAvailability",
    "subConfidentialityImpact": "subsequentSystemConfidentiality",
    "subIntegrityImpact": "subsequentSystemIntegrity",
    "subAvailabilityImpact": "subsequentSystemAvailability",
    "confidentialityRequirement": "confidentialityRequirements",
    "integrityRequirement": "integrityRequirements",
    "availabilityRequirement": "availabilityRequirements",
    "modifiedVulnConfidentialityImpact": "modifiedVulnerableSystemConfidentiality",
    "modifiedVulnIntegrityImpact": "modifiedVulnerableSystemIntegrity",
    "modifiedVulnAvailabilityImpact": "modifiedVulnerableSystemAvailability",
    "modifiedSubConfidentialityImpact": "modifiedSubsequentSystemConfidentiality",
    "modifiedSubIntegrityImpact": "modifiedSubsequentSystemIntegrity",
    "modifiedSubAvailabilityImpact": "modifiedSubsequentSystemAvailability",
    "Safety": "safety",
    "Automatable": "automatable",
    "Recovery": "recovery",
}
METRIC_KEYS = {"cvssMetricV2": "2.0", "cvssMetricV30": "3.0", "cvssMetricV31": "3.1", "cvssMetricV40": "4.0"}
# Outside cvssData in v2 records.
V2_EXTRAS = [
    "acInsufInfo",
    "obtainAllPrivilege",
    "obtainUserPrivilege",
    "obtainOtherPrivilege",
    "userInteractionRequired",
]


@dataclass
class Options:
    paths: list[str] = field(
        default_factory=list, metadata={"help": "local page folders, pages or yearly feeds"}
    )
    base_url: str = field(
        default="https://services.nvd.nist.gov/rest/json/cves/2.0",
        metadata={"help": "CVE API 2.0 endpoint (or a mirror / emulator)"},
    )
    since: str | None = field(
        default=None, metadata={"help": "incremental start, ISO-8601 (default: the cursor)"}
    )
    full: bool = field(default=False, metadata={"help": "a full sync even when a cursor exists"})
    results_per_page: int = field(default=2000, metadata={"help": "CVEs per page (NVD's maximum is 2000)"})
    max_requests: int | None = field(
        default=None, metadata={"help": "requests per rolling window (5, 50 with a key)"}
    )
    window_seconds: float = field(default=30.0, metadata={"help": "the rate limit's rolling window"})
    bootstrap: list[str] = field(
        default_factory=list,
        metadata={
            "help": "mirror files (CVE-YYYY.json.xz, CVE-all.json.xz) to start from; the API continues"
        },
    )
    sample: bool = field(default=False, metadata={"help": "generate sample pages instead of fetching"})
    sample_pages: int = field(default=6, metadata={"help": "pages of the generated sample"})


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out.replace("__", "_")


# What the JSON reader parses of each CVE; anything else NVD sends is skipped here and kept in `raw`.
_TEXT = pa.string()
_SCORES = ("baseScore", "temporalScore", "environmentalScore")
# The cvssData fields of each metric type (FIRST's JSON schemas of CVSS v2.0, v3.x and v4.0, as far as CVSS_FIELDS
# names them). The reader declares only these per type: filling every other field of every metric with nulls took
# it a third longer. v4.0 dropped the temporal and environmental scores and renamed the impacts (vuln*, sub*).
_ALL = {
    "version",
    "vectorString",
    "baseScore",
    "confidentialityRequirement",
    "integrityRequirement",
    "availabilityRequirement",
}
_V2_ONLY = {"accessVector", "accessComplexity", "authentication"}
_V3_ONLY = {"scope", "exploitCodeMaturity"}
_V2_V3 = {
    "confidentialityImpact",
    "integrityImpact",
    "availabilityImpact",
    "remediationLevel",
    "reportConfidence",
    "temporalScore",
    "environmentalScore",
}
_V3_V4 = {"baseSeverity", "attackVector", "attackComplexity", "privilegesRequired", "userInteraction"}
_V3_V4 |= {"modified" + f[0].upper() + f[1:] for f in _V3_V4 - {"baseSeverity"}}
# v2 records give baseSeverity beside cvssData, and since 2025 also inside it (CVE-2021-45357).
_V2_DATA = [f for f in CVSS_FIELDS if f in _ALL | _V2_ONLY | _V2_V3 | {"baseSeverity"}]
_V3_DATA = [f for f in CVSS_FIELDS if f in _ALL | _V3_ONLY | _V2_V3 | _V3_V4]
_V4_DATA = [*(f for f in CVSS_FIELDS if f not in _V2_ONLY | _V3_ONLY | _V2_V3), *NVD_EARLY_V40.values()]
_CVSS_DATA_FIELDS = {
    "cvssMetricV2": _V2_DATA,
    "cvssMetricV30": _V3_DATA,
    "cvssMetricV31": _V3_DATA,
    "cvssMetricV40": _V4_DATA,
}


def _metric_type(data_fields: list[str]) -> pa.StructType:
    return pa.struct(
        [
            ("source", _TEXT),
            ("type", _TEXT),
            ("baseSeverity", _TEXT),
            ("exploitabilityScore", pa.float64()),
            ("impactScore", pa.float64()),
            *((k, pa.bool_()) for k in V2_EXTRAS),
            ("cvssData", pa.struct([(k, pa.float64() if k in _SCORES else _TEXT) for k in data_fields])),
        ]
    )


_LANG_VALUE = pa.list_(pa.struct([("lang", _TEXT), ("value", _TEXT)]))
_CPE_MATCH = pa.struct(
    [
        ("vulnerable", pa.bool_()),
        ("criteria", _TEXT),
        ("matchCriteriaId", _TEXT),
        *((k, _TEXT) for k in ("versionStartIncluding", "versionStartExcluding")),
        *((k, _TEXT) for k in ("versionEndIncluding", "versionEndExcluding")),
    ]
)
_NODE = pa.struct([("operator", _TEXT), ("negate", pa.bool_()), ("cpeMatch", pa.list_(_CPE_MATCH))])
# CVE JSON 5's affected products, which NVD's records carry since 2026 (CVE-2024-3094).
_VERSION = pa.struct(
    [(k, _TEXT) for k in ("version", "status", "lessThan", "lessThanOrEqual", "versionType")]
)
_AFFECTED = pa.struct(
    [
        *((k, _TEXT) for k in ("source", "vendor", "product", "collectionURL", "packageName", "repo")),
        ("defaultStatus", _TEXT),
        ("cpes", pa.list_(_TEXT)),
        ("platforms", pa.list_(_TEXT)),
        ("versions", pa.list_(_VERSION)),
    ]
)
# CISA's SSVC decision points (metrics.ssvcV203), outside NVD's schema 2.2.2.
SSVC_FIELDS = ("id", "role", "timestamp", "version", "automatable", "exploitation", "technicalImpact")
_SSVC = pa.struct(
    [("source", _TEXT), ("type", _TEXT), ("ssvcData", pa.struct([(k, _TEXT) for k in SSVC_FIELDS]))]
)
_CVE_TAGS = pa.list_(pa.struct([("sourceIdentifier", _TEXT), ("tags", pa.list_(_TEXT))]))
_CVE = pa.schema(
    [
        ("id", _TEXT),
        ("sourceIdentifier", _TEXT),
        # NVD's timestamps are naive UTC, some ending in Z: the reader takes both as UTC.
        ("published", pa.timestamp("us", "UTC")),
        ("lastModified", pa.timestamp("us", "UTC")),
        ("vulnStatus", _TEXT),
        *(
            (k, _TEXT)
            for k in ("cisaExploitAdd", "cisaActionDue", "cisaRequiredAction", "cisaVulnerabilityName")
        ),
        ("cveTags", _CVE_TAGS),
        ("descriptions", _LANG_VALUE),
        (
            "metrics",
            pa.struct(
                [(key, pa.list_(_metric_type(_CVSS_DATA_FIELDS[key]))) for key in METRIC_KEYS]
                + [("ssvcV203", pa.list_(_SSVC))]
            ),
        ),
        (
            "weaknesses",
            pa.list_(pa.struct([("source", _TEXT), ("type", _TEXT), ("description", _LANG_VALUE)])),
        ),
        (
            "configurations",
            pa.list_(pa.struct([("operator", _TEXT), ("negate", pa.bool_()), ("nodes", pa.list_(_NODE))])),
        ),
        ("references", pa.list_(pa.struct([("url", _TEXT), ("source", _TEXT), ("tags", pa.list_(_TEXT))]))),
        *((k, _TEXT) for k in ("evaluatorComment", "evaluatorSolution", "evaluatorImpact")),
        (
            "vendorComments",
            pa.list_(
                pa.struct(
                    [("organization", _TEXT), ("comment", _TEXT), ("lastModified", pa.timestamp("us", "UTC"))]
                )
            ),
        ),
        ("affected", pa.list_(_AFFECTED)),
    ]
)


class _Vulnerability(msgspec.Struct):
    cve: msgspec.Raw


class _Page(msgspec.Struct):
    vulnerabilities: list[_Vulnerability]


class _Items(msgspec.Struct):
    cve_items: list[msgspec.Raw]


_PAGE, _ITEMS = msgspec.json.Decoder(_Page), msgspec.json.Decoder(_Items)


@dataclass(frozen=True)
class _Layout:
    """How a file lists its records: NVD's pages and feeds `{"vulnerabilities": [{"cve": {…}}, …]}`, or the yearly
    files of public NVD mirrors (`CVE-2024.json.xz`, `CVE-all.json.xz`): `{"timestamp": …, "cve_items": [{…}, …]}`.

    `boundary` is where one record ends and the next begins. `{"cve":` cannot occur inside a JSON string (its quote
    would be escaped), and a cut anywhere but between two records leaves brackets open, which the decoder rejects: a
    chunk never ends mid-record unnoticed. A mirror's bare records begin with `"id"` (NVD's key order).
    """

    boundary: re.Pattern
    open: bytes
    records: Callable[[bytes], list[msgspec.Raw]]


_NVD = _Layout(
    re.compile(rb'(\})\s*,\s*(\{)\s*"cve"\s*:'),
    b'{"vulnerabilities":[',
    lambda doc: [v.cve for v in _PAGE.decode(doc).vulnerabilities],
)
_MIRROR = _Layout(
    re.compile(rb'(\})\s*,\s*(\{)\s*"id"\s*:'), b'{"cve_items":[', lambda doc: _ITEMS.decode(doc).cve_items
)
_CLOSE = b"]}"
_RELEASED = re.compile(rb'"timestamp"\s*:\s*"([^"]+)"')


def open_json(path: Path) -> IO[bytes]:
    """A page, feed or record file's JSON: gzip (`.gz`), xz (`.xz`, as mirrors publish yearly files) or plain."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    if path.suffix == ".xz":
        return lzma.open(path, "rb")
    return open(path, "rb")


def release_time(path: Path) -> str | None:
    """The `timestamp` a feed or mirror file states near its start (when it was generated), if any."""
    with open_json(path) as f:
        m = _RELEASED.search(f.read(4096))
    return m.group(1).decode() if m else None


def _last_boundary(buf: bytes, boundary: re.Pattern) -> re.Match | None:
    """The last record boundary in buf, looked for in a tail that doubles until it holds one."""
    tail = 1 << 16
    while True:
        found = None
        for found in boundary.finditer(buf, max(0, len(buf) - tail)):  # noqa: B007
            pass
        if found or tail >= len(buf):
            return found
        tail *= 2


def read_cves(path: Path, chunk_bytes: int) -> Iterator[pa.StringArray]:
    """The JSON text of each CVE of a page or feed (the value of its `cve` key), in chunks of about chunk_bytes.

    A chunk is cut between two records and wrapped back into a page (`{"vulnerabilities":[` … `]}`), so a feed of any
    size is read in bounded memory; a mirror's yearly file (`cve_items` of bare records) likewise. Raises ConversionError naming the byte where the JSON is malformed.
    """
    with open_json(path) as f:
        try:
            layout = _MIRROR if b'"cve_items"' in f.peek(1 << 16)[: 1 << 16] else _NVD
        except (OSError, EOFError, lzma.LZMAError) as e:
            raise ConversionError(unreadable(path, e), file=str(path)) from None
        head, offset, first = b"", 0, True  # offset: where head starts in the file's JSON
        while True:
            try:
                block = f.read(chunk_bytes)
            except (OSError, EOFError, lzma.LZMAError) as e:
                raise ConversionError(unreadable(path, e), file=str(path)) from None
            more = len(block) == chunk_bytes  # a short read is the end of the file
            buf = head + block
            del block
            cut = _last_boundary(buf, layout.boundary) if more else None
            if more and cut is None:
                head = buf  # no record ends in this chunk yet: read on
                continue
            if first and not cut:
                doc = buf
            else:  # one copy, wrapped back into a page; buffers are dropped as soon as they are copied
                end = cut.end(1) if cut else len(buf)
                doc = b"".join((b"" if first else layout.open, memoryview(buf)[:end], _CLOSE if cut else b""))
            head = buf[cut.start(2) :] if cut else b""
            del buf
            try:
                records = layout.records(doc)
            except msgspec.DecodeError as e:
                shift = offset - (0 if first else len(layout.open))
                raise ConversionError(_decode_error(e, path, shift), file=str(path)) from None
            del doc  # the records keep it until they are copied, back to back, into one string array
            strings = text_array(records)
            del records
            if len(strings):  # an empty page (a window with no changes) has nothing to parse
                yield strings
            if not cut:
                return
            offset += cut.start(2)
            first = False


def _read_ahead(chunks: Iterator[T]) -> Iterator[T]:
    """The items of an iterator, the next one produced on a thread while the caller works on the current one."""
    with ThreadPoolExecutor(1, thread_name_prefix="nvd-read") as pool:
        ahead = pool.submit(next, chunks, None)
        while (chunk := ahead.result()) is not None:
            ahead = pool.submit(next, chunks, None)
            yield chunk


def _decode_error(e: msgspec.DecodeError, path: Path, shift: int) -> str:
    """msgspec's message, its byte offset made relative to the file's JSON."""
    text = re.sub(r"\(byte (\d+)\)", lambda m: f"(byte {int(m.group(1)) + shift})", str(e))
    return f"{path.name}: not a valid NVD page: {text}"


def _numpy(values: pa.Array) -> np.ndarray:
    """An Arrow integer array without nulls as numpy, zero-copy."""
    kind = "u" if pa.types.is_unsigned_integer(values.type) else "i"
    data = np.frombuffer(values.buffers()[1], dtype=f"{kind}{values.type.bit_width // 8}")
    return data[values.offset : values.offset + len(values)]


def _explode(lists: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """A list column's items, the row each came from, and its 1-based position in its list."""
    items = pc.list_flatten(lists)
    parents = _numpy(pc.list_parent_indices(lists))
    position = np.arange(len(parents)) - np.searchsorted(parents, parents) + 1  # parents ascend
    return items, parents, position


def _fields(struct: pa.StructArray) -> dict[str, pa.Array]:
    """A struct column's fields, null where the struct is."""
    return dict(zip(struct.type.names, struct.flatten(), strict=True))


def _first_english(descriptions: pa.Array, n: int) -> pa.Array:
    """The first English description of each record (null when there is none)."""
    items, parents, _ = _explode(descriptions)
    item = _fields(items)
    english = _numpy(pc.indices_nonzero(pc.equal(item["lang"], text_scalar("en"))))  # null lang: not English
    rows, first = np.unique(parents[english], return_index=True)
    pick = np.full(n, -1, dtype=np.int64)
    pick[rows] = english[first]
    return item["value"].take(int64_array(pick, valid=pick >= 0))


def _snake_fields(lists: pa.ListArray) -> pa.ListArray:
    """A list of structs with its fields renamed to snake_case (a cast would match fields by name)."""
    items = lists.values
    renamed = pa.StructArray.from_arrays(items.flatten(), [_snake(f.name) for f in items.type])
    return pa.ListArray.from_arrays(lists.offsets, renamed, mask=lists.is_null())


def _date(text: pa.Array) -> pa.Array:
    """YYYY-MM-DD as a date; anything else becomes null (as a TRY_CAST would)."""
    return pc.strptime(text, "%Y-%m-%d", "s", error_is_null=True).cast(pa.date32())


# cvssData field -> column (FIRST's v4.0 names; NVD's early ones are folded into them).
_CVSS_COLUMNS = {
    name: {"version": "cvss_data_version", "vectorString": "vector_string"}.get(name, _snake(name))
    for name in CVSS_FIELDS
    if name != "baseSeverity"
}


def _metric_columns(metrics: pa.StructArray) -> dict[str, pa.Array]:
    """Every cvssData field as a column (null where the metric type has no such field), then v2's outer flags."""
    metric = _fields(metrics)
    data = _fields(metric["cvssData"])
    for name in CVSS_FIELDS:
        data.setdefault(name, pa.nulls(len(metrics), pa.float64() if name in _SCORES else _TEXT))
    cols = {
        "base_severity": pc.coalesce(data["baseSeverity"], metric["baseSeverity"]),
        "exploitability_score": metric["exploitabilityScore"],
        "impact_score": metric["impactScore"],
    }
    for name, column in _CVSS_COLUMNS.items():
        early = NVD_EARLY_V40.get(name)
        cols[column] = pc.coalesce(data[name], data[early]) if early in data else data[name]
    cols.update({_snake(k): metric[k] for k in V2_EXTRAS})
    return cols


def _tables(raw: pa.StringArray, source_file_name: str, first_row: int) -> dict[str, pa.Table]:
    """The six tables of a chunk of CVEs (the JSON text of each, in page order from first_row)."""
    n = len(raw)
    text = raw.buffers()[2]
    # One block, parsed on this thread: splitting a chunk into blocks for pyarrow's threads cost more CPU than it saved
    # (the next chunk is read on another thread meanwhile). The reader takes the records back to back, without a
    # separator; newlines_in_values reads those of pretty-printed pages.
    parsed = pj.read_json(
        text,
        read_options=pj.ReadOptions(use_threads=False, block_size=text.size + 1),
        parse_options=pj.ParseOptions(
            explicit_schema=_CVE, newlines_in_values=True, unexpected_field_behavior="ignore"
        ),
    )
    cve = {name: parsed.column(name).chunk(0) for name in parsed.column_names}
    ids = cve["id"]
    rows = np.arange(first_row, first_row + n)

    def table(columns: dict[str, pa.Array], parents: np.ndarray | None = None) -> pa.Table:
        cve_id = ids if parents is None else ids.take(int64_array(parents))
        source_file, source_row = lineage_columns(
            source_file_name, rows if parents is None else rows[parents]
        )
        return pa.Table.from_pydict(
            {"cve_id": cve_id, **columns, "_source_file": source_file, "_source_row": source_row}
        )

    tables = {
        "cves": table(
            {
                "source_identifier": cve["sourceIdentifier"],
                "published": cve["published"],
                "last_modified": cve["lastModified"],
                "vuln_status": cve["vulnStatus"],
                "description": _first_english(cve["descriptions"], n),
                "cisa_exploit_add": _date(cve["cisaExploitAdd"]),
                "cisa_action_due": _date(cve["cisaActionDue"]),
                "cisa_required_action": cve["cisaRequiredAction"],
                "cisa_vulnerability_name": cve["cisaVulnerabilityName"],
                "cve_tags": _snake_fields(cve["cveTags"]),
                "evaluator_impact": cve["evaluatorImpact"],
                "evaluator_comment": cve["evaluatorComment"],
                "evaluator_solution": cve["evaluatorSolution"],
                "raw": raw,
            }
        )
    }
    metrics = []
    metric_lists = _fields(cve["metrics"])
    ssvc, parents, _ = _explode(metric_lists.pop("ssvcV203"))
    ssvc = _fields(ssvc)
    tables["ssvc"] = table(
        {
            "source": ssvc["source"],
            "type": ssvc["type"],
            **{_snake(k): v for k, v in _fields(ssvc["ssvcData"]).items()},
        },
        parents,
    )
    for key, lists in metric_lists.items():
        items, parents, _ = _explode(lists)
        item = _fields(items)
        version = pa.repeat(text_scalar(METRIC_KEYS[key]), len(items))
        columns = {"cvss_version": version, "source": item["source"], "type": item["type"]}
        metrics.append(table({**columns, **_metric_columns(items)}, parents))
    tables["metrics"] = pa.concat_tables(metrics)
    weaknesses, parents, _ = _explode(cve["weaknesses"])
    weakness = _fields(weaknesses)
    described, within, _ = _explode(weakness["description"])
    tables["weaknesses"] = table(
        {
            "source": weakness["source"].take(int64_array(within)),
            "type": weakness["type"].take(int64_array(within)),
            "cwe_id": _fields(described)["value"],
            "lang": _fields(described)["lang"],
        },
        parents[within],
    )
    configurations, parents, configuration_index = _explode(cve["configurations"])
    configuration = _fields(configurations)
    nodes, in_configuration, node_index = _explode(configuration["nodes"])
    node = _fields(nodes)
    matches, in_node, _ = _explode(node["cpeMatch"])
    configuration_of = in_configuration[in_node]
    tables["cpe_matches"] = table(
        {
            "configuration_index": int64_array(configuration_index[configuration_of]),
            "configuration_operator": configuration["operator"].take(int64_array(configuration_of)),
            "node_index": int64_array(node_index[in_node]),
            "operator": node["operator"].take(int64_array(in_node)),
            "negate": node["negate"].take(int64_array(in_node)),
            **{_snake(k): v for k, v in _fields(matches).items()},
        },
        parents[configuration_of],
    )
    references, parents, _ = _explode(cve["references"])
    tables["references"] = table(_fields(references), parents)
    descriptions, parents, _ = _explode(cve["descriptions"])
    tables["descriptions"] = table(_fields(descriptions), parents)
    comments, parents, _ = _explode(cve["vendorComments"])
    tables["vendor_comments"] = table({_snake(k): v for k, v in _fields(comments).items()}, parents)
    affected, parents, position = _explode(cve["affected"])
    tables["affected"] = table(
        {
            "affected_index": int64_array(position),
            **{
                {"collectionURL": "collection_url"}.get(k, _snake(k)): v
                for k, v in _fields(affected).items()
                if k != "versions"
            },
            "versions": _snake_fields(_fields(affected)["versions"]),
        },
        parents,
    )
    return tables


class _Wrapped(msgspec.Struct):
    cve: msgspec.Raw


_KEYS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_WRAPPED = msgspec.json.Decoder(_Wrapped)


def single_record(path: Path) -> bytes | None:
    """The original text of a file holding one record (`{"cve": …}`, or a bare cve object as NVD mirrors publish
    one file per CVE); None for a page or a feed."""
    try:
        if is_feed(path) or _json_size(path) > 16 << 20:
            return None
        with open_json(path) as f:
            if b'"vulnerabilities"' in f.read(4096):  # a page: NVD writes it after a few short keys
                return None
            f.seek(0)
            text = f.read()
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise ConversionError(unreadable(path, e), file=str(path)) from None
    try:
        text.decode("utf-8")  # Arrow would refuse it later with no file or position
    except UnicodeDecodeError as e:
        raise ConversionError(
            f"{path.name}: not UTF-8 text ({e.reason} at byte {e.start})", file=str(path)
        ) from None
    try:
        keys = _KEYS.decode(text)
        if not isinstance(keys, dict) or "vulnerabilities" in keys:
            return None
    except msgspec.DecodeError as e:
        raise ConversionError(_decode_error(e, path, 0), file=str(path)) from None
    if "cve" not in keys and "id" not in keys:  # a page's envelope without its records is not a record
        raise ConversionError(
            f"{path.name}: not an NVD page: no `vulnerabilities` key, and not a CVE record "
            f"(keys: {', '.join(sorted(keys)[:6]) or 'none'})",
            file=str(path),
        )
    try:
        return bytes(_WRAPPED.decode(text).cve) if "cve" in keys else text.strip()
    except msgspec.DecodeError as e:
        raise ConversionError(_decode_error(e, path, 0), file=str(path)) from None


def unreadable(path: Path, e: BaseException) -> str:
    """What is wrong with a page that cannot be read at all, in words (not `EOFError`, `[Errno 22]`)."""
    if path.is_file() and path.stat().st_size == 0:
        return f"{path.name}: the file is empty (0 bytes)"
    if isinstance(e, EOFError) or "end-of-stream" in str(e):
        return f"{path.name}: the compressed data ends early: the file is truncated"
    if isinstance(e, gzip.BadGzipFile):
        return f"{path.name}: not gzip data, though its name ends in .gz"
    return f"{path.name}: cannot read it: {e}"


def records_of(path: Path, chunk_bytes: int) -> Iterator[pa.StringArray]:
    """The JSON text of each CVE of a page, a feed or a one-record file, in chunks (see read_cves)."""
    record = single_record(path)
    if record is None:
        yield from read_cves(path, chunk_bytes)
    else:
        yield text_array([record])


# The keys NVD's schema (2.2.2, and the 2026 additions read above) defines; others stay in `raw` only.
KNOWN_KEYS = frozenset(_CVE.names)
KNOWN_METRICS = frozenset(_CVE.field("metrics").type.names)


def unknown_keys(raw: pa.StringArray) -> collections.Counter:
    """Records per key outside the declared schema (`key`, or `metrics.key`), in a chunk of records."""
    found: collections.Counter = collections.Counter()
    offsets = np.frombuffer(raw.buffers()[1], dtype=np.int32)[raw.offset : raw.offset + len(raw) + 1]
    text = memoryview(raw.buffers()[2])
    for i in range(len(raw)):
        keys = _KEYS.decode(text[offsets[i] : offsets[i + 1]])
        found.update(k for k in keys if k not in KNOWN_KEYS)
        if "metrics" in keys:
            found.update(f"metrics.{k}" for k in _KEYS.decode(keys["metrics"]) if k not in KNOWN_METRICS)
    return found


_reported: set[str] = set()  # keys already reported in this process: a run reports each once


def pages_of_folder(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith((".json", ".json.gz")) and p.name[0] != "_")


def pages_of(path: Path) -> list[Path]:
    """The page files a path stands for: a window folder's pages, or the file itself."""
    path = Path(path)
    if path.is_dir():
        pages = pages_of_folder(path)
        if not pages:
            raise SourceError("no NVD pages (*.json, *.json.gz) in this folder", file=str(path))
        return pages
    if not path.exists():
        raise SourceError("file not found", file=str(path))
    return [path]


def convert_inputs(paths: list[Path]) -> list[tuple[Path, str | None]]:
    """What `etl convert nvd` converts for each input, and why it skips one (None: converted).

    A folder `etl fetch nvd --out DIR` wrote holds window folders (`full/`, `<start>_<end>/`) rather than pages:
    each complete window is converted (`full/` first, then in time order), and each incomplete one (no `_complete`
    marker: a fetch that failed or is still running) is skipped with the reason.
    """
    out: list[tuple[Path, str | None]] = []
    for path in map(Path, paths):
        windows = (
            sorted(
                (p for p in path.iterdir() if p.is_dir() and (p / WINDOW_META).exists()),
                key=lambda p: (p.name != FULL, p.name),
            )
            if path.is_dir() and not any(pages_of_folder(path))
            else []
        )
        if not windows:
            out.append((path, None))
        for window in windows:
            complete = (window / COMPLETE).exists()
            out.append(
                (
                    window,
                    None if complete else "an incomplete fetch window (no _complete marker): fetch again",
                )
            )
    return out


def is_feed(path: Path) -> bool:
    """NVD's yearly feeds (`nvdcve-2.0-2024.json.gz`) and mirrors' xz files, never one record."""
    return Path(path).name.startswith("nvdcve-") or Path(path).suffix == ".xz"


def _json_size(path: Path) -> int:
    """Uncompressed size of a page: a gzip file ends with it (modulo 4 GiB, far above any page)."""
    if path.suffix != ".gz":
        return path.stat().st_size
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        return int.from_bytes(f.read(4), "little")


def stem(path: Path) -> str:
    """A window folder's name, a page's or feed's without `.json(.gz)`."""
    return Path(path).name.removesuffix(".gz").removesuffix(".json")


def convert_file(path: Path, out_dir: Path, dataset: Dataset, ctx: Context) -> ConvertResult:
    """Convert a window folder, a page or a feed into one Parquet file per table: `out_dir/<table>/<name>.parquet`."""
    path = Path(path)
    budget = ctx.settings.memory_limit
    # A chunk's JSON is held a few times over (the next chunk read ahead, its text, parsed columns, tables) while
    # the sinks hold row groups of their own.
    chunk_bytes = working_bytes(budget) // 4
    name = ctx.output_stem(path, stem(path))
    prefix = f"{ctx.source_name(path)}/" if path.is_dir() else ""
    held = row_group_bytes(budget)
    try:
        pages = pages_of(path)
        with contextlib.ExitStack() as stack:
            sinks = {
                t: stack.enter_context(
                    ParquetSink(Path(out_dir) / t / f"{name}.parquet", row_group_bytes=held)
                )
                for t in TABLES
            }
            read = collections.Counter()  # CVEs per page
            unknown = collections.Counter()  # records per key outside NVD's schema
            # Pages are decompressed, cut and their keys checked on a thread of their own while pyarrow parses the
            # chunk before (it releases the GIL): the check costs a quarter of the parse, hidden there.
            chunks = ((p, raw, unknown_keys(raw)) for p in pages for raw in records_of(p, chunk_bytes))
            for page, raw, keys in _read_ahead(chunks):
                unknown.update(keys)
                try:
                    tables = _tables(raw, prefix + page.name, read[page] + 1)
                except pa.ArrowInvalid as e:
                    # a value of the wrong type; pyarrow counts its row from the chunk's first
                    done = read[page]
                    at = re.sub(
                        r"in row (\d+)", lambda m, done=done: f"in record {done + int(m[1]) + 1}", str(e)
                    )
                    raise ConversionError(f"{page.name}: {at}", file=str(path)) from None
                for table, rows in tables.items():
                    for batch in rows.to_batches():
                        sinks[table].write(batch)
                hold_at_most(held, sinks.values())
                read[page] += len(raw)
            total = read.total()
    except ConversionError as e:
        raise ConversionError(
            f"cannot read NVD pages: {e.message}",
            file=str(path),
            hint="A page is malformed: fetch it again (delete it and rerun)",
        ) from None
    outputs = {t: s.path for t, s in sinks.items() if s.rows}
    rows = {t: s.rows for t, s in sinks.items() if s.rows}
    if rows.get("cves", 0) != total:
        raise ConversionError(f"{total} vulnerabilities read, {rows.get('cves', 0)} written", file=str(path))
    logger.info("%s: %s", path.name, ", ".join(f"{t} {n}" for t, n in rows.items()))
    new = sorted(k for k in unknown if k not in _reported)
    _reported.update(new)
    warnings = (
        [
            f"keys outside NVD's schema, kept in cves.raw only: {', '.join(f'{k} ({unknown[k]} records)' for k in new)}"
        ]
        if new
        else []
    )
    return ConvertResult(
        warnings=warnings,
        rows_in=total,
        rows_out=total,
        rows_rejected=0,
        outputs=outputs,
        bytes_out=sum(s.bytes for s in sinks.values()),
    )


def acquire(dataset: Dataset, raw_dir: Path, ctx: Context) -> list[Path]:
    """Complete sync windows (fetched, or generated for the sample), or the dataset's local paths."""
    opts: Options = dataset.options
    if opts.paths:
        return local_files(opts.paths, ctx)
    if opts.sample:
        from etl import samples
        from etl.samples.nvd import write_sample

        pages = opts.sample_pages
        samples.ensure(
            raw_dir / "sample", {"nvd": pages}, lambda d: write_sample(d, pages=pages), ctx.settings.tmp_dir
        )
        return [raw_dir / "sample"]
    from etl.errors import FetchFailures
    from etl.sources.nvd_api import parse_time, sync

    cursor_name = f"nvd:{dataset.name}"
    # A first sync from mirror files: API windows from the oldest file's release time, instead of a full sync (at
    # the keyless rate limit, 5 pages of 2,000 CVEs per 30 s, a full sync of 300k CVEs takes 15 minutes).
    bootstrap = local_files(opts.bootstrap, ctx) if opts.bootstrap else []
    since = opts.since
    if bootstrap and since is None and not (ctx.state and ctx.state.get_cursor(cursor_name)):
        released = [release_time(p) for p in bootstrap]
        if None in released:
            raise SourceError(
                "a bootstrap file states no release `timestamp`",
                file=str(bootstrap[released.index(None)]),
                hint="Give `since` (ISO-8601) for where the API sync should start",
            )
        # A mirror's data can lag its release by its sync interval (hours): a day's overlap; versions fetched twice
        # are told apart by last_modified (cves_current).
        since = (min(parse_time(t) for t in released) - dt.timedelta(days=1)).isoformat()
        logger.info("NVD bootstrap from %d mirror files; API windows from %s", len(bootstrap), since)
    # sync returns pages; a window folder is the unit converted (one Parquet per table per window), which also
    # keeps `page-00000000` of one window from overwriting another's.
    try:
        pages = sync(
            raw_dir,
            state=ctx.state,
            cursor_name=cursor_name,
            base_url=opts.base_url,
            api_key=os.environ.get("NVD_API_KEY") or None,
            since=since,
            full=opts.full,
            results_per_page=opts.results_per_page,
            max_requests=opts.max_requests,
            window_seconds=opts.window_seconds,
        )
    except FetchFailures as e:
        raise FetchFailures(bootstrap + _windows(e.fetched), e.failures) from None
    return bootstrap + _windows(pages)


def _windows(pages: list[Path]) -> list[Path]:
    return list(dict.fromkeys(Path(p).parent for p in pages))
