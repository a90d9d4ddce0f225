"""Deterministic generators of sample inputs, so `make etl` does real work offline.

A generated sample is trusted only as far as its manifest (`_sample.json` in its folder: the generator's
parameters, and each file's size and CRC-32) vouches for it: a file missing, cut short or changed, or a manifest
missing, has the sample generated again (into scratch, then each file renamed into place).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from etl.files import TMP_SUFFIX, atomic_path, crc32

logger = logging.getLogger(__name__)

MANIFEST = "_sample.json"


def _intact(folder: Path, params: dict) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("params") != params or not manifest.get("files"):
        return False
    for name, (size, crc) in manifest["files"].items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size or crc32(path) != crc:
            logger.warning("%s: the generated sample is not intact; generating it again", path)
            return False
    return True


def ensure(folder: Path, params: dict, generate: Callable[[Path], object], scratch_dir: Path) -> None:
    """Make folder hold the sample `generate(into)` writes with these params, unless its manifest shows it does."""
    folder = Path(folder)
    if _intact(folder, params):
        return
    scratch = Path(scratch_dir) / f"sample-{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}"
    scratch.mkdir(parents=True)
    try:
        generate(scratch)
        manifest = {}
        for p in sorted(p for p in scratch.rglob("*") if p.is_file()):
            name = str(p.relative_to(scratch))
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            # The generators write whole files (atomic, not fsync'd): a rename is enough, and the manifest, written
            # last and fsync'd, vouches for them (a file a machine crash cut short fails its check next run).
            os.replace(p, target)
            manifest[name] = [target.stat().st_size, crc32(target)]
        with atomic_path(folder / MANIFEST) as tmp:
            tmp.write_text(json.dumps({"params": params, "files": manifest}, indent=1))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
