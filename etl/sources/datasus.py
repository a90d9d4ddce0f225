"""DATASUS microdata: `.dbc` files fetched from the FTP tree by system, group, state and period, then converted.

A dataset selects files through the catalogue (etl.datasus.catalog); each is downloaded once (a file whose
listed size and date match what was fetched or converted before is not fetched again), verified, converted to
Parquet, and with `keep_raw = false` deleted once its Parquet is written.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from etl.config import Dataset
from etl.datasus.catalog import STATES, SYSTEMS, expected_names, folders_for, get_system, parse_name
from etl.errors import ConfigError, EtlError, FetchFailures, SourceError
from etl.files import atomic_path
from etl.sources import Context, ConvertResult, local_files
from etl.sources.dbc import convert_dbc

if TYPE_CHECKING:
    from etl.datasus.listing import Listed

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "ftp://ftp.datasus.gov.br"


@dataclass
class Options:
    system: str = field(default="SIH", metadata={"help": "SIH, SIA, SIM, SINASC, CNES or SINAN"})
    group: str = field(default="RD", metadata={"help": "file group: RD, PA, DO, DN, ST, DENG, …"})
    states: list[str] = field(default_factory=list, metadata={"help": "state codes (default: all)"})
    years: list[int] = field(default_factory=list, metadata={"help": "years, e.g. 2022 2023"})
    months: list[int] = field(default_factory=list, metadata={"help": "months 1-12 (default: all)"})
    base_url: str = field(
        default=DEFAULT_BASE_URL, metadata={"help": "ftp:// or http(s):// root of the tree"}
    )
    workers: int = field(default=1, metadata={"help": "parallel downloads"})
    keep_raw: bool = field(default=True, metadata={"help": "keep each .dbc once its Parquet is written"})
    encoding: str = field(default="latin-1", metadata={"help": "text encoding of the files"})
    column_encodings: dict[str, str] = field(default_factory=dict, metadata={"help": "per-column encodings"})
    sample: bool = field(
        default=False, metadata={"help": "generate sample files of the system's group instead of fetching"}
    )
    sample_rows: int | None = field(
        default=None,
        metadata={"help": "records in all the generated sample files (default: the sample's own)"},
    )
    paths: list[str] = field(
        default_factory=list, metadata={"help": "local .dbc/.zip files instead of fetching"}
    )

    def __post_init__(self) -> None:
        system = get_system(self.system)
        self.system, self.group = system.name, self.group.upper()
        self.states = [s.upper() for s in self.states]
        unknown = [s for s in self.states if s not in STATES and s != "BR"]
        if unknown:
            raise ConfigError(f"unknown state {unknown[0]!r}", hint="Use two-letter codes such as SP, RJ")
        if any(not 1 <= m <= 12 for m in self.months):
            raise ConfigError("months must be between 1 and 12")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")


# What `etl fetch datasus` and `etl convert datasus` take (the pipeline takes every option).
FETCH_OPTIONS = (
    "system",
    "group",
    "states",
    "years",
    "months",
    "base_url",
    "workers",
    "sample",
    "sample_rows",
)
CONVERT_OPTIONS = ("system", "group", "encoding", "column_encodings")


def options_for_file(path: Path, given: dict[str, Any]) -> dict[str, Any]:
    """`etl convert datasus FILE`: the system and group its name says, which must agree with those given."""
    named = next(
        ((s.name, f.group) for s in SYSTEMS.values() if (f := parse_name(Path(path).name, s)) is not None),
        None,
    )
    if named is None:
        return given
    asked = (
        get_system(given["system"]).name if "system" in given else named[0],
        given.get("group", named[1]),
    )
    if (asked[0], asked[1].upper()) != named:
        raise ConfigError(
            f"{Path(path).name} is a {named[0]} {named[1]} file, not {asked[0]} {asked[1].upper()}",
            hint=f"Pass --system {named[0]} --group {named[1]}, or neither",
        )
    return {**given, "system": named[0], "group": named[1]}


def sql_folders(dataset: Dataset) -> list[str]:
    """sql/datasus/ for every DATASUS dataset, then its system's views (sql/datasus/<system>/: SINAN's, one for all
    its diseases) and its group's (sql/datasus/<system>_<group>/); a folder that does not exist holds nothing."""
    system, group = dataset.options.system.lower(), dataset.options.group.lower()
    return ["datasus", f"datasus/{system}", f"datasus/{system}_{group}"]


