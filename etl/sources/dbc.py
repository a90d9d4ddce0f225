"""DATASUS `.dbc` files: a DBF header, the CRC-32 of the whole DBF, then its records PKWare-imploded.

Decompression uses pyreaddbc (AGPL-3.0), the fastest decompressor measured here (~300 MB/s). It prints errors
instead of raising and can crash on corrupt input, so it runs in a child process that writes the DBF into a
pipe, converted as it comes: decompression and conversion overlap on two cores, and no decompressed copy is
written to disk (a small DBF is written whole into memory, and read once the child is done). The output is
verified as it is read (size = header + records x record length, + an optional 0x1A; CRC-32 as stored) before
the Parquet is committed.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.machinery
import importlib.util
import logging
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from etl.config import Dataset
from etl.errors import ConversionError, SourceError
from etl.files import atomic_path, crc32
from etl.sources import Context, ConvertResult

logger = logging.getLogger(__name__)

# The child loads pyreaddbc's extension module from its file, in an interpreter started with -I -S: no site (a
# venv's .pth files, an editable install's finder) and no package __init__ (importlib.metadata). It costs 0.05 s
# of CPU where `python -c "import pyreaddbc; ..."` costs 0.15 s (whole-process, median of 11), once per file.
# SIGPIPE as by default (Python ignores it): a child whose reader is gone (a parent killed with -9) dies at its next
# write, where pyreaddbc would carry on decompressing, ignoring the failed writes.
DECOMPRESS = """
import signal, sys
from importlib.machinery import ExtensionFileLoader
from importlib.util import module_from_spec, spec_from_loader
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
loader = ExtensionFileLoader("pyreaddbc._readdbcmodule", sys.argv[1])
module = module_from_spec(spec_from_loader(loader.name, loader))
loader.exec_module(module)
module.dbc2dbf(sys.argv[2], sys.argv[3])
"""
# PKWare DCL implode: literals coded as plain bytes (0), a 4 KiB dictionary (6).
IMPLODE_HEADER = bytes([0, 6])
# End of stream: a length code (a 1 bit) for length 519: seven 0 bits, then eight 1 bits.
END_BITS = [1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]
CHUNK = 8 * 1024 * 1024  # a multiple of 8 bytes: 8 literals of 9 bits fill 9 whole bytes


@dataclass
class Options:
    paths: list[str] = field(default_factory=list, metadata={"help": "local .dbc files or globs (datasets)"})
    encoding: str = field(
        default="latin-1", metadata={"help": "text encoding: latin-1 (default), cp1252, cp850"}
    )
    column_encodings: dict[str, str] = field(
        default_factory=dict, metadata={"help": "per-column encodings, e.g. NOME=cp850"}
    )
    keep_dbf: bool = field(default=False, metadata={"help": "keep the decompressed .dbf beside the Parquet"})


@functools.cache
def decompressor() -> str:
    """The file of pyreaddbc's extension module, found without importing the package."""
    spec = importlib.util.find_spec("pyreaddbc")
    if spec and spec.origin:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            if (path := Path(spec.origin).with_name(f"_readdbcmodule{suffix}")).exists():
                return str(path)
    raise ConversionError("pyreaddbc's extension module is not installed", hint="pip install pyreaddbc")


def dbc_header(path: Path) -> tuple[bytes, int]:
    """The DBF header a .dbc starts with, and the CRC-32 stored after it."""
    with open(path, "rb") as f:
        head = f.read(32)
        if len(head) < 32 or head[0] & 0x07 not in (3, 4, 5):
            raise SourceError("not a DATASUS .dbc file: no DBF header", file=str(path))
        hlen = struct.unpack("<H", head[8:10])[0]
        f.seek(0)
        header = f.read(hlen + 4)
    if len(header) < hlen + 4:
        raise SourceError("truncated .dbc: shorter than its header", file=str(path))
    return header[:hlen], struct.unpack("<I", header[hlen:])[0]


