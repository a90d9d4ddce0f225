"""NVD CVE API 2.0 pages (and yearly JSON 2.0 feeds) -> normalised Parquet tables.

DuckDB's JSON reader parses the pages in C++ and SQL flattens them, table by table, from one staged copy of the
vulnerabilities: cves, metrics, weaknesses, cpe_matches, references, descriptions. Every table keeps
`_source_file` (window folder / page) and `_source_row` (the vulnerability's 1-based position in the page).
Fields NVD adds later never break the reader: each CVE's whole JSON is kept in `cves.raw`.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from etl.config import Dataset
from etl.errors import ConversionError, SourceError
from etl.memory import batch_rows
from etl.sinks.duckdb import connect, quote_ident, quote_literal
from etl.sinks.parquet import ParquetSink, row_group_bytes
from etl.sources import Context, ConvertResult, local_files

logger = logging.getLogger(__name__)

TABLES = ("cves", "metrics", "weaknesses", "cpe_matches", "references", "descriptions")
COMPLETE = "_complete"  # marker the fetch writes once every page of a window is on disk

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
    sample: bool = field(default=False, metadata={"help": "generate sample pages instead of fetching"})
    sample_pages: int = field(default=6, metadata={"help": "pages of the generated sample"})


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out.replace("__", "_")


def _ts(expr: str) -> str:
    """NVD timestamps are naive UTC, some ending in Z: as TIMESTAMPTZ in UTC."""
    return f"CAST(rtrim({expr}, 'Z') || '+00:00' AS TIMESTAMPTZ)"


def _metric_columns() -> str:
    """Every cvssData field as a column, FIRST's names winning over NVD's early v4.0 ones, from the parsed struct."""
    cols = []
    for name in CVSS_FIELDS:
        if name == "baseSeverity":
            continue
        expr = f"d.{quote_ident(name)}"
        early = NVD_EARLY_V40.get(name)
        if (
            early and early.lower() == name.lower()
        ):  # struct fields ignore case: read the early key from the JSON
            expr = f"coalesce({expr}, m->>'$.cvssData.{early}')"
        elif early:
            expr = f"coalesce({expr}, d.{quote_ident(early)})"
        if name in ("baseScore", "temporalScore", "environmentalScore"):
            expr = f"TRY_CAST({expr} AS DOUBLE)"
        col = {"version": "cvss_data_version", "vectorString": "vector_string"}.get(name, _snake(name))
        cols.append(f"{expr} AS {col}")
    cols += [f"TRY_CAST(p.{quote_ident(k)} AS BOOLEAN) AS {_snake(k)}" for k in V2_EXTRAS]
    return ",\n       ".join(cols)


# Each metric is parsed once into a struct: dozens of JSON path extractions per row ran DuckDB out of memory.
_CVSS_KEYS = [*CVSS_FIELDS, *(v for k, v in NVD_EARLY_V40.items() if k.lower() != v.lower())]
_CVSS_DATA = "{" + ", ".join(f'"{k}": "VARCHAR"' for k in _CVSS_KEYS) + "}"
_METRIC = (
    '{"source": "VARCHAR", "type": "VARCHAR", "baseSeverity": "VARCHAR", "exploitabilityScore": "DOUBLE", '
    '"impactScore": "DOUBLE", '
    + ", ".join(f'"{k}": "VARCHAR"' for k in V2_EXTRAS)
    + f', "cvssData": {_CVSS_DATA}}}'
)


# The scalar fields of a CVE, parsed once per record (many JSON path extractions per row exhaust DuckDB's memory).
_CVE = json.dumps(
    {
        "cve": {
            **{
                k: "VARCHAR"
                for k in (
                    "id",
                    "sourceIdentifier",
                    "published",
                    "lastModified",
                    "vulnStatus",
                    "cisaExploitAdd",
                    "cisaActionDue",
                    "cisaRequiredAction",
                    "cisaVulnerabilityName",
                )
            },
            "descriptions": [{"lang": "VARCHAR", "value": "VARCHAR"}],
        }
    }
)

QUERIES = {
    "cves": f"""
