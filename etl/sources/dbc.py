"""DATASUS `.dbc` files: a DBF header, the CRC-32 of the whole DBF, then its records PKWare-imploded.

Decompression uses pyreaddbc (AGPL-3.0), the fastest decompressor measured here (~300 MB/s). It prints errors
instead of raising and can crash on corrupt input, so it runs in a child process and its output is verified:
the size must be header + records x record length (+ an optional 0x1A), and the CRC-32 must match.
"""

from __future__ import annotations

import logging
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from etl.config import Dataset
from etl.errors import ConversionError, SourceError
from etl.sinks.parquet import atomic_path
from etl.sources import Context, ConvertResult
from etl.sources.dbf import convert_dbf

logger = logging.getLogger(__name__)

DECOMPRESS = "import sys, pyreaddbc; pyreaddbc.dbc2dbf(sys.argv[1], sys.argv[2])"
# PKWare DCL implode: literals coded as plain bytes (0), a 4 KiB dictionary (6).
IMPLODE_HEADER = bytes([0, 6])
# End of stream: a length code (a 1 bit) for length 519: seven 0 bits, then eight 1 bits.
END_BITS = np.array([1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1], np.uint8)
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


def dbc_to_dbf(dbc_path: Path, dbf_path: Path) -> Path:
    """Decompress a .dbc into a verified .dbf (written under a temporary name, then renamed)."""
    dbc_path, dbf_path = Path(dbc_path), Path(dbf_path)
    header, crc = dbc_header(dbc_path)
    records, hlen, reclen = struct.unpack("<IHH", header[4:12])
    with atomic_path(dbf_path) as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", DECOMPRESS, str(dbc_path), str(tmp)],
            capture_output=True,
            text=True,
            errors="replace",
        )
        if proc.returncode != 0 or not tmp.exists():
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise ConversionError(
                f"decompression failed (exit {proc.returncode}){': ' + detail[-1] if detail else ''}",
                file=str(dbc_path),
            )
        size = tmp.stat().st_size
        expected = hlen + records * reclen
        if size not in (expected, expected + 1):
            raise ConversionError(
                f"decompressed to {size} bytes, the header declares {expected} "
                f"({records} records of {reclen})",
                file=str(dbc_path),
                hint="The .dbc is truncated or corrupt: fetch it again",
            )
        # The CRC covers the DBF as it was compressed; pyreaddbc rewrites the header's last byte (0x00 in some
        # DATASUS files) as 0x0D, so the stored header is checked together with the decompressed records.
        actual = _crc32(tmp, skip=hlen, start=zlib.crc32(header))
        if actual != crc:
            raise ConversionError(
                f"CRC-32 mismatch: stored {crc:08x}, decompressed {actual:08x}",
                file=str(dbc_path),
                hint="The .dbc is corrupt: fetch it again",
            )
    return dbf_path


def _crc32(path: Path, skip: int = 0, start: int = 0) -> int:
    crc = start
    with open(path, "rb") as f:
        f.seek(skip)
        while block := f.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return crc


def write_dbc(dbf_path: Path, dbc_path: Path) -> Path:
    """Compress a .dbf into a .dbc that DATASUS tools read: literal-only implode, streamed in chunks."""
    dbf_path = Path(dbf_path)
    with open(dbf_path, "rb") as f:
        hlen = struct.unpack("<H", f.read(10)[8:10])[0]
        f.seek(0)
        header = f.read(hlen)
    with atomic_path(Path(dbc_path)) as tmp, open(dbf_path, "rb") as src, open(tmp, "wb") as out:
        out.write(header + struct.pack("<I", _crc32(dbf_path)) + IMPLODE_HEADER)
        src.seek(hlen)
        tail = np.zeros(0, np.uint8)  # bits not yet forming a whole byte
        while chunk := src.read(CHUNK):
            bits = np.unpackbits(np.frombuffer(chunk, np.uint8)[:, None], axis=1, bitorder="little")
            bits = np.concatenate([tail, np.hstack([np.zeros((len(chunk), 1), np.uint8), bits]).ravel()])
            whole = len(bits) // 8 * 8
            out.write(np.packbits(bits[:whole], bitorder="little").tobytes())
            tail = bits[whole:]
        bits = np.concatenate([tail, END_BITS])
        out.write(np.packbits(bits, bitorder="little").tobytes())
    return Path(dbc_path)


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
    dbf = (out_dir if keep_dbf else ctx.settings.tmp_dir) / f"{path.stem}.dbf"
    try:
        dbc_to_dbf(path, dbf)
        return convert_dbf(
            dbf, out_dir, ctx, encoding=encoding, column_encodings=column_encodings, source_name=path.name
        )
    finally:
        if not keep_dbf:
            dbf.unlink(missing_ok=True)
