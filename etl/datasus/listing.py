"""What DATASUS's FTP tree holds for a selection, and how each remote file stands against what was converted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from etl.datasus.catalog import FileName, folders_for, get_system, parse_name, wanted
from etl.ftp import FtpClient, RemoteFile
from etl.state import FileRecord

NEW, CONVERTED, CHANGED = "new", "converted", "changed"
STATUSES = (NEW, CONVERTED, CHANGED)


@dataclass(frozen=True)
class Listed:
    """One remote file of a selection: where it is, what the listing says of it, and its parsed name."""

    folder: str
    remote: RemoteFile
    parsed: FileName

    @property
    def modified_ns(self) -> int | None:
        """The listed modification time as the nanoseconds a downloaded copy's mtime is set to."""
        return _ns(self.remote.modified)


def _ns(when: datetime | None) -> int | None:
    return int(when.timestamp() * 1e9) if when else None


def remote_files(
    base_url: str, system: str, group: str, states: list[str], years: list[int], months: list[int]
) -> list[Listed]:
    """The files of the selection on the FTP tree at base_url, in name order (empty lists select everything)."""
    spec = get_system(system)
    states = ["BR"] if spec.is_national(group) else states
    client = FtpClient(base_url)
    found = []
    try:
        for folder in folders_for(spec, group, years, months):
            for remote in client.list(folder):
                parsed = parse_name(remote.name, spec)
                if parsed and wanted(parsed, group, states, years, months):
                    found.append(Listed(folder, remote, parsed))
    finally:
        client.close()
    return sorted(found, key=lambda f: (f.remote.name, f.folder))


def status(listed: Listed, rec: FileRecord | None) -> str:
    """new (never converted), converted (and the listing still gives its size and date), or changed.

    A file converted before and fetched again since (its record no longer `converted`) is changed too:
    its Parquet still holds the earlier version.
    """
    if rec is None or rec.rows_out is None:
        return NEW
    same = rec.size == listed.remote.size and (
        listed.modified_ns is None or rec.mtime_ns == listed.modified_ns
    )
    return CONVERTED if same and rec.stage in ("converted", "loaded") else CHANGED