SELECT c.id AS cve_id, c.sourceIdentifier AS source_identifier, {_ts("c.published")} AS published,
       {_ts("c.lastModified")} AS last_modified, c.vulnStatus AS vuln_status,
       list_filter(c.descriptions, lambda d: d.lang = 'en')[1].value AS description,
       TRY_CAST(c.cisaExploitAdd AS DATE) AS cisa_exploit_add, TRY_CAST(c.cisaActionDue AS DATE) AS cisa_action_due,
       c.cisaRequiredAction AS cisa_required_action, c.cisaVulnerabilityName AS cisa_vulnerability_name,
       cve_tags, raw, _source_file, _source_row
FROM (SELECT json_transform(v, {quote_literal(_CVE)}).cve AS c, CAST(v->'$.cve.cveTags' AS VARCHAR) AS cve_tags,
             CAST(v->'$.cve' AS VARCHAR) AS raw, _source_file, _source_row FROM vulns)""",
    "metrics": f"""
SELECT cve_id, cvss_version, p.source, p.type, coalesce(d.baseSeverity, p.baseSeverity) AS base_severity,
       p.exploitabilityScore AS exploitability_score, p.impactScore AS impact_score,
       {_metric_columns()},
       _source_file, _source_row
FROM (SELECT *, json_transform(m, {quote_literal(_METRIC)}) AS p FROM metric_rows),
     LATERAL (SELECT p.cvssData AS d)""",
    "weaknesses": """
SELECT v->>'$.cve.id' AS cve_id, w->>'source' AS source, w->>'type' AS type, d->>'value' AS cwe_id,
       _source_file, _source_row
FROM vulns, unnest(CAST(v->'$.cve.weaknesses' AS JSON[])) AS t(w), unnest(CAST(w->'description' AS JSON[])) AS u(d)""",
    "cpe_matches": """
SELECT v->>'$.cve.id' AS cve_id, c.i AS configuration_index, c.c->>'operator' AS configuration_operator,
       n.i AS node_index, n.n->>'operator' AS operator, TRY_CAST(n.n->>'negate' AS BOOLEAN) AS negate,
       TRY_CAST(m->>'vulnerable' AS BOOLEAN) AS vulnerable, m->>'criteria' AS criteria,
       m->>'matchCriteriaId' AS match_criteria_id,
       m->>'versionStartIncluding' AS version_start_including, m->>'versionStartExcluding' AS version_start_excluding,
       m->>'versionEndIncluding' AS version_end_including, m->>'versionEndExcluding' AS version_end_excluding,
       _source_file, _source_row
FROM vulns, unnest(CAST(v->'$.cve.configurations' AS JSON[])) WITH ORDINALITY AS c(c, i),
     unnest(CAST(c.c->'nodes' AS JSON[])) WITH ORDINALITY AS n(n, i), unnest(CAST(n.n->'cpeMatch' AS JSON[])) AS t(m)""",
    "references": """
SELECT v->>'$.cve.id' AS cve_id, r->>'url' AS url, r->>'source' AS source, CAST(r->'tags' AS VARCHAR[]) AS tags,
       _source_file, _source_row
FROM vulns, unnest(CAST(v->'$.cve.references' AS JSON[])) AS t(r)""",
    "descriptions": """
SELECT v->>'$.cve.id' AS cve_id, d->>'lang' AS lang, d->>'value' AS value, _source_file, _source_row
FROM vulns, unnest(CAST(v->'$.cve.descriptions' AS JSON[])) AS t(d)""",
}


def as_page(path: Path, tmp_dir: Path) -> Path:
    """A single record (`{"cve": …}` or a bare cve object, as feeds-by-CVE publish them) as a one-record page."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        head = f.read(4096)
    if is_feed(path) or b'"vulnerabilities"' in head or _json_size(path) > 16 << 20:
        return path  # a page: NVD writes `vulnerabilities` after a few short keys
    with opener(path, "rt", encoding="utf-8") as f:
        try:
            doc = json.load(f)
        except ValueError as e:
            raise ConversionError(f"not JSON: {e}", file=str(path)) from None
    if not isinstance(doc, dict) or "vulnerabilities" in doc:
        return path
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return write_page(
        tmp_dir / f"{path.name.removesuffix('.gz')}.gz", [doc if "cve" in doc else {"cve": doc}], 0, 1
    )


