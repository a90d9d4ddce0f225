"""NVD CVE API 2.0: paging under the rate limit, resumable, incremental by lastModified windows.

Each page is written to disk as it arrives (`page-<startIndex>.json.gz` in a folder per sync window) and never
accumulated. A window's `_complete` marker is written once all its pages are durably on disk, and only then
does the cursor move. A rerun continues from the first page not yet written.
"""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from etl.download import retry_delay
from etl.errors import FetchError
from etl.sinks.parquet import atomic_path
from etl.sources.nvd import COMPLETE
from etl.state import StateStore

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://services.nvd.nist.gov/rest/json/cves/2.0"
MAX_WINDOW = dt.timedelta(days=120)
WINDOW_META = "_window.json"
RETRY_STATUS = {403, 429, 500, 502, 503, 504}  # NVD answers throttling with 403


class RateLimiter:
    """At most `limit` requests in any rolling `window` seconds (NVD: 5 per 30 s, 50 with an API key)."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self.margin = 0.05 + window * 0.01
        self.sent: collections.deque[float] = collections.deque()
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            while self.sent and now - self.sent[0] >= self.window:
                self.sent.popleft()
            if len(self.sent) >= self.limit:
                # A margin for the time a request takes to reach the server, whose clock decides.
                time.sleep(self.window - (now - self.sent[0]) + self.margin)
                self.sent.popleft()
            self.sent.append(time.monotonic())


def _iso(t: dt.datetime) -> str:
    """Extended ISO-8601 with an explicit offset, as the API requires for lastMod dates."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")


STAMP = "%Y%m%dT%H%M%SZ"


def _folder_name(start: dt.datetime, end: dt.datetime) -> str:
    return f"{start.astimezone(dt.UTC):{STAMP}}_{end.astimezone(dt.UTC):{STAMP}}"


def _stamp(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, STAMP).replace(tzinfo=dt.UTC)


