"""One writer at a time per data directory: an advisory lock on `data/etl.lock`, which names its holder.

The kernel releases a `flock` when its holder exits, however it exits (`kill -9` included), so a lock is never
left stale. Readers (`etl sql`, `etl status`, notebooks) take no lock and never wait.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import sys
from pathlib import Path

from etl.errors import LockedError

LOCK_NAME = "etl.lock"


def command_line() -> str:
    """This process's command as a user typed it (`etl --config etl.toml run`), or the Python program's."""
    return " ".join([Path(sys.argv[0]).name or "python", *sys.argv[1:]]) if sys.argv else "python"


class WriterLock:
    """Held from construction until release(); a second writer fails at once with the holder's pid and command."""

    def __init__(self, data_dir: Path, command: str | None = None):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / LOCK_NAME
        self.fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            self.release()
            raise LockedError(
                f"{data_dir} is in use by another etl command ({holder})",
                hint="Wait for it to finish or stop it; reading (etl sql, etl status, notebooks) needs no lock",
            ) from None
        since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(self.fd, 0)
        os.pwrite(
            self.fd,
            json.dumps({"pid": os.getpid(), "command": command or command_line(), "since": since}).encode(),
            0,
        )

    def _holder(self) -> str:
        try:
            info = json.loads(os.pread(self.fd, 4096, 0) or b"{}")
            return f"pid {info['pid']}, `{info['command']}`, since {info['since']}"
        except (ValueError, KeyError):
            return "it is starting"

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_if_under(data_dir: Path, out: Path | None) -> WriterLock | None:
    """The writer lock when `out` (a command's --out) is under the data directory; None elsewhere."""
    if out is None:
        return None
    try:
        Path(out).resolve().relative_to(Path(data_dir).resolve())
    except ValueError:
        return None
    return WriterLock(data_dir)
