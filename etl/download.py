"""HTTP(S) downloads streamed to disk, with resume, retries and atomic completion.

The bytes are stored as the server sent them (`Accept-Encoding: identity`, and raw reads should it compress
anyway), so sizes compare with what it announced. A resumed transfer is checked: a 206 must start at the offset
asked for, and a 416 means "complete" only when the server's total is the partial file's size; otherwise the
download starts again from zero. The final size is checked against `Content-Length` or the `Content-Range` total;
a body without either (a connection closed at the end) cannot be checked, and that is logged.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests
import urllib3.exceptions

from etl.errors import FetchError, SourceError
from etl.files import fsync_dir
from etl.retry import RETRY_STATUS, Policy, Transient

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
PART_SUFFIX = ".part"
# Failures of the connection or of the body: the bytes received so far stay in `.part` for the next try.
TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
)
RESUME_HINT = "Run again to resume from the partial file"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def safe_name(remote: str) -> str:
    """The last path component of a remote name, refusing anything that could escape the target folder."""
    name = unquote(urlparse(remote).path if "://" in remote else remote).replace("\\", "/").rsplit("/", 1)[-1]
    if name in ("", ".", "..") or "\x00" in name or name.startswith("."):
        raise SourceError(f"refusing unsafe remote file name {remote!r}")
    return name


def download(
    url: str,
    dest_dir: Path,
    *,
    name: str | None = None,
    tries: int = 5,
    timeout: float = 60,
    session: requests.Session | None = None,
    progress=None,
    policy: Policy | None = None,
) -> Path:
    """Download url into dest_dir, resuming a partial `.part` file; the final name appears only when complete."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / (name or safe_name(url))
    part = final.with_name(final.name + PART_SUFFIX)
    http = session or requests.Session()
    verified = (policy or Policy(tries=tries)).call(
        lambda: _transfer(http, url, part, timeout, progress),
        what=f"downloading {url}",
        file=url,
        hint=RESUME_HINT,
        transient=TRANSIENT,
    )
    if not verified:
        logger.warning(
            "%s: the server sent no length, so its size (%d bytes) could not be verified; "
            "if the file looks cut short, delete it and fetch it again",
            final,
            part.stat().st_size,
        )
    os.replace(part, final)
    fsync_dir(final.parent)
    return final


def _transfer(http: requests.Session, url: str, part: Path, timeout: float, progress) -> bool:
    """One try: append the rest of the file to `part`; True when its final size was checked."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        with http.get(url, headers=headers, stream=True, timeout=timeout) as r:
            total = _expected_total(r, have, part)
            if total == have and r.status_code == 416:
                return True  # the partial file already held everything
            mode = "ab" if r.status_code == 206 else "wb"  # a 200 to a range request is the whole file again
            with open(part, mode) as f:
                try:
                    while block := r.raw.read1(CHUNK, decode_content=False):
                        f.write(block)
                        if progress:
                            progress.update(len(block))
                except TRANSIENT as e:
                    of = f" of {total}" if total is not None else ""
                    raise Transient(f"connection lost at byte {f.tell()}{of}: {type(e).__name__}") from e
                finally:  # whatever arrived before a failure is kept for the resume
                    f.flush()
                    os.fsync(f.fileno())
    except requests.TooManyRedirects:
        raise FetchError(
            "the server redirects in a loop", file=url, hint="Check the URL (open it in a browser)"
        ) from None
    got = part.stat().st_size
    if total is None:
        return False
    if got < total:
        raise Transient(f"connection lost at byte {got} of {total}")
    if got > total:
        part.unlink()
        raise Transient(f"received {got} bytes where the server announced {total}; starting again from zero")
    return True


def _expected_total(r: requests.Response, have: int, part: Path) -> int | None:
    """The file's whole size as the server announced it (None when it did not), after checking its answer to a
    range request; a resume the server cannot honour deletes the partial file and is tried again from zero."""
    if r.status_code == 416 and have:
        m = re.fullmatch(r"bytes\s+\*/(\d+)", r.headers.get("Content-Range", "").strip())
        if m and int(m[1]) == have:
            return have
        part.unlink()
        raise Transient(f"the server cannot resume at byte {have} (HTTP 416); starting again from zero")
    if r.status_code in RETRY_STATUS:
        raise Transient(f"HTTP {r.status_code} {r.reason}", r.headers.get("Retry-After"))
    if r.status_code >= 400:
        raise FetchError(
            f"HTTP {r.status_code} {r.reason}", file=r.url, hint="Check the URL; this error is not retried"
        )
    if r.status_code == 206:
        m = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range", "").strip())
        if not m or int(m[1]) != have:
            part.unlink(missing_ok=True)
            raise Transient(
                f"asked to resume at byte {have}, the server sent "
                f"{r.headers.get('Content-Range') or 'a range without Content-Range'}; starting again from zero"
            )
        return int(m[3]) if m[3] != "*" else None
    length = r.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None
