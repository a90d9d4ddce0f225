"""HTTP(S) downloads streamed to disk, with resume, retries and atomic completion."""

from __future__ import annotations

import logging
import os
import random
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests

from etl.errors import FetchError, SourceError
from etl.files import fsync_dir

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
PART_SUFFIX = ".part"
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def safe_name(remote: str) -> str:
    """The last path component of a remote name, refusing anything that could escape the target folder."""
    name = unquote(urlparse(remote).path if "://" in remote else remote).replace("\\", "/").rsplit("/", 1)[-1]
    if name in ("", ".", "..") or "\x00" in name or name.startswith("."):
        raise SourceError(f"refusing unsafe remote file name {remote!r}")
    return name


def retry_delay(attempt: int, retry_after: str | None = None, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff with jitter; a Retry-After in seconds wins when given."""
    if retry_after and retry_after.strip().isdigit():
        return min(float(retry_after), cap * 5)
    return min(cap, base * 2**attempt) * (0.5 + random.random() / 2)


def download(
    url: str,
    dest_dir: Path,
    *,
    name: str | None = None,
    tries: int = 5,
    timeout: float = 60,
    session: requests.Session | None = None,
    progress=None,
) -> Path:
    """Download url into dest_dir, resuming a partial `.part` file; the final name appears only when complete."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / (name or safe_name(url))
    part = final.with_name(final.name + PART_SUFFIX)
    http = session or requests.Session()
    for attempt in range(tries):
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with http.get(url, headers=headers, stream=True, timeout=timeout) as r:
                if r.status_code == 416 and have:  # the part file already holds everything
                    break
                if r.status_code in RETRY_STATUS:
                    raise _Retry(r.headers.get("Retry-After"), f"HTTP {r.status_code}")
                if r.status_code >= 400:
                    raise FetchError(
                        f"HTTP {r.status_code} {r.reason}",
                        file=url,
                        hint="Check the URL; this error is not retried",
                    )
                resumed = r.status_code == 206
                total = int(r.headers.get("Content-Length", 0)) + (have if resumed else 0)
                with open(part, "ab" if resumed else "wb") as f:
                    for chunk in r.iter_content(CHUNK):
                        f.write(chunk)
                        if progress:
                            progress.update(len(chunk))
                    f.flush()
                    os.fsync(f.fileno())
                if total and part.stat().st_size != total:
                    raise _Retry(None, f"connection closed at byte {part.stat().st_size} of {total}")
                break
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            _Retry,
        ) as e:
            retry_after = e.retry_after if isinstance(e, _Retry) else None
            if attempt + 1 == tries:
                raise FetchError(
                    f"download failed after {tries} tries: {e}",
                    file=url,
                    hint="Run again to resume from the partial file",
                ) from None
            delay = retry_delay(attempt, retry_after)
            logger.warning("%s: %s; retrying in %.1fs", url, e, delay)
            time.sleep(delay)
    os.replace(part, final)
    fsync_dir(final.parent)
    return final


class _Retry(Exception):
    def __init__(self, retry_after: str | None, message: str):
        super().__init__(message)
        self.retry_after = retry_after
