"""The state store: a small SQLite database recording files, cursors and runs.

SQLite because it is transactional, needs no server, and never locks the DuckDB warehouse that notebooks read.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etl.errors import EtlError

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    dataset TEXT NOT NULL,
    path TEXT NOT NULL,            -- raw file, relative to the data directory when under it
    origin TEXT,                   -- where it came from (URL), if fetched
    size INTEGER,
    mtime_ns INTEGER,
    checksum TEXT,
    stage TEXT NOT NULL,           -- fetched | converted | loaded | failed
    rows_in INTEGER, rows_out INTEGER, rows_rejected INTEGER,
    outputs TEXT,                  -- JSON: table -> Parquet file
    error TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (dataset, path)
);
CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    command TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL DEFAULT 'running',   -- running | ok | failed | interrupted
    summary TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    step TEXT NOT NULL, dataset TEXT, file TEXT,
    status TEXT NOT NULL,
    rows INTEGER, rejected INTEGER, bytes INTEGER,
    seconds REAL, peak_rss_mb REAL, over_budget INTEGER,
    error TEXT
);
CREATE TABLE IF NOT EXISTS published (
    destination TEXT NOT NULL,     -- PostgreSQL host:port/database
    target TEXT NOT NULL,          -- schema.table there
    source TEXT NOT NULL,          -- the warehouse's table or view
    fingerprint TEXT NOT NULL,     -- of its definition, inputs and columns when loaded
    rows INTEGER,
    loaded_at REAL NOT NULL,
    PRIMARY KEY (destination, target)
);
"""


FILE_FIELDS = {
    "origin",
    "size",
    "mtime_ns",
    "checksum",
    "rows_in",
    "rows_out",
    "rows_rejected",
    "outputs",
    "error",
}


@dataclass
class FileRecord:
    dataset: str
    path: str
    origin: str | None
    size: int | None
    mtime_ns: int | None
    checksum: str | None
    stage: str
    rows_in: int | None
    rows_out: int | None
    rows_rejected: int | None
    outputs: dict[str, str]
    error: str | None
    updated_at: float