class Decompression:
    """pyreaddbc decompressing a .dbc in a child process that writes the DBF into a pipe, read as it comes.

    `read(n)` returns the DBF's next n bytes as soon as the child has written them, so conversion overlaps
    decompression, and no decompressed copy is written to disk (a 20M-record SIH file is 4.7 GB of DBF); the
    CRC-32 of what was read is kept, so `verify()` needs no second pass. With `copy_to`, what is read is also
    written to that file (`--keep-dbf`, `dbc_to_dbf`). A child that fails or stops short is an error naming the
    .dbc, raised by `read` or `verify`.
    """

    # The child runs this far ahead of the reader (Linux's default pipe holds 64 KiB; 1 MiB is what an unprivileged
    # process may ask for): it decompresses faster than the converter reads, so it waits on the pipe, not the reader.
    PIPE_BYTES = 1 << 20
    # A DBF of up to WHOLE_BYTES is written whole into memory (a memfd, on Linux) rather than into the pipe, and
    # read once the child is done: it decompresses while the converter imports numpy and pyarrow (80 ms) instead of
    # waiting on a full pipe. ZIKABR21's 3 MB of DBF (19,090 records) were read 18 ms after the imports; at once.
    WHOLE_BYTES = 8 << 20

    def __init__(self, dbc_path: Path, copy_to: Path | None = None):
        self.dbc_path = Path(dbc_path)
        self.header, self.stored_crc = dbc_header(self.dbc_path)
        records, hlen, reclen = struct.unpack("<IHH", self.header[4:12])
        self.records, self.record_length, self.expected = records, reclen, hlen + records * reclen
        # The CRC covers the DBF as it was compressed; pyreaddbc rewrites the header's last byte (0x00 in
        # some DATASUS files) as 0x0D, so the stored header counts, then the decompressed bytes after it.
        self.crc, self.position = zlib.crc32(self.header), 0
        self._copy = open(copy_to, "wb") if copy_to is not None else None  # noqa: SIM115 (closed by __exit__)
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__, as the child is waited for)
        # Whole: the child's output read only once it has exited (a file's end is not the child's).
        self._whole = self.expected <= self.WHOLE_BYTES and hasattr(os, "memfd_create")
        if self._whole:
            read_end = os.memfd_create(f"{self.dbc_path.stem}.dbf")
            write_end = os.dup(read_end)  # the child's, closed here once it has it
        else:
            read_end, write_end = os.pipe()
        try:
            with contextlib.suppress(OSError, AttributeError):  # a smaller pipe only costs more switches
                if not self._whole:
                    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, self.PIPE_BYTES)
            # The child writes to its inherited end by name (its stdout carries pyreaddbc's messages); the
            # parent's copy is closed, so the pipe ends (EOF) when the child does.
            child = [sys.executable, "-I", "-S", "-c", DECOMPRESS, decompressor()]
            self._proc = subprocess.Popen(
                [*child, str(self.dbc_path), f"/dev/fd/{write_end}"],
                stdout=self._log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_end,),
            )
        except BaseException:
            os.close(read_end)
            self._log.close()
            if self._copy is not None:
                self._copy.close()
            raise
        finally:
            os.close(write_end)
        self._pipe = open(read_end, "rb", buffering=0)  # noqa: SIM115 (closed by __exit__)

    def __enter__(self) -> Decompression:
        return self

    def __exit__(self, *exc) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._pipe.close()
        if self._copy is not None:
            self._copy.close()
        self._log.close()

    def readinto(self, buffer: memoryview) -> int:
        """The next bytes into `buffer`: their number, fewer only at the end of a complete DBF (a short DBF, or a
        child that failed, is an error)."""
        buffer = memoryview(buffer).cast("B")
        if self._whole and self._proc.wait() != 0:
            raise self._failure()
        got = 0
        while got < len(buffer):
            n = self._pipe.readinto(buffer[got:])
            if not n:  # every write end closed: the child has exited
                break
            got += n
        data = buffer[:got]
        skip = max(0, min(got, len(self.header) - self.position))
        self.crc = zlib.crc32(data[skip:], self.crc)
        self.position += got
        if self._copy is not None:
            self._copy.write(data)
        if got < len(buffer) and (self._proc.wait() != 0 or self.position < self.expected):
            raise self._failure()
        return got

    def read(self, n: int) -> bytes:
        """readinto(), as bytes."""
        buffer = bytearray(n)
        del buffer[self.readinto(memoryview(buffer)) :]
        return bytes(buffer)

    def verify(self) -> None:
        """Read what is left (an end byte, or all of it when nothing was read), then check the size and the CRC-32."""
        rest = memoryview(bytearray(1 << 20))
        while self.readinto(rest) == len(rest):
            pass
        if self.position not in (self.expected, self.expected + 1):
            raise self._failure()
        if self.crc != self.stored_crc:
            raise ConversionError(
                f"CRC-32 mismatch: stored {self.stored_crc:08x}, decompressed {self.crc:08x}",
                file=str(self.dbc_path),
                hint="The .dbc is corrupt: fetch it again",
            )

    def _failure(self) -> ConversionError:
        code = self._proc.wait()
        if code != 0:
            self._log.seek(0)
            detail = self._log.read().decode(errors="replace").strip().splitlines()
            return ConversionError(
                f"decompression failed (exit {code}){': ' + detail[-1] if detail else ''}",
                file=str(self.dbc_path),
            )
        return ConversionError(
            f"decompressed to {self.position} bytes, the header declares {self.expected} "
            f"({self.records} records of {self.record_length})",
            file=str(self.dbc_path),
            hint="The .dbc is truncated or corrupt: fetch it again",
        )


