"""Files that appear whole or not at all: a temporary name beside the final one, fsync, rename."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

TMP_SUFFIX = ".tmp"


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
    tmp = final.with_name(final.name + TMP_SUFFIX)
    tmp.unlink(missing_ok=True)
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


def remove_partials(root: Path) -> list[Path]:
    """Delete temporary files an interrupted run left under root; return what was removed."""
    removed = []
    if Path(root).exists():
        for p in Path(root).rglob(f"*{TMP_SUFFIX}"):
            if p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


class NoOutput(Exception):
    """Given to atomic_path's exit, discards the temporary file without an error (a writer that got nothing to
    write)."""