class _LockedConnection:
    """A sqlite3 connection whose execute/executescript run one at a time, whatever the thread."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db
        self._lock = threading.Lock()

    def execute(self, sql: str, params: tuple | list = ()) -> _Result:
        with self._lock:
            cur = self._db.execute(sql, params)
            return _Result(cur.fetchall(), cur.description, cur.lastrowid)

    def executescript(self, sql: str) -> None:
        with self._lock:
            self._db.executescript(sql)

    def close(self) -> None:
        self._db.close()


@dataclass
class _Result:
    rows: list[tuple]
    description: Any
    lastrowid: int | None

    def fetchall(self) -> list[tuple]:
        return self.rows

    def fetchone(self) -> tuple | None:
        return self.rows[0] if self.rows else None


class StateStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Shared by download worker threads: one connection, statements serialised by a lock.
        self.db = _LockedConnection(
            sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        )
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            # One transaction: a new store's five tables cost one commit (fsync), not five (3 -> 2 ms here)
            self.db.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}COMMIT;")
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise EtlError(
                f"the state store {self.path} cannot be read: {e}",
                hint="Move it aside and run `etl run`: it is rebuilt, and files are converted again from data/raw",
            ) from None

    def close(self) -> None:
        self.db.close()

    # files
    def get_file(self, dataset: str, path: str) -> FileRecord | None:
        row = self.db.execute(
            "SELECT * FROM files WHERE dataset = ? AND path = ?", (dataset, path)
        ).fetchone()
        return self._file(row) if row else None

    def files(self, dataset: str | None = None) -> list[FileRecord]:
        if dataset is None:
            rows = self.db.execute("SELECT * FROM files ORDER BY dataset, path").fetchall()
        else:
            rows = self.db.execute(
                "SELECT * FROM files WHERE dataset = ? ORDER BY path", (dataset,)
            ).fetchall()
        return [self._file(r) for r in rows]

    def put_file(self, dataset: str, path: str, stage: str, **fields: Any) -> None:
        """Insert or update one file's record; fields not given keep their stored value."""
        unknown = set(fields) - FILE_FIELDS  # column names are interpolated: only known ones pass
        if unknown:
            raise ValueError(f"unknown file fields: {sorted(unknown)}")
        if "outputs" in fields:
            fields["outputs"] = json.dumps({k: str(v) for k, v in fields["outputs"].items()})
        cols = ["dataset", "path", "stage", "updated_at", *fields]
        vals = [dataset, path, stage, time.time(), *fields.values()]
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols[2:])
        self.db.execute(
            f"INSERT INTO files ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            f"ON CONFLICT (dataset, path) DO UPDATE SET {updates}",
            vals,
        )

    @staticmethod
    def _file(row: tuple) -> FileRecord:
        rec = FileRecord(*row)
        rec.outputs = json.loads(rec.outputs) if rec.outputs else {}
        return rec

    # cursors
    def get_cursor(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_cursor(self, name: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO cursors VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "value = excluded.value, updated_at = excluded.updated_at",
            (name, value, time.time()),
        )

    def cursors(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT name, value FROM cursors ORDER BY name").fetchall())

    # runs
    def start_run(self, command: str, *, sweep: bool = True) -> int:
        """A new run; with sweep (the writer lock held), runs still marked running were killed: say so."""
        if sweep:
            self.db.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
        return self.db.execute(
            "INSERT INTO runs (command, started_at) VALUES (?, ?)", (command, time.time())
        ).lastrowid

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
            (time.time(), status, json.dumps(summary), run_id),
        )

    def add_step(self, run_id: int, step: str, status: str, **fields: Any) -> None:
        cols = ["run_id", "step", "status", *fields]
        self.db.execute(
            f"INSERT INTO steps ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [run_id, step, status, *fields.values()],
        )

    def runs(self, limit: int = 10) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def steps(self, run_id: int) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY rowid", (run_id,))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    # published: warehouse objects loaded into PostgreSQL
    def get_published(self, destination: str, target: str) -> dict[str, Any] | None:
        cur = self.db.execute(
            "SELECT * FROM published WHERE destination = ? AND target = ?", (destination, target)
        )
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row, strict=True)) if row else None

    def put_published(self, destination: str, target: str, source: str, fingerprint: str, rows: int) -> None:
        self.db.execute(
            "INSERT INTO published VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (destination, target) DO UPDATE SET "
            "source = excluded.source, fingerprint = excluded.fingerprint, rows = excluded.rows, "
            "loaded_at = excluded.loaded_at",
            (destination, target, source, fingerprint, rows, time.time()),
        )


def status(path: Path, runs: int = 10) -> dict[str, Any]:
    """What the state store knows: every file, the cursors, the last runs with their figures, and the steps
    that failed in the last run (a file of `etl convert` is in no dataset's files)."""
    state = StateStore(path)
    try:
        files, cursors, recent = state.files(), state.cursors(), state.runs(runs)
        failed = [s for s in state.steps(recent[0]["id"]) if s["status"] == "failed"] if recent else []
    finally:
        state.close()
    return {
        "files": [dataclasses.asdict(f) for f in files],
        "cursors": cursors,
        "runs": [_run_status(r) for r in recent],
        "last_run_failures": failed,
    }


def _run_status(run: dict[str, Any]) -> dict[str, Any]:
    summary = json.loads(run["summary"]) if run["summary"] else {}
    finished = run["finished_at"]
    return {
        **run,
        "summary": summary,
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["started_at"])),
        "seconds": round(finished - run["started_at"], 1) if finished else None,
        "rows": summary.get("rows"),
        "rejected": summary.get("rejected"),
        "failed": summary.get("failed"),
    }