def parse_time(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


class Client:
    def __init__(
        self, base_url: str, api_key: str | None, limiter: RateLimiter, timeout: float, max_tries: int
    ):
        self.base_url, self.limiter, self.timeout, self.max_tries = base_url, limiter, timeout, max_tries
        self.session = requests.Session()
        if api_key:
            self.session.headers["apiKey"] = api_key  # a header, so it never appears in a logged URL

    def page(self, params: dict, where: str) -> bytes:
        """One page's body, validated as JSON with vulnerabilities; retried on throttling and transient errors."""
        for attempt in range(self.max_tries):
            self.limiter.wait()
            retry_after = None
            try:
                r = self.session.get(self.base_url, params=params, timeout=self.timeout)
                if r.status_code == 404:
                    raise FetchError(
                        f"HTTP 404: {r.headers.get('message', r.reason)}",
                        file=where,
                        hint="Check the dates and parameters",
                    )
                if r.status_code in RETRY_STATUS:
                    retry_after = r.headers.get("Retry-After")
                    raise _Transient(f"HTTP {r.status_code}")
                if r.status_code >= 400:
                    raise FetchError(
                        f"HTTP {r.status_code}: {r.headers.get('message', r.reason)}", file=where
                    )
                body = r.content
                _check(body)
                return body
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                _Transient,
            ) as e:
                if attempt + 1 == self.max_tries:
                    raise FetchError(
                        f"gave up after {self.max_tries} tries: {e}",
                        file=where,
                        hint="Run again later: the fetch resumes from this page",
                    ) from None
                delay = retry_delay(attempt, retry_after)
                logger.warning("%s: %s; retrying in %.1fs", where, e, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")


class _Transient(Exception):
    pass


def _check(body: bytes) -> dict:
    try:
        page = json.loads(body)
    except ValueError as e:
        raise _Transient(f"malformed JSON ({e})") from None
    if (
        not isinstance(page, dict)
        or not isinstance(page.get("vulnerabilities"), list)
        or not isinstance(page.get("totalResults"), int)
    ):
        raise _Transient("a page without vulnerabilities or totalResults")
    return page


def _page_summary(body: bytes) -> tuple[int, int]:
    page = json.loads(body)
    return page["totalResults"], len(page["vulnerabilities"])


def fetch_window(client: Client, folder: Path, params: dict, results_per_page: int, progress=None) -> Path:
    """Fetch every page of one window into folder (resuming), then write its `_complete` marker."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / COMPLETE).exists():
        return folder
    meta_path = folder / WINDOW_META
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"results_per_page": results_per_page}
    rpp = meta["results_per_page"]
    for _ in range(5):  # a window whose totalResults changes while paging is read again
        pages = sorted(folder.glob("page-*.json.gz"))
        start = len(pages) * rpp
        total = meta.get("total")
        changed = False
        while total is None or start < total:
            where = f"{client.base_url} window {folder.name} startIndex={start}"
            body = client.page({**params, "startIndex": start, "resultsPerPage": rpp}, where)
            page_total, count = _page_summary(body)
            if total is None:
                total = meta["total"] = page_total
                with atomic_path(meta_path) as tmp:
                    tmp.write_text(json.dumps(meta))
            elif page_total != total:
                logger.warning(
                    "%s: totalResults went from %d to %d while paging; reading the window again",
                    folder.name,
                    total,
                    page_total,
                )
                changed = True
                break
            with atomic_path(folder / f"page-{start:08d}.json.gz") as tmp, gzip.open(tmp, "wb", 6) as f:
                f.write(body)
            if progress:
                progress.update(count)
            if count == 0:
                break
            start += rpp
        if not changed:
            (folder / COMPLETE).write_text(json.dumps({"total": total}))
            return folder
        shutil.rmtree(folder)
        folder.mkdir()
        meta = {"results_per_page": rpp}
    raise FetchError("totalResults kept changing while paging", file=str(folder), hint="Run again later")


def sync(
    out_dir: Path,
    *,
    state: StateStore | None,
    cursor_name: str,
    base_url: str = DEFAULT_BASE_URL,
    api_key: str | None = None,
    since: str | None = None,
    full: bool = False,
    results_per_page: int = 2000,
    max_requests: int | None = None,
    window_seconds: float = 30.0,
    timeout: float = 90,
    max_tries: int = 8,
    now: dt.datetime | None = None,
    progress=None,
) -> list[Path]:
    """Fetch what is new since the cursor (or everything) and return the complete window folders, in order.

    Without a cursor (or with `full`), a full sync into `full-<start time>/`; the cursor then becomes its start
    time, so the next sync's windows cover what changed meanwhile. After that, windows of at most 120 days
    from the cursor (or `since`) to now; the cursor moves to each window's end once the window is complete.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    limiter = RateLimiter(max_requests or (50 if api_key else 5), window_seconds)
    client = Client(base_url, api_key, limiter, timeout, max_tries)
    now = now or dt.datetime.now(dt.UTC)
    cursor = state.get_cursor(cursor_name) if state else None
    start = parse_time(since) if since else parse_time(cursor) if cursor else None
    done = sorted(p for p in out_dir.iterdir() if (p / COMPLETE).exists()) if not full else []
    if start is None or full:
        unfinished = sorted(p for p in out_dir.glob("full-*") if not (p / COMPLETE).exists())
        folder = unfinished[0] if unfinished else out_dir / f"full-{now.astimezone(dt.UTC):{STAMP}}"
        began = _stamp(folder.name.removeprefix("full-"))
        fetch_window(client, folder, {}, results_per_page, progress)
        if state:
            state.set_cursor(cursor_name, _iso(began))
        return sorted({*done, folder})
    while start < now:
        end = min(start + MAX_WINDOW, now)
        unfinished = [
            p for p in out_dir.glob(f"{start.astimezone(dt.UTC):{STAMP}}_*") if not (p / COMPLETE).exists()
        ]
        if unfinished:  # resume the window a crash interrupted, with the end it had
            folder = unfinished[0]
            end = _stamp(folder.name.split("_")[1])
        else:
            folder = out_dir / _folder_name(start, end)
        fetch_window(
            client,
            folder,
            {"lastModStartDate": _iso(start), "lastModEndDate": _iso(end)},
            results_per_page,
            progress,
        )
        done.append(folder)
        if state:
            state.set_cursor(cursor_name, _iso(end))
        start = end
    return sorted(set(done))


def iter_feed_cves(path: Path) -> Iterator[dict]:
    """Stream the vulnerabilities of a yearly JSON 2.0 feed (`nvdcve-2.0-YYYY.json.gz`) without loading it."""
    import ijson

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        yield from ijson.items(f, "vulnerabilities.item", use_float=True)
