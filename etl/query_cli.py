"""`etl sql`, `etl tables`, `etl describe`, `etl shell`: the query commands, on etl/query.py.

etl/query.py (and the DuckDB sink's module it imports) is imported by the commands that query, not with the parser:
10 ms of every other command's start (`etl convert dbc` on a small file takes 0.2 s)."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from etl.config import Config
from etl.errors import EtlError
from etl.render import FORMATS, show_rows

if TYPE_CHECKING:
    from etl import query


def register(sub: argparse._SubParsersAction) -> None:
    """The query commands, under the CLI's subparsers."""
    allow = argparse.ArgumentParser(add_help=False)
    allow.add_argument(
        "--allow-path",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="a file or folder outside the data directory that queries may read (repeatable)",
    )
    shown = argparse.ArgumentParser(add_help=False)
    shown.add_argument(
        "--format",
        choices=FORMATS,
        help="table (default), csv, json (an array) or ndjson (one per line)",
    )
    shown.add_argument("--limit", type=int, default=1000, help="rows shown in table format (default 1000)")
    q = sub.add_parser("sql", parents=[allow, shown], help="query the warehouse read-only")
    q.add_argument("query", help="DuckDB SQL; several statements separated by ';' show the last one's rows")
    sub.add_parser("tables", help="the warehouse's schemas, tables and views with row counts")
    d = sub.add_parser("describe", help="a table's or view's columns, types, descriptions and row count")
    d.add_argument("name", metavar="NAME", help="schema.name, or a name unique among the schemas")
    sub.add_parser(
        "shell", parents=[allow, shown], help="an interactive read-only SQL shell on the warehouse"
    )


def _format(args: argparse.Namespace) -> str:
    return args.format or ("json" if args.json else "table")


def cmd_sql(args: argparse.Namespace, config: Config) -> int:
    from etl import query

    con = query.connect(config.settings, args.allow_path, statement=args.query)
    try:
        rel = query.run(con, args.query)
        if rel is not None:
            _show(con, rel, _format(args), args.limit, sys.stdout)
    finally:
        query.close(con)
    return 0


def _show(con, rel, fmt: str, limit: int, out: IO[str]) -> None:
    from etl import query

    left_out = query.write(con, rel, fmt, out, limit=limit)
    if left_out:
        print(f"(first {limit} rows shown; use --limit N or --format csv for all)", file=sys.stderr)


def cmd_tables(args: argparse.Namespace, config: Config) -> int:
    from etl import query

    con = query.connect(config.settings)
    try:
        found = query.tables(con)
        if args.json:
            print(json.dumps([dataclasses.asdict(t) for t in found], ensure_ascii=False))
        else:
            _print_tables(found)
    finally:
        query.close(con)
    return 0


def _print_tables(found: list[query.Table]) -> None:
    show_rows(
        found,
        {
            "schema": "schema",
            "name": "name",
            "kind": "kind",
            "rows": "rows",
            "description": lambda t: t.description or t.error,
        },
    )


def cmd_describe(args: argparse.Namespace, config: Config) -> int:
    from etl import query

    con = query.connect(config.settings)
    try:
        table, columns = query.describe(con, args.name)
        if args.json:
            data = dataclasses.asdict(table) | {"columns": [dataclasses.asdict(c) for c in columns]}
            print(json.dumps(data, ensure_ascii=False))
        else:
            _print_description(table, columns)
    finally:
        query.close(con)
    return 0


def _print_description(table: query.Table, columns: list[query.Column]) -> None:
    about = f" ({table.description})" if table.description else ""
    print(f"{table.schema}.{table.name}: {table.kind}, {table.rows:,} rows{about}")
    show_rows(
        columns,
        {
            "column": "name",
            "type": "type",
            "nullable": "nullable",
            "description": "description",
        },
    )


SHELL_HELP = """\
End a statement with ';' to run it. Commands: .tables, .describe NAME, .format table|csv|json|ndjson, .help,
.quit (or Ctrl-D). Ctrl-C stops a running query. Read-only: no files written, no settings changed."""


def cmd_shell(args: argparse.Namespace, config: Config, stdin: IO[str] | None = None) -> int:
    from etl import query

    stdin = stdin or sys.stdin
    interactive = stdin.isatty()
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())
    con = query.connect(config.settings, args.allow_path)
    settings = config.settings
    fmt = _format(args)
    print(
        f"etl shell: {settings.warehouse}, read-only, memory limit "
        f"{settings.memory_limit / 2**20:.0f} MB. {SHELL_HELP}",
        file=sys.stderr,
    )
    buffer: list[str] = []
    try:
        while True:
            try:
                line = _read(stdin, "   ...> " if buffer else "etl> ", interactive)
            except KeyboardInterrupt:
                buffer = []
                print(file=sys.stderr)
                continue
            if line is None:
                break
            if not buffer and line.strip().startswith("."):
                command, _, rest = line.strip().partition(" ")
                if command in (".quit", ".exit"):
                    break
                fmt = _dot(con, command, rest.strip(), fmt)
                continue
            buffer.append(line)
            text = "\n".join(buffer).strip()
            if text and not text.endswith(";"):
                continue
            buffer = []
            if text:
                _shell_run(con, text, fmt, args.limit)
        if "\n".join(buffer).strip():  # the last statement of piped input needs no ';'
            _shell_run(con, "\n".join(buffer), fmt, args.limit)
    finally:
        query.close(con)
    return 0


def _read(stdin: IO[str], prompt: str, interactive: bool) -> str | None:
    if interactive:
        try:
            return input(prompt)
        except EOFError:
            return None
    line = stdin.readline()
    return line.rstrip("\n") if line else None


def _shell_run(con, text: str, fmt: str, limit: int) -> None:
    from etl import query

    try:
        rel = query.run(con, text)
        if rel is not None:
            _show(con, rel, fmt, limit, sys.stdout)
    except EtlError as e:
        print(f"error: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)


def _dot(con, command: str, rest: str, fmt: str) -> str:
    """Run a shell command; return the output format (changed by .format)."""
    from etl import query

    try:
        if command == ".tables":
            _print_tables(query.tables(con))
        elif command == ".describe" and rest:
            _print_description(*query.describe(con, rest))
        elif command == ".format" and rest in FORMATS:
            return rest
        else:
            print(SHELL_HELP, file=sys.stderr)
    except EtlError as e:
        print(f"error: {e}", file=sys.stderr)
    return fmt


def _piped(
    command: Callable[[argparse.Namespace, Config], int],
) -> Callable[[argparse.Namespace, Config], int]:
    """`etl sql … | head`: a reader that stops early is not an error."""

    @functools.wraps(command)
    def run(args: argparse.Namespace, config: Config) -> int:
        try:
            return command(args, config)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
            return 0

    return run


COMMANDS = {
    name: _piped(command)
    for name, command in {
        "sql": cmd_sql,
        "tables": cmd_tables,
        "describe": cmd_describe,
        "shell": cmd_shell,
    }.items()
}
