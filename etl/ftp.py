"""FTP listing and downloads with resume, retries and atomic completion (DATASUS serves its tree by FTP)."""

from __future__ import annotations

import ftplib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from etl.download import PART_SUFFIX, safe_name
from etl.errors import FetchError
from etl.files import fsync_dir
from etl.retry import Policy, Transient

logger = logging.getLogger(__name__)

TRANSIENT = (OSError, EOFError, ftplib.error_temp, ftplib.error_reply, socket.timeout)


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int | None
    modified: datetime | None  # UTC


class FtpClient:
    """One anonymous FTP connection, reopened on failure; `tries` bounds retries of each operation."""

    def __init__(self, url: str, *, timeout: float = 60, tries: int = 5):
        u = urlparse(url)
        if u.scheme != "ftp":
            raise FetchError(f"not an ftp:// URL: {url}")
        self.host, self.port = u.hostname or "", u.port or 21
        self.user, self.password = u.username or "anonymous", u.password or "anonymous@"
        self.base = u.path.rstrip("/")
        self.timeout, self.tries = timeout, tries
        self._ftp: ftplib.FTP | None = None

    def _connect(self) -> ftplib.FTP:
        if self._ftp is None:
            ftp = ftplib.FTP(timeout=self.timeout)
            ftp.connect(self.host, self.port)
            ftp.login(self.user, self.password)
            ftp.voidcmd("TYPE I")
            self._ftp = ftp
        return self._ftp

    def close(self) -> None:
        if self._ftp is not None:
            try:
                self._ftp.quit()
            except (*TRANSIENT, ftplib.Error):
                self._ftp.close()
            self._ftp = None

    def _retrying(self, what: str, op, file: str | None = None):
        """op(connection) under the retry policy; a connection that failed is closed and opened again."""

        def attempt():
            try:
                return op(self._connect())
            except Transient:
                self.close()
                raise
            except TRANSIENT as e:
                self.close()
                raise Transient(str(e) or type(e).__name__) from e

        return Policy(tries=self.tries).call(
            attempt,
            what=what,
            file=file or f"ftp://{self.host}{self.base}",
            hint="Run again to resume; check the server or --base-url",
        )

    def list(self, folder: str) -> list[RemoteFile]:
        """Files in a folder with size and modification time (MLSD, or NLST + SIZE + MDTM where unsupported)."""
        path = self.base + folder

        def op(ftp: ftplib.FTP) -> list[RemoteFile]:
            try:
                entries = list(ftp.mlsd(path, facts=["type", "size", "modify"]))
                return [
                    RemoteFile(name, int(f["size"]) if "size" in f else None, _mdtm(f.get("modify")))
                    for name, f in entries
                    if f.get("type") == "file"
                ]
            except ftplib.error_perm as e:
                if not str(e).startswith("500") and not str(e).startswith("502"):
                    raise
            files = []
            for name in ftp.nlst(path):
                name = name.rsplit("/", 1)[-1]
                size = ftp.size(f"{path}/{name}")
                modified = _mdtm(ftp.voidcmd(f"MDTM {path}/{name}").split()[-1])
                files.append(RemoteFile(name, size, modified))
            return files

        try:
            return self._retrying(f"listing {path}", op)
        except ftplib.error_perm as e:
            if str(e)[:3] in ("550", "501"):  # no such folder (550; 501 from some servers): nothing published
                return []
            raise FetchError(f"listing {path}: {e}", file=f"ftp://{self.host}{path}") from None

    def download(self, folder: str, remote: RemoteFile, dest_dir: Path, progress=None) -> Path:
        """Download into dest_dir, resuming a `.part` file; checked against the listed size; atomic rename."""
        final = Path(dest_dir) / safe_name(remote.name)
        part = final.with_name(final.name + PART_SUFFIX)
        final.parent.mkdir(parents=True, exist_ok=True)
        path = f"{self.base}{folder}/{remote.name}"

        def op(ftp: ftplib.FTP) -> None:
            have = part.stat().st_size if part.exists() else 0
            if remote.size is not None and have > remote.size:
                part.unlink()
                have = 0
            with open(part, "ab") as f:

                def write(block: bytes) -> None:
                    f.write(block)
                    if progress:
                        progress.update(len(block))

                ftp.retrbinary(f"RETR {path}", write, blocksize=64 * 1024, rest=have or None)
                f.flush()
                os.fsync(f.fileno())
            got = part.stat().st_size
            if remote.size is not None and got != remote.size:
                raise Transient(f"connection closed at byte {got} of {remote.size}")

        try:
            self._retrying(f"downloading {path}", op, file=f"ftp://{self.host}{path}")
        except ftplib.error_perm as e:
            part.unlink(missing_ok=True)  # a permanent refusal: nothing to resume
            raise FetchError(
                f"the server refused it: {e}",
                file=f"ftp://{self.host}{path}",
                hint="The listing names a file the server cannot serve; try again later",
            ) from None
        if remote.size is None:
            logger.warning(
                "%s: the listing gave no size, so its size (%d bytes) could not be verified",
                final,
                part.stat().st_size,
            )
        os.replace(part, final)
        if remote.modified:
            ts = remote.modified.timestamp()
            os.utime(final, (ts, ts))
        fsync_dir(final.parent)
        return final


def _mdtm(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
