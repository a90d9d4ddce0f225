"""The `etl` command: parses arguments, builds the config, calls the library, maps errors to exit codes."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import json
import logging
import os
import sys
import typing
from pathlib import Path
from typing import Any

# numpy's OpenBLAS starts a thread per core as numpy is imported, ~40 ms of CPU in a small `etl convert dbc` here;
# no etl command does linear algebra. Read at that import, so set before any module imports numpy; a user's own
# setting wins. (Here and not in etl/__init__.py: a notebook importing etl keeps its BLAS threads.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from etl import __version__, query_cli  # noqa: E402
from etl.config import Config, build_options, load_config  # noqa: E402
from etl.datasus import cli as datasus_cli  # noqa: E402
from etl.errors import EtlError  # noqa: E402
from etl.kinds import KINDS, command_options, get_source  # noqa: E402
from etl.memory import check_budget, parse_size  # noqa: E402
from etl.progress import logging_through_bars  # noqa: E402

logger = logging.getLogger("etl")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parse_mapping(text: str) -> dict[str, str]:
    """`A=INT,B=DATE` -> {"A": "INT", "B": "DATE"}."""
    pairs = [p for p in text.split(",") if p.strip()]
    if not all("=" in p for p in pairs):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE[,NAME=VALUE…], not {text!r}")
    return {k.strip(): v.strip() for k, v in (p.split("=", 1) for p in pairs)}


def _memory_limit(text: str) -> str:
    """--memory-limit: a size etl can work in (a usage error otherwise)."""
    try:
        check_budget(parse_size(text))
    except EtlError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _threads(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return int(text)


def add_option_flags(parser: argparse.ArgumentParser, options_cls: type, names: list[str]) -> None:
    """A flag per named field of a source's Options dataclass: `batch_rows` -> `--batch-rows`."""
    hints = typing.get_type_hints(options_cls)
    for f in dataclasses.fields(options_cls):
        if f.name not in names:
            continue
        flag = "--" + f.name.replace("_", "-")
        tp = hints[f.name]
        args = typing.get_args(tp)
        if typing.get_origin(tp) in (typing.Union, type(int | None)):
            tp = next(a for a in args if a is not type(None))
            args = typing.get_args(tp)
        kw: dict[str, Any] = {"dest": f"opt_{f.name}", "default": None, "help": f.metadata.get("help")}
        if tp is not bool:
            kw["metavar"] = f.name.upper()
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is list:
            kw.update(nargs="+", type=args[0] if args and args[0] in (int, float) else str)
        elif typing.get_origin(tp) is dict:
            kw["type"] = _parse_mapping
        elif tp in (int, float):
            kw["type"] = tp
        parser.add_argument(flag, **kw)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The source options given as flags (`--batch-rows 10` -> {"batch_rows": 10})."""
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_") and v is not None}


def parsed_kinds(argv: list[str]) -> list[str]:
    """The kinds whose source modules parsing argv needs: KIND's alone for `etl convert|fetch KIND …`, every kind's
    for `etl convert|fetch` without one (their help lists them), none otherwise. A source module imports its
    libraries (pyarrow, numpy: ~0.2 s and 50 MB), so `etl --help`, `etl status` or `etl sql` import none."""
    named = next((k for c, k in itertools.pairwise(argv) if c in ("convert", "fetch") and k in KINDS), None)
    if named:
        return [named]
    return sorted(KINDS) if {"convert", "fetch"} & set(argv) else []


def build_parser(kinds: list[str] | None = None) -> argparse.ArgumentParser:
    """The CLI's parser, with `convert KIND` and `fetch KIND` for these kinds (default: all)."""
    p = argparse.ArgumentParser(
        prog="etl",
        description="Out-of-core ETL for large public data sets.",
        epilog="exit codes: 0 all done, 1 something failed, 2 usage error, 130 interrupted",
    )
    p.add_argument("--version", action="version", version=f"etl {__version__}")
    p.add_argument(
        "--config", type=Path, default=None, help="pipeline config (default: ./etl.toml if present)"
    )
    p.add_argument(
        "--memory-limit",
        type=_memory_limit,
        help="memory budget, e.g. 512MB: MB and GB are 2**20 and 2**30 bytes, at least 256MB "
        "(default 1GB; ETL_MEMORY_LIMIT)",
    )
    p.add_argument("--data-dir", help="where raw, parquet, warehouse and state live (default data/)")
    p.add_argument(
        "--threads",
        type=_threads,
        help="threads for DuckDB and Polars, and files converted at once (at least 1)",
    )
    p.add_argument("--engine", choices=("local", "spark"), help="where work runs (default local; ETL_ENGINE)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings and errors only")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="the whole pipeline: acquire, convert, warehouse, transforms")
    run.add_argument("--only", nargs="+", metavar="NAME", help="only these datasets")
    run.add_argument("--force", action="store_true", help="redo work the state store says is done")

    sub.add_parser("transform", help="rebuild the warehouse views and run the SQL transforms")

    conv = sub.add_parser("convert", help="convert files to Parquet")
    conv_kinds = conv.add_subparsers(dest="kind", required=True, metavar="KIND")
    fetch = sub.add_parser("fetch", help="acquire raw files only")
    fetch_kinds = fetch.add_subparsers(dest="kind", required=True, metavar="KIND")
    url = fetch_kinds.add_parser("url", help="download http(s) URLs (resumable)")
    url.add_argument("urls", nargs="+", metavar="URL")
    url.add_argument("--out", type=Path, required=True, help="target directory")
    for kind in sorted(KINDS) if kinds is None else kinds:
        source = get_source(kind)
        c = conv_kinds.add_parser(kind, help=(source.__doc__ or "").splitlines()[0])
        c.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
        c.add_argument("--out", type=Path, required=True, help="output directory")
        add_option_flags(c, source.Options, command_options(source, "convert"))
        if hasattr(source, "acquire"):
            f = fetch_kinds.add_parser(kind, help=(source.__doc__ or "").splitlines()[0])
            f.add_argument("--out", type=Path, help=f"target directory (default data/raw/{kind})")
            add_option_flags(f, source.Options, command_options(source, "fetch"))

    load = sub.add_parser("load", help="publish the warehouse's tables").add_subparsers(
        dest="target", required=True, metavar="TARGET"
    )
    lp = load.add_parser("postgres", help="to PostgreSQL, each table swapped in atomically")
    lp.add_argument(
        "--dsn", help="connection string (default: $ETL_PG_DSN); a password is best left to PGPASSWORD"
    )
    lp.add_argument("--schema", default=None, help="target schema (default etl)")
    lp.add_argument(
        "--tables",
        nargs="+",
        metavar="SCHEMA.NAME",
        help="these tables or views (* a wildcard; default: every dataset table and mart)",
    )
    lp.add_argument("--force", action="store_true", help="reload tables whose inputs have not changed")
    extract = sub.add_parser("extract", help="extract from a database to Parquet").add_subparsers(
        dest="source", required=True, metavar="SOURCE"
    )
    ep = extract.add_parser("postgres", help="a PostgreSQL table or query, streamed")
    ep.add_argument("--dsn", help="connection string (default: $ETL_PG_DSN)")
    what = ep.add_mutually_exclusive_group(required=True)
    what.add_argument("--table", help="schema.table or table")
    what.add_argument("--query", help="a SELECT")
    ep.add_argument("--out", type=Path, required=True, help="output directory")

    query_cli.register(sub)
    sub.add_parser("status", help="what the state store knows: files, cursors, last runs")
    rep = sub.add_parser("report", help="plot peak RSS and time per step of a run (PNG under data/reports)")
    rep.add_argument("--run", type=int, metavar="N", help="the run to show (default: the last that did work)")
    rep.add_argument("--html", action="store_true", help="also a self-contained HTML page")
    datasus_cli.add_parser(sub)
    return p


