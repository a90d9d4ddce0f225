"""The `etl` command: parses arguments, builds the config, calls the library, maps errors to exit codes."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import logging
import sys
import typing
from pathlib import Path
from typing import Any

from etl.config import Config, Dataset, build_options, load_config
from etl.datasus import cli as datasus_cli
from etl.errors import EtlError
from etl.sources import KINDS, Context, get_source

logger = logging.getLogger("etl")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parse_mapping(text: str) -> dict[str, str]:
    """`A=INT,B=DATE` -> {"A": "INT", "B": "DATE"}."""
    pairs = [p for p in text.split(",") if p.strip()]
    if not all("=" in p for p in pairs):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE[,NAME=VALUE…], not {text!r}")
    return {k.strip(): v.strip() for k, v in (p.split("=", 1) for p in pairs)}


def add_option_flags(parser: argparse.ArgumentParser, options_cls: type, skip: tuple[str, ...] = ()) -> None:
    """A flag per field of a source's Options dataclass: `batch_rows` -> `--batch-rows`."""
    hints = typing.get_type_hints(options_cls)
    for f in dataclasses.fields(options_cls):
        if f.name in skip:
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


def options_from_args(options_cls: type, args: argparse.Namespace, where: str) -> Any:
    raw = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_") and v is not None}
    return build_options(options_cls, raw, where)


def named_kind(argv: list[str]) -> str | None:
    """The KIND of `etl convert|fetch KIND …`: the one source module that parsing the command needs."""
    return next((k for c, k in itertools.pairwise(argv) if c in ("convert", "fetch") and k in KINDS), None)