def pages_of(path: Path) -> list[Path]:
    """The page files a path stands for: a window folder's pages, or the file itself."""
    path = Path(path)
    if path.is_dir():
        pages = sorted(
            p for p in path.iterdir() if p.name.endswith((".json", ".json.gz")) and p.name[0] != "_"
        )
        if not pages:
            raise SourceError("no NVD pages (*.json, *.json.gz) in this folder", file=str(path))
        return pages
    if not path.exists():
        raise SourceError("file not found", file=str(path))
    return [path]


def is_feed(path: Path) -> bool:
    return Path(path).name.startswith("nvdcve-")


def _stage(con: duckdb.DuckDBPyConnection, pages: list[Path], prefix: str, ctx: Context) -> int:
    """Load every vulnerability of the pages as JSON into a temporary table (DuckDB spills it under its limit)."""
    feeds = [p for p in pages if is_feed(p)]
    inputs = [p for p in pages if not is_feed(p)]
    con.execute("CREATE TABLE vulns (_source_file VARCHAR, _source_row BIGINT, v JSON)")
    # One page per statement, checkpointed into the staging file: memory follows one page, not the window.
    # (read_json with a declared column: read_json_objects needed several times the memory.)
    for page in inputs:
        con.execute(
            f"""INSERT INTO vulns
            SELECT ? || parse_filename(filename), generate_subscripts(vulnerabilities, 1), unnest(vulnerabilities)
            FROM read_json({quote_literal(str(page))}, columns = {{'vulnerabilities': 'JSON[]'}}, filename = true,
                           format = 'auto', maximum_object_size = {_json_size(page) + (1 << 20)})""",
            [prefix],
        )
        con.execute("CHECKPOINT")  # staged rows move to the file, out of DuckDB's memory
    for feed in feeds:  # a yearly feed is one huge object: streamed record by record instead
        _stage_feed(con, feed, prefix, ctx)
    # One row per CVSS metric, of the four metric types, staged in steps of pages as well.
    con.execute(
        "CREATE TABLE metric_rows (cve_id VARCHAR, cvss_version VARCHAR, m JSON, _source_file VARCHAR, "
        "_source_row BIGINT)"
    )
    files = [r[0] for r in con.sql("SELECT DISTINCT _source_file FROM vulns ORDER BY 1").fetchall()]
    for file in files:
        con.execute(
            "INSERT INTO metric_rows "
            + " UNION ALL ".join(
                f"SELECT v->>'$.cve.id', '{version}', m, _source_file, _source_row FROM vulns, "
                f"unnest(CAST(v->'$.cve.metrics.{key}' AS JSON[])) AS t(m) WHERE _source_file = $file"
                for key, version in METRIC_KEYS.items()
            ),
            {"file": file},
        )
        con.execute("CHECKPOINT")
    return con.sql("SELECT count(*) FROM vulns").fetchall()[0][0]


def _json_size(path: Path) -> int:
    """Uncompressed size of a page: a gzip file ends with it (modulo 4 GiB, far above any page)."""
    if path.suffix != ".gz":
        return path.stat().st_size
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        return int.from_bytes(f.read(4), "little")


def _stage_feed(con: duckdb.DuckDBPyConnection, feed: Path, prefix: str, ctx: Context) -> None:
    from etl.sources.nvd_api import iter_feed_cves

    ctx.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    ndjson = ctx.settings.tmp_dir / f"{feed.name}.ndjson"
    try:
        with open(ndjson, "w", encoding="utf-8") as out:
            for i, vuln in enumerate(iter_feed_cves(feed), 1):
                out.write(json.dumps({"f": prefix + feed.name, "i": i, "v": vuln}, default=str) + "\n")
        con.execute(f"""INSERT INTO vulns SELECT f, i, v FROM read_json({quote_literal(str(ndjson))},
                        columns = {{'f': 'VARCHAR', 'i': 'BIGINT', 'v': 'JSON'}}, format = 'newline_delimited',
                        maximum_object_size = {16 << 20})""")
    finally:
        ndjson.unlink(missing_ok=True)


