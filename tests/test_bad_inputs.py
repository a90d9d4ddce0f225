"""A corpus of bad inputs across every source, each run as a user would (`etl --json convert|run|fetch …`).

Each case asserts the exit code, the message (naming the file and, where there is one, the line or byte), that
nothing is left half-written (no temporary file, no Parquet for a failed file), and the row accounting: the rows
written plus the rows rejected are the rows the input holds.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest

from etl.samples.datasus import FIELDS as SIH_FIELDS
from etl.samples.datasus import _record
from etl.samples.nvd import make_cve
from etl.sources.dbc import write_dbc
from etl.sources.dbf import write_dbf
from tests.http_server import FaultServer

FIELDS = [("ID", "N", 6, 0), ("NOME", "C", 10, 0), ("DT", "D", 8, 0)]


def records(n: int, bad_date: int | None = None) -> list[tuple]:
    return [(i, f"n{i}", "15/05/20" if i == bad_date else dt.date(2023, 1, 1 + i % 28)) for i in range(n)]


def csv_rows(n: int, start: int = 1) -> str:
    return "".join(f"{i},n{i},{i * 2}\n" for i in range(start, start + n))


@dataclass
class Case:
    id: str
    kind: (
        str  # the `etl convert` kind, or "run" (the file is etl.toml), or "fetch" (a URL on the fault server)
    )
    name: str
    make: object  # bytes, or a callable(tmp_path) -> None that writes `name`
    code: int
    message: str
    rows: int = 0
    rejected: int = 0
    flags: list[str] = field(default_factory=list)
    globals: list[str] = field(default_factory=list)
    part: bytes | None = None  # a partial download left by an earlier fetch


def dbf(n: int, **kw) -> bytes:
    def make(tmp: Path) -> bytes:
        return write_dbf(
            tmp / "scratch.dbf", FIELDS, records(n, kw.get("bad_date")), deleted=kw.get("deleted", set())
        ).read_bytes()

    return make


def declared(data: bytes, count: int) -> bytes:
    """A DBF whose header declares `count` records, whatever it holds."""
    return data[:4] + struct.pack("<I", count) + data[8:]


def cut(data: bytes, keep: float) -> bytes:
    return data[: int(len(data) * keep)]


def page(vulns: list | None, **envelope) -> bytes:
    n = len(vulns or [])
    doc = {
        "resultsPerPage": n,
        "startIndex": 0,
        "totalResults": n,
        "format": "NVD_CVE",
        "version": "2.0",
        "timestamp": "2026-11-01T00:00:00.000",
        **envelope,
    }
    if vulns is not None:
        doc["vulnerabilities"] = vulns
    return json.dumps(doc).encode()


CVES = [make_cve(i) for i in range(30)]
GOOD_PAGE = page(CVES)


def nvd_folder(pages: dict[str, bytes]):
    def make(tmp: Path) -> None:
        folder = tmp.parent / "window"
        folder.mkdir()
        for name, data in pages.items():
            (folder / name).write_bytes(data)

    return make


def zip_of(members: dict[str, bytes]):
    def make(tmp: Path) -> bytes:
        with zipfile.ZipFile(tmp / "scratch.zip", "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return (tmp / "scratch.zip").read_bytes()

    return make


def dbc(n: int, sih: bool = False):
    def make(tmp: Path) -> bytes:
        import random

        rng = random.Random(n)
        rows = (_record(rng, "SP", 2023, 1, i) for i in range(n)) if sih else records(n)
        src = write_dbf(tmp / "scratch.dbf", SIH_FIELDS if sih else FIELDS, rows)
        return write_dbc(src, tmp / "scratch.dbc").read_bytes()

    return make


def sav(tmp: Path) -> bytes:
    pyreadstat.write_sav(pd.DataFrame({"v": [float(i) for i in range(500)]}), tmp / "scratch.sav")
    return (tmp / "scratch.sav").read_bytes()


def config(name: str, extra: str = "") -> bytes:
    return f'[datasets."{name}"]\nkind = "csv"\npaths = ["x.csv"]\n{extra}'.encode()


def long_lines(field_bytes: int) -> bytes:
    return ("a,b,c\n" + csv_rows(10) + f"11,{'x' * field_bytes},22\n" + csv_rows(18, 12)).encode()


UNCLOSED_LATE = "a,b,c\n" + csv_rows(2500) + '2501,"unclosed,5002\n' + csv_rows(499, 2502)
UNCLOSED_TOP = "a,b,c\n" + csv_rows(5) + '6,"unclosed,12\n' + csv_rows(2993, 7)
BIG_GZ = gzip.compress(("a,b,c\n" + csv_rows(200_000)).encode(), compresslevel=1)

CASES = [
    # CSV
    Case("csv-missing", "csv", "missing.csv", None, 1, "missing.csv: file not found"),
    Case("csv-empty", "csv", "empty.csv", b"", 1, "empty.csv: file is empty"),
    Case("csv-header-only", "csv", "header.csv", b"a,b,c\n", 1, "header.csv: no data rows"),
    Case("csv-binary", "csv", "bin.csv", bytes(range(256)) * 64, 1, "bin.csv: this looks like a binary file"),
    Case(
        "csv-one-nul",
        "csv",
        "nul.csv",
        ("a,b,c\n" + csv_rows(50) + "51,x\x00y,102\n" + csv_rows(49, 52)).encode(),
        0,
        "",
        rows=100,
    ),
    Case("csv-6mb-field", "csv", "long.csv", long_lines(6_000_000), 0, "", rows=29),
    Case(
        "csv-10mb-field",
        "csv",
        "long.csv",
        long_lines(10_000_000),
        1,
        "long.csv, line 12: a line is longer than 8 MB, the most read at a 1024 MB budget. Raise --memory-limit",
    ),
    Case(
        "csv-10mb-field-larger-budget",
        "csv",
        "long.csv",
        long_lines(10_000_000),
        0,
        "",
        rows=29,
        globals=["--memory-limit", "2GB"],
    ),
    Case(  # beyond the rows DuckDB's sniffer reads, where its reader dropped the line without a word
        "csv-10mb-field-far-down",
        "csv",
        "long.csv",
        ("a,b,c\n" + csv_rows(120_000) + f"120001,{'x' * 10_000_000},1\n" + csv_rows(5, 120_002)).encode(),
        1,
        "long.csv, line 120002: a line is longer than 8 MB, the most read at a 1024 MB budget",
    ),
    Case(
        "csv-3mb-field-small-budget",
        "csv",
        "long.csv",
        long_lines(3_000_000),
        1,
        "long.csv, line 12: a line is longer than 2 MB, the most read at a 320 MB budget",
        globals=["--memory-limit", "320MB"],
    ),
    Case(
        "csv-unclosed-quote",
        "csv",
        "q.csv",
        UNCLOSED_LATE.encode(),
        1,
        'q.csv, line 2502: a " quote opens here and is never closed',
    ),
    Case(
        "csv-unclosed-quote-at-top",
        "csv",
        "q.csv",
        UNCLOSED_TOP.encode(),
        1,
        "q.csv: the delimiter was not recognised: the header 'a,b,c' became one column. Pass --delimiter ','",
    ),
    Case(
        "csv-unclosed-quote-at-top-delimited",
        "csv",
        "q.csv",
        UNCLOSED_TOP.encode(),
        1,
        "q.csv: could not tell the file's delimiter, quote and header apart (line 7 opens a \" quote",
        flags=["--delimiter", ","],
    ),
    Case(
        "csv-truncated-gz-small",
        "csv",
        "t.csv.gz",
        cut(gzip.compress(b"a,b\n1,2\n" * 100), 0.5),
        1,
        "t.csv.gz: cannot read: Compressed file ended before the end-of-stream marker was reached. The file is cut short",
    ),
    Case(
        "csv-truncated-gz-large",
        "csv",
        "t.csv.gz",
        cut(BIG_GZ, 0.5),
        1,
        "t.csv.gz: Unexpected end of GZIP stream",
    ),
    Case(
        "csv-gz-not-gzip",
        "csv",
        "plain.csv.gz",
        b"a,b\n1,2\n",
        1,
        "plain.csv.gz: cannot read: Not a gzipped file",
    ),
    Case(
        "csv-too-many-fields",
        "csv",
        "r.csv",
        ("a,b,c\n" + csv_rows(5) + "6,x,1,EXTRA\n" + csv_rows(4, 7)).encode(),
        0,
        "",
        rows=9,
        rejected=1,
    ),
    Case(
        "csv-too-few-fields",
        "csv",
        "r.csv",
        ("a,b,c\n" + csv_rows(5) + "6,x\n" + csv_rows(4, 7)).encode(),
        0,
        "",
        rows=9,
        rejected=1,
    ),
    Case(
        "csv-stray-number",
        "csv",
        "s.csv",
        ("a,b,c\n" + csv_rows(3000) + "3001,n,4O5\n").encode(),
        0,
        "",
        rows=3000,
        rejected=1,
    ),
    Case(
        "csv-invalid-utf8",
        "csv",
        "u.csv",
        ("a,b,c\n" + csv_rows(5)).encode() + b"6,caf\xe9,12\n" + csv_rows(4, 7).encode(),
        0,
        "",
        rows=9,
        rejected=1,
    ),
    Case(
        "csv-undefined-cp1252",
        "csv",
        "w.csv",
        b"a,b\n1,ok\n2,\x81\n",
        1,
        "w.csv, byte 11: not valid cp1252: character maps to <undefined>. Pass the right --encoding",
        flags=["--encoding", "cp1252"],
    ),
    Case(
        "csv-schema-unknown-column",
        "csv",
        "k.csv",
        b"a,b\n1,2\n",
        1,
        "schema names columns the file does not have: nope",
        flags=["--schema", "nope=INT"],
    ),
    Case(
        "csv-utf16",
        "csv",
        "w16.csv",
        "a,b\n1,é\n2,ü\n".encode("utf-16"),
        0,
        "",
        rows=2,
        flags=["--encoding", "utf-16"],
    ),
    # DBF
    Case(
        "dbf-truncated",
        "dbf",
        "t.dbf",
        lambda tmp: cut(dbf(400)(tmp), 0.6),
        1,
        "t.dbf: truncated: the header declares 400 records, the file holds",
    ),
    Case(
        "dbf-surplus-records",
        "dbf",
        "s.dbf",
        lambda tmp: declared(dbf(5000)(tmp), 4000),
        0,
        "s.dbf: the header declares 4,000 records, but 1,000 more whole records follow them and were not read",
        rows=4000,
    ),
    Case("dbf-deleted-records", "dbf", "d.dbf", dbf(100, deleted={3, 50}), 0, "", rows=98, rejected=2),
    Case(
        "dbf-untyped-date",
        "dbf",
        "u.dbf",
        dbf(100, bad_date=7),
        0,
        "1 values of DT could not be typed and are null",
        rows=100,
    ),
    Case("dbf-not-a-dbf", "dbf", "n.dbf", b"id,name\n1,x\n" * 10, 1, "n.dbf"),
    Case("dbf-empty", "dbf", "e.dbf", b"", 1, "e.dbf"),
    # DBC
    Case("dbc-truncated", "dbc", "T.dbc", lambda tmp: cut(dbc(3000)(tmp), 0.5), 1, "T.dbc"),
    Case("dbc-not-a-dbc", "dbc", "N.dbc", b"\x00" * 5000, 1, "N.dbc"),
    Case("dbc-empty", "dbc", "E.dbc", b"", 1, "E.dbc"),
    # DATASUS archives (etl run; the ZIP is the dataset's path)
    Case(
        "zip-not-a-zip",
        "run-datasus",
        "x.zip",
        b"PK but not really" * 10,
        1,
        "x.zip: not a readable ZIP archive: File is not a zip file. Fetch the archive again",
    ),
    Case(
        "zip-escaping-member",
        "run-datasus",
        "x.zip",
        zip_of({"../../evil.dbc": b"x"}),
        1,
        "refusing archive member '../../evil.dbc': it escapes the folder",
    ),
    Case(
        "zip-one-name-two-folders",
        "run-datasus",
        "x.zip",
        lambda tmp: zip_of({"a/X.dbc": dbc(20, sih=True)(tmp), "b/X.dbc": dbc(30, sih=True)(tmp)})(tmp),
        0,
        "",
        rows=50,
    ),
    # NVD
    Case(
        "nvd-truncated-gz",
        "nvd",
        "p.json.gz",
        cut(gzip.compress(GOOD_PAGE), 0.5),
        1,
        "p.json.gz: the compressed data ends early: the file is truncated. A page is malformed: fetch it again",
    ),
    Case("nvd-zero-byte-page", "nvd", "p.json.gz", b"", 1, "p.json.gz: the file is empty (0 bytes)"),
    Case(
        "nvd-not-gzip",
        "nvd",
        "p.json.gz",
        GOOD_PAGE,
        1,
        "p.json.gz: not gzip data, though its name ends in .gz",
    ),
    Case(
        "nvd-no-vulnerabilities",
        "nvd",
        "p.json",
        page(None),
        1,
        "p.json: not an NVD page: no `vulnerabilities` key, and not a CVE record (keys: format, resultsPerPage",
    ),
    Case(
        "nvd-malformed-small",
        "nvd",
        "p.json",
        b'{"resultsPerPage": 1, "vulnerabilities": [{"cve": {"id": "CVE-1"}},, ]}',
        1,
        "p.json: not a valid NVD page: JSON is malformed: invalid character (byte 67)",
    ),
    Case(
        "nvd-malformed-other-keys",
        "nvd",
        "p.json",
        b'{"format": "NVD_CVE", "totalResults": 1 "x": 2}',
        1,
        "p.json: not a valid NVD page: JSON is malformed: expected ',' or '}' (byte 40)",
    ),
    Case(
        "nvd-not-json",
        "nvd",
        "p.json",
        b"<html>503 Service Unavailable</html>",
        1,
        "p.json: not a valid NVD page: JSON is malformed: invalid character (byte 0)",
    ),
    Case(
        "nvd-latin1-page",
        "nvd",
        "p.json",
        b'{"id": "CVE-1", "x": "caf\xe9"}',
        1,
        "p.json: not UTF-8 text (invalid continuation byte at byte 25)",
    ),
    Case(
        "nvd-empty-folder",
        "nvd",
        "window",
        nvd_folder({}),
        1,
        "no NVD pages (*.json, *.json.gz) in this folder",
    ),
    Case(
        "nvd-one-bad-page-in-a-window",
        "nvd",
        "window",
        nvd_folder({"page-0.json.gz": gzip.compress(GOOD_PAGE), "page-1.json.gz": b""}),
        1,
        "page-1.json.gz: the file is empty (0 bytes)",
    ),
    Case(
        "nvd-good-window",
        "nvd",
        "window",
        nvd_folder({"page-0.json.gz": gzip.compress(GOOD_PAGE)}),
        0,
        "",
        rows=30,
    ),
    # Statistical files
    Case("stat-truncated-sav", "stat", "t.sav", lambda tmp: cut(sav(tmp), 0.5), 1, "t.sav: cannot read"),
    Case("stat-not-a-sav", "stat", "n.sav", b"not spss" * 100, 1, "n.sav: cannot read"),
    # Configuration: names that would escape the data directory or break the warehouse
    Case(
        "config-escaping-dataset",
        "run",
        "etl.toml",
        config("../../escape"),
        1,
        "[datasets.../../escape]: invalid name '../../escape'. Use letters, digits and underscores",
    ),
    Case("config-quote-in-dataset", "run", "etl.toml", config('a\\"b'), 1, "invalid name 'a\"b'"),
    Case(
        "config-bad-publish-schema",
        "run",
        "etl.toml",
        config("ok", '[publish.postgres]\nschema = "x; drop"\n'),
        1,
        "[publish.postgres].schema: invalid name 'x; drop'",
    ),
    # Downloads (`etl fetch url`) from the fault-injecting server
    Case("fetch-404", "fetch", "/gone.csv", ["404"], 1, "gone.csv: HTTP 404"),
    Case("fetch-redirect-loop", "fetch", "/x.csv", ["loop"] * 40, 1, "x.csv: the server redirects in a loop"),
    Case(
        "fetch-throttled-throughout",
        "fetch",
        "/x.csv",
        ["503"] * 5,
        1,
        "x.csv: gave up after 5 tries: HTTP 503",
    ),
    Case("fetch-416-other-size", "fetch", "/x.csv", ["416-wrong"], 0, "", part=b"stale bytes"),
    Case("fetch-416-complete", "fetch", "/x.csv", ["416"], 0, "", part=b"a,b\n1,2\n" * 1000),
    Case("fetch-206-from-another-offset", "fetch", "/x.csv", ["bad-range"], 0, "", part=b"a,b\n"),
    Case("fetch-dropped-then-resumed", "fetch", "/x.csv", ["drop", "drop"], 0, ""),
    Case("fetch-gzip-encoded", "fetch", "/x.csv", ["gzip"], 0, ""),
]


def leftovers(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.name.endswith((".tmp", ".part")) or "sample-" in p.name
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(etl, tmp_path, case: Case):
    work = tmp_path / "work"
    work.mkdir()
    target = tmp_path / case.name.lstrip("/")
    data = case.make(work) if callable(case.make) else case.make
    if isinstance(data, bytes) and case.kind != "fetch":
        target.write_bytes(data)
    if case.kind == "fetch":
        with FaultServer({"/x.csv": b"a,b\n1,2\n" * 1000}) as server:
            server.faults += data
            if case.part is not None:
                (tmp_path / "data/raw/web").mkdir(parents=True)
                (tmp_path / "data/raw/web/x.csv.part").write_bytes(case.part)
            r = etl("--json", "fetch", "url", server.url(case.name), "--out", "data/raw/web")
    elif case.kind == "run":
        (tmp_path / "x.csv").write_text("a\n1\n")
        r = etl("--json", "run")
    elif case.kind == "run-datasus":
        (tmp_path / "etl.toml").write_text(f'[datasets.z]\nkind = "datasus"\npaths = ["{case.name}"]\n')
        r = etl("--json", "run")
    else:
        r = etl(*case.globals, "--json", "convert", case.kind, target, *case.flags, "--out", "out")
    assert r.code == case.code, r.err
    assert case.message in r.err
    assert leftovers(tmp_path) == []
    if case.kind in ("run",):
        return  # refused before anything ran
    summary = json.loads(r.out)
    assert (summary["rows"], summary["rejected"]) == (case.rows, case.rejected)
    assert summary["failed"] == (1 if case.code else 0)
    if case.code and case.kind in ("csv", "dbf", "dbc", "nvd", "stat"):
        assert list((tmp_path / "out").rglob("*.parquet")) == []  # a failed file leaves no output
    if case.kind == "fetch" and case.code == 0:
        body = (tmp_path / "data/raw/web/x.csv").read_bytes()
        assert (gzip.decompress(body) if "gzip" in data else body) == b"a,b\n1,2\n" * 1000  # as sent


def test_the_corpus_is_large_and_covers_every_source():
    kinds = {c.kind for c in CASES}
    assert len(CASES) >= 40 and {"csv", "dbf", "dbc", "nvd", "stat", "run", "run-datasus", "fetch"} <= kinds
