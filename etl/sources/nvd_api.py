"""NVD CVE API 2.0: paging under the rate limit, resumable, incremental by lastModified windows.

Layout under the output folder: one folder per sync window, `full/` for a full sync and `<start>_<end>/` (UTC,
`YYYYMMDDTHHMMSSZ`) for an incremental one. A window folder holds `_window.json` (its query, page size, start
time and the totalResults its pages were read under), `page-<startIndex:08d>.json.gz` as NVD sent them, and
`_complete` once every page is durably written. Only then does the cursor move.
"""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ijson
import requests

from etl.download import retry_delay
from etl.errors import FetchError, FetchFailures
from etl.files import atomic_path, remove_partials
from etl.sources.nvd_pages import COMPLETE, FULL, WINDOW_META
from etl.state import StateStore

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://services.nvd.nist.gov/rest/json/cves/2.0"
MAX_WINDOW = dt.timedelta(days=120)  # NVD rejects longer lastModified ranges with a 404
STAMP = "%Y%m%dT%H%M%SZ"
RETRY_STATUS = {403, 429, 500, 502, 503, 504}  # NVD answers throttling with 403
MAX_READS = 5  # passes over a window whose totalResults keeps changing before giving up
CHUNK = 1 << 20


@dataclass(frozen=True)
class Endpoint:
    """What differs between NVD's paged APIs: the id each item of a page has, and the window's date parameters."""

    item_ids: str  # ijson path of each item's id in a page
    start: str
    end: str


CVES = Endpoint("vulnerabilities.item.cve.id", "lastModStartDate", "lastModEndDate")
HISTORY = Endpoint("cveChanges.item.change.cveChangeId", "changeStartDate", "changeEndDate")


class RateLimiter:
    """At most `limit` requests in any rolling `window` seconds (NVD: 5 per 30 s, 50 with an API key).

    A request counts from when it is sent until its answer's headers arrive (`answered()`, called by the thread
    that sent it): the server counts it at some moment in between, so a slow network, a busy server or this
    process's own threads delaying the send can never put more than `limit` arrivals in one of its windows.
    """

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self.margin = 0.05 + window * 0.01
        self.sent: collections.deque[list[float]] = collections.deque()
        self.lock = threading.Lock()
        self.mine = threading.local()

    def wait(self) -> None:
        """Block until one more request fits in the window, and count it."""
        with self.lock:
            now = time.monotonic()
            while self.sent and now - self.sent[0][0] >= self.window:
                self.sent.popleft()
            if len(self.sent) >= self.limit:
                time.sleep(max(0.0, self.window - (now - self.sent[0][0])) + self.margin)
                self.sent.popleft()
            self.mine.stamp = [time.monotonic()]
            self.sent.append(self.mine.stamp)

    def answered(self) -> None:
        """The request this thread sent last was answered: it counts from now."""
        with self.lock:
            self.mine.stamp[0] = time.monotonic()