def convert_file(path: Path, out_dir: Path, dataset: Dataset, ctx: Context) -> ConvertResult:
    """Convert a window folder, a page or a feed into one Parquet file per table: `out_dir/<table>/<name>.parquet`."""
    path = Path(path)
    scratch = ctx.settings.tmp_dir / f"nvd-{os.getpid()}"
    pages = [as_page(p, scratch) for p in pages_of(path)]
    stem = path.name.removesuffix(".gz").removesuffix(".json")
    prefix = f"{path.name}/" if path.is_dir() else ""
    # Staged in a database file of its own: rows of an in-memory database cannot leave memory, a file's can.
    ctx.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    staging = ctx.settings.tmp_dir / f"nvd-{os.getpid()}-{stem}.duckdb"
    con = connect(ctx.settings, staging, share=0.8)
    outputs, rows, nbytes = {}, {}, 0
    try:
        con.execute("SET TimeZone = 'UTC'")
        try:
            total = _stage(con, pages, prefix, ctx)
        except duckdb.Error as e:
            raise ConversionError(
                f"cannot read NVD pages: {str(e).splitlines()[0]}",
                file=str(path),
                hint="A page is malformed: fetch it again (delete it and rerun)",
            ) from None
        # cves carries each record's whole JSON (a few kB): batches are sized for that.
        rows_per_batch = batch_rows(ctx.settings.memory_limit, 8192)
        for table in TABLES:
            out = Path(out_dir) / table / f"{stem}.parquet"
            with ParquetSink(out, row_group_bytes=row_group_bytes(ctx.settings.memory_limit)) as sink:
                for batch in con.sql(QUERIES[table]).to_arrow_reader(rows_per_batch):
                    sink.write(batch)
            if sink.rows:
                outputs[table], rows[table] = out, sink.rows
                nbytes += sink.bytes
    finally:
        con.close()
        for leftover in (staging, Path(f"{staging}.wal")):
            leftover.unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
    if rows.get("cves", 0) != total:
        raise ConversionError(f"{total} vulnerabilities read, {rows.get('cves', 0)} written", file=str(path))
    logger.info("%s: %s", path.name, ", ".join(f"{t} {n}" for t, n in rows.items()))
    return ConvertResult(rows_in=total, rows_out=total, rows_rejected=0, outputs=outputs, bytes_out=nbytes)


def acquire(dataset: Dataset, raw_dir: Path, ctx: Context) -> list[Path]:
    """Complete sync windows (fetched, or generated for the sample), or the dataset's local paths."""
    opts: Options = dataset.options
    if opts.paths:
        return local_files(opts.paths, ctx)
    if opts.sample:
        from etl.samples.nvd import write_sample

        write_sample(raw_dir / "sample", pages=opts.sample_pages)
        return [raw_dir / "sample"]
    from etl.errors import FetchFailures
    from etl.sources.nvd_api import sync

    # sync returns pages; a window folder is the unit converted (one Parquet per table per window), which also
    # keeps `page-00000000` of one window from overwriting another's.
    try:
        pages = sync(
            raw_dir,
            state=ctx.state,
            cursor_name=f"nvd:{dataset.name}",
            base_url=opts.base_url,
            api_key=os.environ.get("NVD_API_KEY") or None,
            since=opts.since,
            full=opts.full,
            results_per_page=opts.results_per_page,
            max_requests=opts.max_requests,
            window_seconds=opts.window_seconds,
        )
    except FetchFailures as e:
        raise FetchFailures(_windows(e.fetched), e.failures) from None
    return _windows(pages)


def _windows(pages: list[Path]) -> list[Path]:
    return list(dict.fromkeys(Path(p).parent for p in pages))


def write_page(path: Path, vulnerabilities: list[dict], start_index: int, total: int) -> Path:
    """A page as NVD's API returns it (used by the sample generator and tests)."""
    page = {
        "resultsPerPage": len(vulnerabilities),
        "startIndex": start_index,
        "totalResults": total,
        "format": "NVD_CVE",
        "version": "2.0",
        "timestamp": "2026-11-01T00:00:00.000",
        "vulnerabilities": vulnerabilities,
    }
    from etl.sinks.parquet import atomic_path

    with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as f:
        json.dump(page, f)
    return path
