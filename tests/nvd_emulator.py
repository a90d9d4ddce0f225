"""An NVD CVE API 2.0 emulator on loopback: pages, lastModified windows, the rolling rate limit, and NVD's faults.

`Emulator` holds generated CVEs (`make_cve`, shaped like NVD's records) and changes (`make_change`, the Change
History API's, served at HISTORY_PATH under the same rate limit and faults, paged by changeStartDate/changeEndDate
and at most 5,000 a page) and answers like NVD: `startIndex` /
`resultsPerPage` paging, `lastModStartDate`/`lastModEndDate` filtering (a 404 with a `message` header when only
one end is given, a date lacks its offset, or the range exceeds 120 days), 403 beyond `limit` requests in a
rolling `window` seconds, and faults injected one per admitted request. The `nvd_emulator` fixture runs one (import `nvd_emulator_fixture` into a test module to use it).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from etl.samples.nvd import make_change, make_cve

__all__ = [
    "BASE",
    "FAULTS",
    "HISTORY_PATH",
    "Emulator",
    "make_cve",
    "nvd_emulator_fixture",
    "running",
    "serve",
]

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PATH = "/rest/json/cves/2.0"
HISTORY_PATH = "/rest/json/cvehistory/2.0"
# What differs between the two APIs: the date parameters, the items' key and timestamp, the page size limit.
APIS = {
    PATH: ("lastModStartDate", "lastModEndDate", "vulnerabilities", ("cve", "lastModified"), "NVD_CVE", 2000),
    HISTORY_PATH: (
        "changeStartDate",
        "changeEndDate",
        "cveChanges",
        ("change", "created"),
        "NVD_CVEHistory",
        5000,
    ),
}
FAULTS = ("503", "429", "slow", "drop", "malformed", "grow")
# NVD insists on extended ISO-8601 with an explicit offset for the lastMod dates.
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _time(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)  # records' timestamps are naive UTC


class Emulator:
    """The API's data and behaviour; `faults` are consumed one per request admitted by the rate limit.

    Faults: '503'; '429' (with `Retry-After: retry_after`); 'slow' (answers after `slow_seconds`); 'drop' (closes
    the connection a third of the way through the body); 'malformed' (half the JSON); 'grow' (a new CVE, modified
    inside the requested window, is inserted first, so totalResults changes and every later record shifts).
    """

    def __init__(
        self,
        count: int = 250,
        *,
        changes: int = 0,
        limit: int = 5,
        window: float = 1.0,
        max_page: int | None = None,
        max_days: int = 120,
        retry_after: int = 1,
        slow_seconds: float = 1.5,
    ):
        # CVE i was last modified i hours after BASE.
        self.cves = [make_cve(i, modified=BASE + dt.timedelta(hours=i)) for i in range(count)]
        # Change j (of the Change History API) was created j hours after BASE; it changes CVE j // 3.
        self.changes = [make_change(j // 3, j % 3, BASE + dt.timedelta(hours=j)) for j in range(changes)]
        self.limit, self.window, self.max_page, self.max_days = limit, window, max_page, max_days
        self.retry_after, self.slow_seconds = retry_after, slow_seconds
        self.faults: list[str | None] = []
        self.requests: list[dict] = []  # each request's query, plus its apiKey header
        self.throttled = 0
        self.sent: collections.deque[float] = collections.deque()
        self.lock = threading.Lock()

    def add(self, modified: dt.datetime, *, first: bool = False, history: bool = False) -> dict:
        """A new CVE last modified (or, with history, a change created) at `modified`, appended or inserted first."""
        items = self.changes if history else self.cves
        item = (
            make_change(len(items) // 3, 3, modified) if history else make_cve(len(items), modified=modified)
        )
        items.insert(0 if first else len(items), item)
        return item

    def matching(
        self, start: dt.datetime | None = None, end: dt.datetime | None = None, *, history: bool = False
    ) -> list[dict]:
        """The CVEs (or changes) a query for lastModified (created) in [start, end] returns (all without dates)."""
        items = self.changes if history else self.cves
        if start is None:
            return list(items)
        key, stamp = APIS[HISTORY_PATH if history else PATH][3]
        return [c for c in items if start <= _time(c[key][stamp]) <= end]

    def handle(self, query: dict, headers, path: str = PATH) -> tuple[int, dict, bytes, str | None]:
        """Status, headers, body and the fault to apply while sending, for one GET of one of the two APIs."""
        start_key, end_key, items_key, _, fmt, max_page = APIS[path]
        history = path == HISTORY_PATH
        with self.lock:
            now = time.monotonic()
            while self.sent and now - self.sent[0] >= self.window:
                self.sent.popleft()
            self.requests.append({**query, "apiKey": headers.get("apiKey")})
            if len(self.sent) >= self.limit:
                self.throttled += 1
                return 403, {}, b"Forbidden", None
            self.sent.append(now)
            fault = self.faults.pop(0) if self.faults else None
            if fault == "503":
                return 503, {}, b"Service Unavailable", None
            if fault == "429":
                return 429, {"Retry-After": str(self.retry_after)}, b"Too Many Requests", None
            start_s, end_s = query.get(start_key), query.get(end_key)
            if bool(start_s) != bool(end_s):
                return 404, {"message": f"Both {start_key} and {end_key} are required"}, b"", None
            start = end = None
            if start_s:
                if not (ISO_WITH_OFFSET.match(start_s) and ISO_WITH_OFFSET.match(end_s)):
                    return 404, {"message": "Invalid date: use extended ISO-8601 with an offset"}, b"", None
                start, end = _time(start_s), _time(end_s)
                if not dt.timedelta(0) <= end - start <= dt.timedelta(days=self.max_days):
                    message = f"The {start_key[:-9]} date range must not exceed {self.max_days} days"
                    return 404, {"message": message}, b"", None
            if fault == "grow":
                self.add(start + dt.timedelta(seconds=1) if start else BASE, first=True, history=history)
            items = self.matching(start, end, history=history)
        first = int(query.get("startIndex", 0))
        limit = min(self.max_page or max_page, max_page)
        size = min(int(query.get("resultsPerPage", limit)), limit)
        page = items[first : first + size]
        body = json.dumps(
            {
                "resultsPerPage": len(page),
                "startIndex": first,
                "totalResults": len(items),
                "format": fmt,
                "version": "2.0",
                "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
                items_key: page,
            }
        ).encode()
        if fault == "malformed":
            body = body[: len(body) // 2]
        return 200, {"Content-Type": "application/json"}, body, fault


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients that time out or are killed
            super().handle_error(request, client_address)


def serve(emulator: Emulator) -> tuple[ThreadingHTTPServer, str]:
    """Start a server for emulator on a free loopback port: (server, base URL). Call server.shutdown() after."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urlparse(self.path)
            if url.path not in APIS:
                self.send_error(404)
                return
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            status, headers, body, fault = emulator.handle(query, self.headers, url.path)
            if fault == "slow":
                time.sleep(emulator.slow_seconds)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if fault == "drop":
                self.wfile.write(body[: len(body) // 3])
                self.close_connection = True
                return
            self.wfile.write(body)

    server = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}{PATH}"


@contextlib.contextmanager
def running(emulator: Emulator) -> Iterator[tuple[Emulator, str]]:
    """The emulator served for the duration of the block: (emulator, base URL)."""
    server, url = serve(emulator)
    try:
        yield emulator, url
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(name="nvd_emulator")
def nvd_emulator_fixture() -> Iterator[tuple[Emulator, str]]:
    """A served emulator with 250 CVEs and a limit of 5 requests per rolling second: (emulator, base URL)."""
    with running(Emulator()) as served:
        yield served