_limiters: dict[tuple[str, int, float], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(base_url: str, limit: int, window: float) -> RateLimiter:
    """One limiter per endpoint and limit in this process, so that syncs run one after another share the window."""
    with _limiters_lock:
        return _limiters.setdefault((base_url, limit, window), RateLimiter(limit, window))


class _Retry(Exception):
    """A transient failure: throttling, a server error, a broken or malformed page."""

    def __init__(self, message: str, retry_after: str | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class PageInfo:
    total: int  # totalResults
    count: int  # vulnerabilities in this page
    bytes: int  # uncompressed size


def inspect_page(path: Path, item_ids: str = CVES.item_ids) -> PageInfo:
    """totalResults and the number of items of a page file, streamed; malformed JSON raises."""
    total = None
    with gzip.open(path, "rb") as f:
        for prefix, _event, value in ijson.parse(f):
            if prefix == "totalResults":  # NVD sends it before the vulnerabilities: the scan stops early
                total = value
                break
        f.seek(0)
        count = sum(1 for _ in ijson.items(f, item_ids))
        size = f.tell()
    if not isinstance(total, int):
        raise _Retry("a page without totalResults")
    return PageInfo(total, count, size)


class Client:
    """Fetches pages under the rate limit, retrying transient failures with backoff."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        limiter: RateLimiter,
        timeout: float,
        max_tries: int,
        endpoint: Endpoint = CVES,
    ):
        self.base_url, self.limiter, self.timeout, self.max_tries = base_url, limiter, timeout, max_tries
        self.endpoint = endpoint
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "etl (NVD sync)"
        if api_key:
            self.session.headers["apiKey"] = api_key  # a header, so it is never part of a logged URL

    def fetch(self, params: dict, dest: Path, where: str) -> PageInfo:
        """Stream one page into dest (gzip) and check it is whole; retried up to max_tries times."""
        for attempt in range(self.max_tries):
            self.limiter.wait()
            try:
                return self._fetch_once(params, dest, where)
            except (
                _Retry,
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
                ijson.JSONError,
            ) as e:
                reason = _reason(e)
                if attempt + 1 == self.max_tries:
                    raise FetchError(
                        f"gave up after {self.max_tries} tries: {reason}",
                        file=where,
                        hint="Run again later: the fetch resumes from this page",
                    ) from None
                delay = retry_delay(attempt, getattr(e, "retry_after", None))
                logger.warning("%s: %s; retrying in %.1f s", where, reason, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _fetch_once(self, params: dict, dest: Path, where: str) -> PageInfo:
        with self.session.get(self.base_url, params=params, timeout=self.timeout, stream=True) as r:
            self.limiter.answered()
            if r.status_code in RETRY_STATUS:
                raise _Retry(f"HTTP {r.status_code} {r.reason}", r.headers.get("Retry-After"))
            if r.status_code >= 400:
                # NVD gives the reason for a 404 (bad dates, a window over 120 days) in a `message` header.
                raise FetchError(
                    f"HTTP {r.status_code}: {r.headers.get('message') or r.reason}",
                    file=where,
                    hint="Check the base URL and the dates; this is not retried",
                )
            with gzip.open(dest, "wb", compresslevel=6) as f:
                for chunk in r.iter_content(CHUNK):
                    f.write(chunk)
        info = inspect_page(dest, self.endpoint.item_ids)
        if info.count == 0 and params["startIndex"] < info.total:
            raise _Retry(f"an empty page where totalResults is {info.total}")
        return info


def _reason(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text if isinstance(e, _Retry) else f"{type(e).__name__}: {text}"


def _iso(t: dt.datetime) -> str:
    """Extended ISO-8601 with an explicit offset, as NVD requires for lastModStartDate/lastModEndDate."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")


def parse_time(value: str | dt.datetime) -> dt.datetime:
    """An aware datetime from ISO-8601 text (naive means UTC, as in NVD's records)."""
    t = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime(STAMP)


def _window_name(start: dt.datetime, end: dt.datetime) -> str:
    return f"{_stamp(start)}_{_stamp(end)}"


def _window_bounds(name: str) -> tuple[dt.datetime, dt.datetime]:
    start, end = name.split("_")
    return (
        dt.datetime.strptime(start, STAMP).replace(tzinfo=dt.UTC),
        dt.datetime.strptime(end, STAMP).replace(tzinfo=dt.UTC),
    )


def _pages(folder: Path) -> list[Path]:
    return sorted(folder.glob("page-*.json.gz"))


def _write_json(path: Path, value: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value))


class _TotalChanged(Exception):
    """totalResults differs from the one the window's first page had."""

    def __init__(self, total: int):
        self.total = total


def _read_pass(client: Client, folder: Path, meta: dict, progress) -> int | None:
    """Page from the first page not yet written up to totalResults; the new totalResults if it changed meanwhile."""
    pages = _pages(folder)
    start = (
        int(pages[-1].name[5:13]) + inspect_page(pages[-1], client.endpoint.item_ids).count if pages else 0
    )
    while meta["total"] is None or start < meta["total"]:
        where = f"NVD window {folder.name} startIndex={start}"
        t0 = time.perf_counter()
        try:
            with atomic_path(folder / f"page-{start:08d}.json.gz") as tmp:
                params = {**meta["params"], "startIndex": start, "resultsPerPage": meta["results_per_page"]}
                info = client.fetch(params, tmp, where)
                if meta["total"] is None:
                    meta["total"] = info.total
                    _write_json(folder / WINDOW_META, meta)
                elif info.total != meta["total"]:
                    raise _TotalChanged(info.total)  # the page is not kept
        except _TotalChanged as e:
            return e.total
        logger.info(
            "%s: %d CVEs of %d, %.1f MB, %.1f s",
            where,
            info.count,
            info.total,
            info.bytes / 2**20,
            time.perf_counter() - t0,
        )
        if progress:
            progress.update(info.count)
        start += info.count  # the client retries an empty page unless totalResults is 0, which ends the loop
    return None