def acquire(dataset: Dataset, raw_dir: Path, ctx: Context) -> list[Path]:
    opts: Options = dataset.options
    if opts.sample:
        from etl import samples
        from etl.samples.datasus import write_sample

        tmp, rows, system, group = ctx.settings.tmp_dir, opts.sample_rows, opts.system, opts.group
        tmp.mkdir(parents=True, exist_ok=True)
        params = {"datasus": [system, group, rows]}
        samples.ensure(
            raw_dir,
            params,
            lambda d: write_sample(d, tmp, system, group, rows, parallel_map=ctx.parallel_map),
            tmp,
        )
        return write_sample(raw_dir, tmp, system, group, rows=rows)  # every file is there: only their paths
    if opts.paths:
        return [
            p for f in local_files(opts.paths, ctx) for p in (extract_zip(f, raw_dir) if _is_zip(f) else [f])
        ]
    if not opts.years:
        raise ConfigError("a DATASUS dataset needs `years` (or `paths`, or `sample = true`)")
    if opts.base_url.startswith("ftp://"):
        return _fetch_ftp(dataset, raw_dir, ctx)
    return _fetch_http(dataset, raw_dir, ctx)


def _is_zip(path: Path) -> bool:
    return path.suffix.lower() == ".zip"


def extract_zip(archive: Path, dest: Path) -> list[Path]:
    """Extract the .dbc members of a ZIP to disk (streamed, never in memory), keeping the archive's folders (two
    members `a/X.dbc` and `b/X.dbc` are two files); refuse names escaping dest."""
    try:
        return _extract(archive, dest)
    except (zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise SourceError(
            f"not a readable ZIP archive: {e}",
            file=str(archive),
            hint="Fetch the archive again; it may be truncated",
        ) from None


def _extract(archive: Path, dest: Path) -> list[Path]:
    out = []
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            name = PurePosixPath(member.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts:
                raise SourceError(
                    f"refusing archive member {member.filename!r}: it escapes the folder", file=str(archive)
                )
            if member.is_dir() or name.suffix.lower() != ".dbc":
                continue
            target = Path(dest).joinpath(*name.parts)
            with zf.open(member) as src, atomic_path(target) as tmp, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            out.append(target)
    return sorted(out)


def _unchanged(
    ctx: Context, dataset: Dataset, local: Path, size: int | None, modified_ns: int | None
) -> bool:
    """Fetched or converted before with the same listed size and date (the local file may be gone: keep_raw)."""
    if local.exists():
        st = local.stat()
        return st.st_size == size and (modified_ns is None or st.st_mtime_ns == modified_ns)
    rec = ctx.state.get_file(dataset.name, ctx.state_key(local)) if ctx.state else None
    return bool(
        rec
        and rec.stage in ("converted", "loaded")
        and rec.size == size
        and (modified_ns is None or rec.mtime_ns == modified_ns)
    )


def _fetch_ftp(dataset: Dataset, raw_dir: Path, ctx: Context) -> list[Path]:
    from etl.datasus.listing import remote_files
    from etl.ftp import FtpClient

    opts: Options = dataset.options
    todo = remote_files(opts.base_url, opts.system, opts.group, opts.states, opts.years, opts.months)
    if not todo:
        logger.warning("%s: no files on %s match the selection", dataset.name, opts.base_url)

    def fetch(item: Listed) -> Path:
        folder, remote = item.folder, item.remote
        local = Path(raw_dir) / remote.name
        if _unchanged(ctx, dataset, local, remote.size, item.modified_ns):
            logger.info("%s: unchanged, not fetched again", remote.name)
            return local
        worker = FtpClient(opts.base_url)
        try:
            with ctx.bar(remote.size, "B", remote.name) as bar:
                path = worker.download(folder, remote, raw_dir, progress=bar)
        finally:
            worker.close()
        if ctx.state:
            st = path.stat()
            ctx.state.put_file(
                dataset.name,
                ctx.state_key(path),
                "fetched",
                origin=f"{opts.base_url}{folder}/{remote.name}",
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                error=None,
            )
        return path

    return _run_all(dataset, ctx, raw_dir, todo, fetch, opts.workers, lambda item: item.remote.name)


def _fetch_http(dataset: Dataset, raw_dir: Path, ctx: Context) -> list[Path]:
    """A mirror over http(s) cannot be listed: ask for the names the catalogue expects (404: not published)."""
    from etl.download import download

    opts: Options = dataset.options
    system = get_system(opts.system)
    folders = folders_for(system, opts.group, opts.years, opts.months)
    names = expected_names(system, opts.group, opts.states, opts.years, opts.months)

    def fetch(name: str) -> Path | None:
        local = Path(raw_dir) / name
        if local.exists():
            return local
        for folder in folders:
            try:
                return download(f"{opts.base_url.rstrip('/')}{folder}/{name}", raw_dir)
            except EtlError as e:
                if "HTTP 404" not in str(e):
                    raise
        logger.info("%s: not published", name)
        return None

    return [p for p in _run_all(dataset, ctx, raw_dir, names, fetch, opts.workers, str) if p is not None]


def _run_all(
    dataset: Dataset, ctx: Context, raw_dir: Path, items: list, fetch, workers: int, name
) -> list[Path]:
    """Fetch every item (in parallel with workers > 1); one failure does not stop the others."""
    fetched, failures = [], []

    def guarded(item):
        try:
            return fetch(item), None
        except EtlError as e:
            if ctx.state:
                ctx.state.put_file(
                    dataset.name, ctx.state_key(Path(raw_dir) / name(item)), "failed", error=str(e)
                )
            return None, (name(item), str(e))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for path, failure in pool.map(guarded, items):
            if failure:
                failures.append(failure)
            elif path is not None:
                fetched.append(path)
    if failures:
        raise FetchFailures(fetched, failures)
    return fetched


def convert_file(path: Path, out_dir: Path, dataset: Dataset, ctx: Context) -> ConvertResult:
    """Convert one .dbc; report columns that differ from the dataset's earlier files; drop the .dbc if asked."""
    opts: Options = dataset.options
    result = convert_dbc(
        Path(path), Path(out_dir), ctx, encoding=opts.encoding, column_encodings=opts.column_encodings
    )
    if result.outputs and ctx.state:
        result.warnings += _schema_drift(dataset, ctx, result.outputs["records"], Path(path).name)
    if not opts.keep_raw and not opts.sample and _fetched(Path(path), ctx):
        Path(path).unlink(missing_ok=True)
    return result


def _fetched(path: Path, ctx: Context) -> bool:
    """Whether etl itself fetched the file (under data/raw/): keep_raw = false never deletes a user's own file."""
    return path.resolve().is_relative_to(ctx.settings.raw_dir.resolve())


def _schema_drift(dataset: Dataset, ctx: Context, parquet: Path, name: str) -> list[str]:
    """Columns differing from the first converted file of the dataset (the warehouse view keeps them all)."""
    first = next(
        (
            r
            for r in ctx.state.files(dataset.name)
            if r.stage == "converted"
            and "records" in r.outputs
            and Path(r.outputs["records"]) != parquet
            and Path(r.outputs["records"]).exists()
        ),
        None,
    )
    if first is None:
        return []
    ours = set(pq.read_schema(parquet).names)
    theirs = set(pq.read_schema(first.outputs["records"]).names)
    if ours == theirs:
        return []
    return [
        f"columns differ from {Path(first.path).name}: only here {sorted(ours - theirs)}, "
        f"missing here {sorted(theirs - ours)} (the warehouse view has all of them, null where absent)"
    ]