def make_config(args: argparse.Namespace) -> Config:
    path = args.config
    if path is None and Path("etl.toml").exists():
        path = Path("etl.toml")
    overrides = {"memory_limit": args.memory_limit, "data_dir": args.data_dir, "threads": args.threads}
    overrides["engine"] = args.engine
    # convert and fetch use the settings only: the datasets' sources (and their libraries' memory) are not loaded
    return load_config(path, overrides=overrides, with_datasets=args.command not in ("convert", "fetch"))


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(message)s", stream=sys.stderr, force=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(parsed_kinds(argv))
    args = parser.parse_args(argv)
    setup_logging(args)
    try:
        config = make_config(args)
        with logging_through_bars(args.quiet):
            return COMMANDS[args.command](args, config)
    except EtlError as e:
        print(f"etl: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("etl: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def _progress(args: argparse.Namespace):
    from etl.progress import progress_factory

    return progress_factory(args.quiet)


def _report(args: argparse.Namespace, summary) -> int:
    """The summary on stderr (or as JSON on stdout), and the exit code it makes; failures were logged as they came."""
    from etl.summary import summary_lines

    if args.json:
        print(json.dumps(summary.to_dict(), default=str))
    elif not args.quiet:
        for line in summary_lines(summary):
            print(line, file=sys.stderr)
    return EXIT_FAILED if summary.failed else EXIT_OK


def _where_next(args: argparse.Namespace, config: Config, summary) -> None:
    """After a run: where its outputs are, and the commands to try next."""
    if args.json or args.quiet or not config.settings.warehouse.exists():
        return
    from etl.summary import shown

    s = config.settings
    print(
        f"outputs: {shown(s.parquet_dir)}/ (Parquet), {shown(s.warehouse)} (DuckDB views and marts), "
        f"{shown(s.reports_dir / f'run-{summary.run_id}.json')} (this run's figures)\n"
        "next: etl sql 'SHOW ALL TABLES' lists the tables; etl status shows the files and runs; "
        "etl report draws this run",
        file=sys.stderr,
    )


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    from etl.pipeline import Pipeline

    pipeline = Pipeline(config, progress=_progress(args), force=args.force)
    try:
        summary = pipeline.run(args.only)
    finally:
        pipeline.close()
    code = _report(args, summary)
    _where_next(args, config, summary)
    return code


def cmd_transform(args: argparse.Namespace, config: Config) -> int:
    from etl.pipeline import Pipeline

    pipeline = Pipeline(config, progress=_progress(args))
    try:
        return _report(args, pipeline.transform())
    finally:
        pipeline.close()


def cmd_convert(args: argparse.Namespace, config: Config) -> int:
    from etl.commands import convert_files

    return _report(
        args,
        convert_files(
            config, args.kind, args.inputs, args.out, given_options(args), progress=_progress(args)
        ),
    )


def cmd_fetch(args: argparse.Namespace, config: Config) -> int:
    from etl import commands

    if args.kind == "url":
        return _report(args, commands.fetch_urls(config, args.urls, args.out))
    options = build_options(get_source(args.kind).Options, given_options(args), f"etl fetch {args.kind}")
    return _report(args, commands.fetch(config, args.kind, options, args.out, progress=_progress(args)))


def cmd_load(args: argparse.Namespace, config: Config) -> int:
    from etl.commands import load_postgres

    return _report(
        args,
        load_postgres(config, args.dsn, schema=args.schema or "etl", tables=args.tables, force=args.force),
    )


def cmd_extract(args: argparse.Namespace, config: Config) -> int:
    from etl.commands import extract_postgres

    return _report(args, extract_postgres(config, args.dsn, args.out, table=args.table, query=args.query))


def cmd_report(args: argparse.Namespace, config: Config) -> int:
    from etl.report import render

    rendered = render(config.settings, run_id=args.run, as_html=args.html)
    if args.json:
        print(
            json.dumps(
                {
                    "run_id": rendered.run_id,
                    "png": str(rendered.png),
                    "html": rendered.html and str(rendered.html),
                }
            )
        )
    else:
        print(rendered.png)
        if rendered.html:
            print(rendered.html)
    return EXIT_OK


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    from etl.render import show_rows
    from etl.state import status

    data = status(config.settings.state_db)
    if args.json:
        print(json.dumps(data, default=str))
        return EXIT_OK
    print(f"state: {config.settings.state_db}")
    files = data["files"]
    show_rows(
        files,
        {
            "dataset": "dataset",
            "file": "path",
            "stage": "stage",
            "rows": "rows_out",
            "rejected": "rows_rejected",
            "error": lambda f: (f["error"] or "")[:80],
        },
    )
    for name, value in data["cursors"].items():
        print(f"cursor {name}: {value}")
    runs = data["runs"]
    if runs:
        show_rows(
            runs,
            {
                "run": "id",
                "command": "command",
                "started": "started",
                "seconds": "seconds",
                "rows": "rows",
                "failed": "failed",
                "status": "status",
            },
        )
    for step in data["last_run_failures"]:
        print(
            f"run {runs[0]['id']} failed: {step['step']} {step['file'] or step['dataset'] or ''}: {step['error']}"
        )
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "transform": cmd_transform,
    "convert": cmd_convert,
    "fetch": cmd_fetch,
    "load": cmd_load,
    "extract": cmd_extract,
    **query_cli.COMMANDS,
    "status": cmd_status,
    "report": cmd_report,
    "datasus": datasus_cli.handle,
}


def run() -> None:
    """The `etl` command (`python -m etl.cli`): main(), then the process ends with its exit code.

    The objects left then are frozen first: the interpreter's finalisation ran full garbage collections over all
    of them (numpy's and pyarrow's modules included), 16 ms of a small `etl convert dbc`'s 0.26 s. Finalisation
    itself goes on as before (atexit handlers, modules cleared, objects freed as their last reference goes): only
    reference cycles among those objects are no longer collected, the process's end frees their memory, and every
    command has closed its files, connections and pools before it returns. main() called in a process that goes
    on (a test, a notebook) freezes nothing.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
