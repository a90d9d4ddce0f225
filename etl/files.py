"""Files that appear whole or not at all: a temporary name beside the final one, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

TMP_SUFFIX = ".tmp"
# `<name>.<pid>-<8 hex>.tmp`: the owner's pid, so a sweep removes only what a process that is gone left behind.
_OWNED = re.compile(rf"\.(\d+)-[0-9a-f]{{8}}{re.escape(TMP_SUFFIX)}$")


def tmp_path(final: Path) -> Path:
    """A temporary name beside `final`, unique to this process and call (two runs never share one)."""
    return final.with_name(f"{final.name}.{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}")


def owner_alive(path: Path) -> bool:
    """Whether the process that named this temporary file still runs (names without a pid have no owner)."""
    match = _OWNED.search(path.name)
    if not match:
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success fsync it and rename it into place, else remove it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(final)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except NoOutput:
        tmp.unlink(missing_ok=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def replace_folder(tmp: Path, final: Path) -> None:
    """Put a complete folder (a Parquet dataset written by Spark) in place of `final`, a file or folder or nothing.

    A folder cannot replace another in one rename: the old one is moved aside first, then removed.
    """
    old = None
    if final.exists():
        old = tmp_path(final.with_name(final.name + ".old"))
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() else old.unlink()


def checksum(path: Path) -> str:
    """CRC-32 of the whole file, read in 1 MiB blocks (fast, and the page cache is warm after conversion)."""
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return f"crc32:{crc:08x}"


def remove_partials(root: Path) -> list[Path]:
    """Delete temporary files that interrupted runs left under root (never a live process's); return them."""
    removed = []
    if Path(root).exists():
        for p in Path(root).rglob(f"*{TMP_SUFFIX}"):
            # a live query's spill directory (data/tmp/query.<pid>-….tmp/) holds DuckDB's own *.tmp files
            if p.is_file() and not owner_alive(p) and not any(owner_alive(d) for d in p.parents):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


class NoOutput(Exception):
    """Given to atomic_path's exit, discards the temporary file without an error (a writer that got nothing to
    write)."""
