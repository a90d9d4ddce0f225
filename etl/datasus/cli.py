"""`etl datasus systems|groups|files`: what DATASUS publishes, and how each remote file stands against the state."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from etl.config import Config


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `datasus` command group, under the CLI's subparsers."""
    p = sub.add_parser("datasus", help="DATASUS's systems, groups and remote files")
    cmds = p.add_subparsers(dest="datasus_command", required=True, metavar="COMMAND")
    cmds.add_parser("systems", help="the systems, with their long names")
    g = cmds.add_parser("groups", help="a system's file groups, with their long names")
    g.add_argument("system", metavar="SYSTEM", help="SIH, SIA, SIM, SINASC, CNES or SINAN")
    f = cmds.add_parser(
        "files", help="the remote files of a selection: size, date, and new/converted/changed"
    )
    f.add_argument("system", metavar="SYSTEM", help="SIH, SIA, SIM, SINASC, CNES or SINAN")
    f.add_argument("group", metavar="GROUP", help="RD, PA, DO, DN, ST, DENG, … (`etl datasus groups SYSTEM`)")
    f.add_argument("--states", nargs="+", metavar="UF", help="state codes (default: all)")
    f.add_argument("--years", nargs="+", type=int, metavar="YEAR", help="years (default: all)")
    f.add_argument("--months", nargs="+", type=int, metavar="MONTH", help="months 1-12 (default: all)")
    f.add_argument("--changed", action="store_true", help="only files that differ from what was converted")
    f.add_argument("--base-url", help="ftp:// root of the tree (default: the dataset's, else DATASUS's)")


def handle(args: argparse.Namespace, config: Config) -> int:
    """Run `etl datasus …`; print a table, or JSON with the global --json."""
    from etl.render import show_rows

    command = args.datasus_command
    if command == "systems":
        data = systems()
    elif command == "groups":
        data = groups(args.system)
    else:
        data = files(args, config)
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
    elif command == "systems":
        rows = data["systems"]
        show_rows(
            rows,
            {
                "system": "system",
                "name": "pt",
                "english": "en",
                "groups": lambda s: " ".join(s["groups"]),
            },
        )
    elif command == "groups":
        rows = data["groups"]
        show_rows(
            rows,
            {
                "group": "group",
                "name": "pt",
                "english": "en",
                "files": "files",
                "staging view": "staging",
            },
        )
    else:
        rows = data["files"]
        show_rows(
            rows,
            {
                "file": "name",
                "size": "size",
                "modified": "modified",
                "status": "status",
            },
        )
        counts = ", ".join(f"{n} {s}" for s, n in data["counts"].items() if n)
        print(
            f"{len(data['files'])} file{'' if len(data['files']) == 1 else 's'} ({counts or 'none'}) "
            f"in {data['dataset']}'s selection",
            file=sys.stderr,
        )
    return 0


def systems() -> dict[str, Any]:
    """Every system of the catalogue with its long names and groups."""
    from etl.datasus.catalog import SYSTEMS

    return {
        "systems": [
            {"system": s.name, "pt": s.pt, "en": s.en, "groups": list(s.groups)} for s in SYSTEMS.values()
        ]
    }


def groups(system: str) -> dict[str, Any]:
    """A system's groups with their long names, how their files are cut, and their staging view."""
    from etl.datasus.catalog import get_system

    spec = get_system(system)
    return {
        "system": spec.name,
        "groups": [
            {
                "group": name,
                "pt": g.pt,
                "en": g.en,
                "files": "national, yearly"
                if spec.is_national(name)
                else "per state, yearly"
                if spec.yearly
                else "per state, monthly",
                "staging": g.staging,
            }
            for name, g in spec.groups.items()
        ],
    }


def files(args: argparse.Namespace, config: Config) -> dict[str, Any]:
    """The selection's remote files from the FTP listing, each with its status against the state store."""
    from etl.datasus.api import dataset_for
    from etl.datasus.catalog import check_group, get_system
    from etl.datasus.listing import CHANGED, STATUSES, remote_files, status
    from etl.errors import ConfigError
    from etl.sources import Context
    from etl.state import StateStore

    spec = get_system(args.system)
    group = check_group(spec, args.group)
    ds = dataset_for(config, spec.name, group, args.states, args.years, args.months, args.base_url)
    opts = ds.options
    if not opts.base_url.startswith("ftp://"):
        raise ConfigError(
            f"cannot list {opts.base_url}: only an FTP tree can be listed", hint="Pass --base-url ftp://…"
        )
    listed = remote_files(opts.base_url, opts.system, opts.group, opts.states, opts.years, opts.months)
    ctx = Context(settings=config.settings)
    state = StateStore(config.settings.state_db)
    try:
        rows = []
        for item in listed:
            rec = state.get_file(ds.name, ctx.state_key(config.settings.raw_dir / ds.name / item.remote.name))
            rows.append(
                {
                    "name": item.remote.name,
                    "folder": item.folder,
                    "state": item.parsed.state,
                    "year": item.parsed.year,
                    "month": item.parsed.month,
                    "size": item.remote.size,
                    "modified": item.remote.modified.isoformat() if item.remote.modified else None,
                    "status": status(item, rec),
                }
            )
    finally:
        state.close()
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    if args.changed:
        rows = [r for r in rows if r["status"] == CHANGED]
    return {"system": spec.name, "group": group, "dataset": ds.name, "counts": counts, "files": rows}