def dbc_to_dbf(dbc_path: Path, dbf_path: Path) -> Path:
    """Decompress a .dbc into a verified .dbf (written under a temporary name, then renamed)."""
    with atomic_path(Path(dbf_path)) as tmp, Decompression(dbc_path, copy_to=tmp) as dbc:
        dbc.verify()
    return Path(dbf_path)


def write_dbc(dbf_path: Path, dbc_path: Path) -> Path:
    """Compress a .dbf into a .dbc that DATASUS tools read: literal-only implode, streamed in chunks."""
    import numpy as np

    dbf_path = Path(dbf_path)
    with open(dbf_path, "rb") as f:
        hlen = struct.unpack("<H", f.read(10)[8:10])[0]
        f.seek(0)
        header = f.read(hlen)
    # Not durable: etl writes .dbc files only as samples (and for tests), which their manifest vouches for.
    with (
        atomic_path(Path(dbc_path), durable=False) as tmp,
        open(dbf_path, "rb") as src,
        open(tmp, "wb") as out,
    ):
        out.write(header + struct.pack("<I", crc32(dbf_path)) + IMPLODE_HEADER)
        src.seek(hlen)
        rest = b""  # bytes short of a group of 8
        while chunk := src.read(CHUNK):
            data = rest + chunk
            whole = len(data) // 8 * 8
            out.write(_literals(np.frombuffer(data, np.uint8, whole)))
            rest = data[whole:]
        # The last bytes and the end code, bit by bit: each literal a 0 bit, then its 8 bits, lowest first.
        bits = np.unpackbits(np.frombuffer(rest, np.uint8)[:, None], axis=1, bitorder="little")
        bits = np.hstack([np.zeros((len(rest), 1), np.uint8), bits]).ravel()
        out.write(np.packbits(np.concatenate([bits, END_BITS]), bitorder="little").tobytes())
    return Path(dbc_path)


def _literals(data) -> bytes:
    """Bytes (a multiple of 8) coded as literals: a 0 bit then the byte's 8 bits, lowest first, so that 8 bytes
    make one 72-bit group, 9 bytes: the first 7 shifted into a 64-bit word, the 8th its own byte (3-5x less CPU
    than coding bit by bit, measured on 24 MB)."""
    import numpy as np

    groups = data.reshape(-1, 8).astype(np.uint64)
    word = np.zeros(len(groups), np.uint64)
    for i in range(7):
        word |= groups[:, i] << np.uint64(9 * i + 1)
    out = np.empty((len(groups), 9), np.uint8)
    out[:, :8] = word.astype("<u8").view(np.uint8).reshape(-1, 8)
    out[:, 8] = groups[:, 7]
    return out.tobytes()


def convert_file(path: Path, out_dir: Path, dataset: Dataset, ctx: Context) -> ConvertResult:
    """Decompress to a temporary .dbf, convert it to `out_dir/<stem>.parquet`, then remove the .dbf."""
    opts = dataset.options
    return convert_dbc(
        Path(path),
        Path(out_dir),
        ctx,
        encoding=opts.encoding,
        column_encodings=opts.column_encodings,
        keep_dbf=opts.keep_dbf,
    )


def convert_dbc(
    path: Path,
    out_dir: Path,
    ctx: Context,
    *,
    encoding: str,
    column_encodings: dict[str, str],
    keep_dbf: bool = False,
) -> ConvertResult:
    """Convert the DBF while the child decompresses it; the Parquet is committed once the DBF is verified."""
    stem = ctx.output_stem(path, path.stem)
    kept = atomic_path(out_dir / f"{stem}.dbf") if keep_dbf else contextlib.nullcontext()
    with kept as copy_to, Decompression(path, copy_to) as stream:
        # Imported once the child is decompressing: numpy's and pyarrow's imports overlap its start-up.
        from etl.sources.dbf import convert_dbf

        return convert_dbf(
            path,
            out_dir,
            ctx,
            encoding=encoding,
            column_encodings=column_encodings,
            source_name=ctx.source_name(path),
            stem=stem,
            stream=stream,
            check=stream.verify,
        )
