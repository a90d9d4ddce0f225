"""Files that appear whole or not at all: a temporary name beside the final one, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

TMP_SUFFIX = ".tmp"
# `<name>.<pid>-<8 hex>.tmp`: the owner's pid, so a sweep removes only what a process that is gone left behind.
_OWNED = re.compile(rf"\.(\d+)-[0-9a-f]{{8}}{re.escape(TMP_SUFFIX)}$")


def tmp_path(final: Path) -> Path:
    """A temporary name beside `final`, unique to this process and call (two runs never share one)."""
    # os.urandom, as secrets.token_hex reads it: importing secrets imports hmac and hashlib (OpenSSL), 1.6 ms
    return final.with_name(f"{final.name}.{os.getpid()}-{os.urandom(4).hex()}{TMP_SUFFIX}")


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


def crc32(path: Path) -> int:
    """CRC-32 of a whole file, read in 1 MiB blocks."""
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return crc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success fsync it and rename it into place, else remove it.

    Not `durable`: no fsync (5-7 ms each here, two a file); readers still see the whole file or none, but a
    crash of the machine may lose it: for what a check finds again, such as generated samples (a manifest of
    sizes and CRCs vouches for them, and those not intact are generated again)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(final)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, final)
        if durable:
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
    """CRC-32 of the whole file (fast, and the page cache is warm after conversion)."""
    return f"crc32:{crc32(path):08x}"


def remove_partials(root: Path) -> list[Path]:
    """Delete temporary files (and scratch folders) that interrupted runs left under root, never a live process's;
    return them."""
    removed = []
    if Path(root).exists():
        for p in list(Path(root).rglob(f"*{TMP_SUFFIX}")):
            # a live query's spill directory (data/tmp/query.<pid>-….tmp/) holds DuckDB's own *.tmp files
            if not p.exists() or owner_alive(p) or any(owner_alive(d) for d in p.parents):
                continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
                # the write-ahead log of a DuckDB database built under the temporary name (the warehouse)
                p.with_name(f"{p.name}.wal").unlink(missing_ok=True)
            removed.append(p)
    return removed


class NoOutput(Exception):
    """Given to atomic_path's exit, discards the temporary file without an error (a writer that got nothing to
    write)."""


def distinct_stems(paths: Iterable[Path], stem: Callable[[Path], str]) -> dict[Path, str]:
    """A name for each input's outputs, no two alike (keyed by resolved path; '/' may separate folders).

    An input's stem (`stem(path)`: `DO2022` for `DO2022.csv`) where no other input has it, so names stay what they
    always were; inputs that share one are told apart by their whole names (`x.csv`, `x.csv.gz`), else by as
    many of their folders as it takes (`y2022/obitos`, `y2023/obitos`). Two inputs writing one Parquet would
    leave one's rows twice in the warehouse and the other's not at all.
    """
    groups: dict[str, list[Path]] = {}
    for p in dict.fromkeys(Path(p).resolve() for p in paths):
        groups.setdefault(stem(p), []).append(p)
    names: dict[Path, str] = {}
    for common, group in groups.items():
        names.update({group[0]: common} if len(group) == 1 else _told_apart(group, stem))
    seen: dict[str, Path] = {}
    for p, name in names.items():
        if name in seen:
            raise ValueError(f"{seen[name]} and {p} would write the same output {name!r}: rename one")
        seen[name] = p
    return names


def _told_apart(group: list[Path], stem: Callable[[Path], str]) -> dict[Path, str]:
    """The shortest names that differ: the file names, then one folder more at a time (with stem, then name)."""
    depth = max(len(p.parent.parts) for p in group)
    for folders in range(depth):
        for whole in (True,) if folders == 0 else (False, True):
            names = {
                p: "/".join([*p.parent.parts[len(p.parent.parts) - folders :], p.name if whole else stem(p)])
                for p in group
            }
            if len(set(names.values())) == len(group):
                return names
    return {p: str(p).lstrip("/") for p in group}