def build_parser(kind_only: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser; with kind_only, only that kind's module is imported (the others' libraries cost memory)."""
    p = argparse.ArgumentParser(prog="etl", description="Out-of-core ETL for large public data sets.")
    p.add_argument(
        "--config", type=Path, default=None, help="pipeline config (default: ./etl.toml if present)"
    )
    p.add_argument("--memory-limit", help="memory budget, e.g. 512MB (default 1GB; ETL_MEMORY_LIMIT)")
    p.add_argument("--data-dir", help="where raw, parquet, warehouse and state live (default data/)")
    p.add_argument("--threads", type=int, help="threads for DuckDB and Polars")
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
    for kind in [kind_only] if kind_only else sorted(KINDS):
        source = get_source(kind)
        c = conv_kinds.add_parser(kind, help=(source.__doc__ or "").splitlines()[0])
        c.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
        c.add_argument("--out", type=Path, required=True, help="output directory")
        add_option_flags(c, source.Options, skip=("paths", "urls", "sample", "sample_rows"))
        if hasattr(source, "acquire"):
            f = fetch_kinds.add_parser(kind, help=(source.__doc__ or "").splitlines()[0])
            f.add_argument("--out", type=Path, help=f"target directory (default data/raw/{kind})")
            add_option_flags(f, source.Options)

    load = sub.add_parser("load", help="publish the warehouse's tables").add_subparsers(
        dest="target", required=True, metavar="TARGET"
    )
    lp = load.add_parser("postgres", help="to PostgreSQL, each table swapped in atomically")
    lp.add_argument(
        "--dsn", help="connection string (default: $ETL_PG_DSN); a password is best left to PGPASSWORD"
    )
    lp.add_argument("--schema", default=None, help="target schema (default etl)")
    lp.add_argument("--tables", nargs="+", metavar="DATASET.TABLE", help="only these tables")
    extract = sub.add_parser("extract", help="extract from a database to Parquet").add_subparsers(
        dest="source", required=True, metavar="SOURCE"
    )
    ep = extract.add_parser("postgres", help="a PostgreSQL table or query, streamed")
    ep.add_argument("--dsn", help="connection string (default: $ETL_PG_DSN)")
    what = ep.add_mutually_exclusive_group(required=True)
    what.add_argument("--table", help="schema.table or table")
    what.add_argument("--query", help="a SELECT")
    ep.add_argument("--out", type=Path, required=True, help="output directory")

    q = sub.add_parser("sql", help="query the warehouse read-only")
    q.add_argument("query", help="a SQL query")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    q.add_argument("--limit", type=int, default=1000, help="rows shown in table format (default 1000)")

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
    parser = build_parser(named_kind(argv))
    args = parser.parse_args(argv)
    setup_logging(args)
    try:
        config = make_config(args)
        handler = COMMANDS[args.command]
        return handler(args, config)
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
    data = summary.to_dict()
    if args.json:
        print(json.dumps(data, default=str))
    elif not args.quiet:
        print(
            f"{data['command']}: {data['rows']} rows, {data['rejected']} rejected, "
            f"{data['bytes'] / 2**20:.1f} MB written, {data['skipped']} skipped, {data['failed']} failed, "
            f"{data['seconds']:.1f}s, peak RSS {data['peak_rss_mb']:.0f} MB "
            f"(budget {data['memory_limit_mb']:.0f} MB)",
            file=sys.stderr,
        )
        if data["engine"]["name"] == "spark":
            from etl.engines.spark import summary_line

            print(summary_line(data), file=sys.stderr)
        for step in summary.revised:
            print(f"revised: {step.file}: {step.rows_before} rows before, {step.rows} now", file=sys.stderr)
    for step in summary.failed:
        print(f"etl: failed: {step.file or step.dataset or step.step}: {step.error}", file=sys.stderr)
    return EXIT_FAILED if summary.failed else EXIT_OK


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    from etl.pipeline import Pipeline

    pipeline = Pipeline(config, progress=_progress(args), force=args.force)
    try:
        return _report(args, pipeline.run(args.only))
    finally:
        pipeline.close()


def cmd_transform(args: argparse.Namespace, config: Config) -> int:
    from etl.pipeline import Pipeline

    pipeline = Pipeline(config, progress=_progress(args))
    try:
        return _report(args, pipeline.transform())
    finally:
        pipeline.close()


def cmd_convert(args: argparse.Namespace, config: Config) -> int:
    from etl.pipeline import Step, Summary, log_findings, measured

    source = get_source(args.kind)
    options = options_from_args(source.Options, args, f"etl convert {args.kind}")
    ctx = Context(settings=config.settings, base_dir=Path.cwd(), progress=_progress(args))
    summary = Summary(command=f"convert {args.kind}", memory_limit_mb=config.settings.memory_limit / 2**20)
    for path in args.inputs:
        dataset = Dataset(name=path.name, kind=args.kind, options=options)
        step = Step("convert", dataset=args.kind, file=str(path))
        result = measured(
            summary,
            step,
            config.settings.memory_limit,
            lambda p=path, d=dataset: source.convert_file(p, args.out, d, ctx),
        )
        if result is not None:
            step.rows, step.rejected, step.bytes = result.rows_out, result.rows_rejected, result.bytes_out
            log_findings(str(path), result)
            logger.info(
                "%s: %d rows, %d rejected -> %s (%.1fs, peak RSS %.0f MB)",
                path,
                step.rows,
                step.rejected,
                ", ".join(str(p) for p in result.outputs.values()),
                step.seconds,
                step.peak_rss_mb,
            )
    return _report(args, summary)


def cmd_fetch(args: argparse.Namespace, config: Config) -> int:
    from etl.pipeline import Step, Summary, measured
    from etl.state import StateStore

    summary = Summary(command=f"fetch {args.kind}", memory_limit_mb=config.settings.memory_limit / 2**20)
    if args.kind == "url":
        from etl.download import download

        for url in args.urls:
            step = Step("fetch", dataset="url", file=url)
            path = measured(summary, step, config.settings.memory_limit, lambda u=url: download(u, args.out))
            if path is not None:
                step.bytes = path.stat().st_size
        return _report(args, summary)
    from etl.lock import WriterLock

    source = get_source(args.kind)
    options = options_from_args(source.Options, args, f"etl fetch {args.kind}")
    lock = WriterLock(config.settings.data_dir)
    state = StateStore(config.settings.state_db)
    try:
        ctx = Context(settings=config.settings, base_dir=Path.cwd(), progress=_progress(args), state=state)
        dataset = Dataset(name=args.kind, kind=args.kind, options=options)
        out = args.out or config.settings.raw_dir / args.kind
        step = Step("fetch", dataset=args.kind, file=str(out))
        files = measured(
            summary, step, config.settings.memory_limit, lambda: source.acquire(dataset, out, ctx)
        )
        if files is not None:
            step.rows, step.bytes = len(files), sum(p.stat().st_size for p in files if p.exists())
    finally:
        state.close()
        lock.release()
    return _report(args, summary)


def _dsn(args: argparse.Namespace) -> str:
    import os

    from etl.sinks.postgres import DEFAULT_DSN_ENV

    dsn = args.dsn or os.environ.get(DEFAULT_DSN_ENV)
    if not dsn:
        raise EtlError("no PostgreSQL DSN", hint=f"Pass --dsn or set {DEFAULT_DSN_ENV}")
    return dsn


def cmd_load(args: argparse.Namespace, config: Config) -> int:
    from etl.pipeline import Step, Summary, measured
    from etl.sinks.postgres import load

    summary = Summary(command="load postgres", memory_limit_mb=config.settings.memory_limit / 2**20)
    step = Step("load", dataset="postgres")
    loaded = measured(
        summary,
        step,
        config.settings.memory_limit,
        lambda: load(config.settings, _dsn(args), schema=args.schema or "etl", tables=args.tables),
    )
    for table in loaded or []:
        step.rows += table.rows
        logger.info("%s: %d rows", table.table, table.rows)
    return _report(args, summary)


def cmd_extract(args: argparse.Namespace, config: Config) -> int:
    from etl.pipeline import Step, Summary, measured
    from etl.sources.postgres import extract

    summary = Summary(command="extract postgres", memory_limit_mb=config.settings.memory_limit / 2**20)
    step = Step("convert", dataset="postgres", file=args.table or "query")
    result = measured(
        summary,
        step,
        config.settings.memory_limit,
        lambda: extract(config.settings, _dsn(args), args.out, table=args.table, query=args.query),
    )
    if result is not None:
        step.rows, step.bytes = result.rows_out, result.bytes_out
    return _report(args, summary)


def cmd_sql(args: argparse.Namespace, config: Config) -> int:
    from etl.sinks.duckdb import connect

    if not config.settings.warehouse.exists():
        raise EtlError(
            f"no warehouse at {config.settings.warehouse}", hint="Run `etl run` (or `make etl`) first"
        )
    con = connect(config.settings, config.settings.warehouse, read_only=True, preserve_order=True)
    try:
        try:
            rel = con.sql(args.query)
        except Exception as e:
            raise EtlError(
                str(e).splitlines()[0], hint="Check the query; `etl sql 'SHOW ALL TABLES'` lists tables"
            ) from None
        if rel is None:
            return EXIT_OK
        reader = rel.to_arrow_reader(10_000)
        names = reader.schema.names
        out = sys.stdout
        if args.format == "csv":
            w = csv.writer(out, lineterminator="\n")
            w.writerow(names)
            for batch in reader:
                w.writerows(zip(*(c.to_pylist() for c in batch.columns), strict=True))
        elif args.format == "json":
            for batch in reader:
                for row in batch.to_pylist():
                    out.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
        else:
            rows: list[tuple] = []
            for batch in reader:
                rows += zip(*(c.to_pylist() for c in batch.columns), strict=True)
                if len(rows) > args.limit:
                    break
            print_table(names, rows[: args.limit], out)
            if len(rows) > args.limit:
                print(f"(first {args.limit} rows; use --limit or --format csv for all)", file=sys.stderr)
    finally:
        con.close()
    return EXIT_OK


def print_table(names: list[str], rows: list[tuple], out) -> None:
    """Rows as aligned text columns under their names."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    out.write("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")


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
    from etl.state import StateStore

    state = StateStore(config.settings.state_db)
    try:
        files = state.files()
        cursors = state.cursors()
        runs = state.runs(5)
    finally:
        state.close()
    if args.json:
        print(
            json.dumps(
                {"files": [dataclasses.asdict(f) for f in files], "cursors": cursors, "runs": runs},
                default=str,
            )
        )
        return EXIT_OK
    print(f"state: {config.settings.state_db}")
    print_table(
        ["dataset", "file", "stage", "rows", "rejected", "error"],
        [(f.dataset, f.path, f.stage, f.rows_out, f.rows_rejected, (f.error or "")[:80]) for f in files],
        sys.stdout,
    )
    for name, value in cursors.items():
        print(f"cursor {name}: {value}")
    for r in runs:
        print(f"run {r['id']} {r['command']}: {r['status']}")
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "transform": cmd_transform,
    "convert": cmd_convert,
    "fetch": cmd_fetch,
    "load": cmd_load,
    "extract": cmd_extract,
    "sql": cmd_sql,
    "status": cmd_status,
    "report": cmd_report,
    "datasus": datasus_cli.handle,
}


if __name__ == "__main__":
    sys.exit(main())