def fetch_window(
    client: Client, folder: Path, params: dict, results_per_page: int, began: dt.datetime, progress=None
) -> dict:
    """Every page of one window into folder, resuming after the last page written; then its `_complete` marker.

    Returns the window's metadata: its query (`params`), `began` (when it was first asked for) and `total`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / WINDOW_META
    if meta_path.exists():  # a resumed window keeps the query, page size and start time it began with
        meta = json.loads(meta_path.read_text())
    else:
        meta = {"params": params, "results_per_page": results_per_page, "began": _iso(began), "total": None}
        _write_json(meta_path, meta)
    if (folder / COMPLETE).exists():
        return meta
    for _ in range(MAX_READS):
        if meta["total"] is None:  # pages read under another totalResults (a re-read was interrupted)
            for page in _pages(folder):
                page.unlink()
        changed = _read_pass(client, folder, meta, progress)
        if changed is None:
            _write_json(folder / COMPLETE, {"total": meta["total"]})
            return meta
        logger.warning(
            "NVD window %s: totalResults went from %d to %d while paging; reading the window again",
            folder.name,
            meta["total"],
            changed,
        )
        meta["total"] = (
            None  # written first, so a crash while the pages are deleted cannot leave a mixed window
        )
        _write_json(meta_path, meta)
    raise FetchError(
        f"totalResults kept changing while paging ({MAX_READS} reads)",
        file=str(folder),
        hint="Run again later: NVD was updating these records",
    )


def window_pages(out_dir: Path) -> list[Path]:
    """The pages of every complete window under out_dir: `full/` first, then the windows in time order."""
    folders = sorted(p for p in Path(out_dir).iterdir() if (p / COMPLETE).exists())
    folders.sort(key=lambda p: p.name != FULL)
    return [page for folder in folders for page in _pages(folder)]


def sync(
    out_dir: Path,
    *,
    state: StateStore | None,
    cursor_name: str,
    base_url: str = DEFAULT_BASE_URL,
    api_key: str | None = None,
    since: dt.datetime | str | None = None,
    full: bool = False,
    results_per_page: int = 2000,
    max_requests: int | None = None,
    window_seconds: float = 30.0,
    timeout: float = 90,
    max_tries: int = 8,
    progress=None,
    now: dt.datetime | None = None,
    endpoint: Endpoint = CVES,
) -> list[Path]:
    """Fetch what changed since the cursor (or everything) into out_dir; return the pages of every complete window.

    Without a cursor (or with `full`), a full sync into `full/`; the cursor then becomes the time it began, so the
    next windows cover what changed meanwhile. After that, lastModified windows of at most 120 days from the
    cursor (or `since`) to `now`; the cursor moves to a window's end once the window is complete, and never past
    a gap. An interrupted window is resumed first, with its original bounds. Pages of windows completed by
    earlier runs are returned too: whether they are converted already is the state store's business.
    The API key defaults to `NVD_API_KEY`; `max_requests` per rolling `window_seconds` defaults to 5, 50 with a key.
    A window that fails raises FetchFailures carrying the pages of the complete windows. `progress.update(n)` is
    told the CVEs of each page; `now` fixes the present (tests, replays). `endpoint` is the CVE API's by default;
    HISTORY pages the Change History API by changeStartDate/changeEndDate windows the same way.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_partials(out_dir)  # pages a killed sync left half-written: their names are its own, never reused
    api_key = api_key or os.environ.get("NVD_API_KEY") or None
    limiter = limiter_for(base_url, max_requests or (50 if api_key else 5), window_seconds)
    client = Client(base_url, api_key, limiter, timeout, max_tries, endpoint)
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    stored = state.get_cursor(cursor_name) if state else None
    cursor = parse_time(stored) if stored else None

    def advance(start: dt.datetime | None, end: dt.datetime) -> None:
        """Move the cursor to end if the window [start, end] joins it (start None: everything up to end)."""
        nonlocal cursor
        joins = cursor is None or start is None or start <= cursor
        if state and joins and (cursor is None or end > cursor):
            state.set_cursor(cursor_name, _iso(end))
            cursor = end

    try:
        full_dir = out_dir / FULL
        interrupted = full_dir.exists() and not (full_dir / COMPLETE).exists()
        if full or (since is None and (cursor is None or interrupted)):
            if full and (full_dir / COMPLETE).exists():
                shutil.rmtree(full_dir)  # a new full sync replaces the previous one
            meta = fetch_window(client, full_dir, {}, results_per_page, now, progress)
            advance(None, parse_time(meta["began"]))
        start = parse_time(since).replace(microsecond=0) if since is not None else cursor
        while start is not None and start < now:
            # Resume a window a crash interrupted with the end it had; otherwise at most 120 days up to now.
            unfinished = sorted(p for p in out_dir.glob(f"{_stamp(start)}_*") if not (p / COMPLETE).exists())
            folder = (
                unfinished[0] if unfinished else out_dir / _window_name(start, min(start + MAX_WINDOW, now))
            )
            end = _window_bounds(folder.name)[1]
            params = {endpoint.start: _iso(start), endpoint.end: _iso(end)}
            fetch_window(client, folder, params, results_per_page, now, progress)
            advance(start, end)
            start = end
    except FetchError as e:
        reason = f"{e.message}. {e.hint}" if e.hint else e.message
        raise FetchFailures(window_pages(out_dir), [(e.file or str(out_dir), reason)]) from None
    return window_pages(out_dir)
