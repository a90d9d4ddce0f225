"""The `etl` command as a user meets it: usage errors, flags per command, messages, status, progress and logs."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from etl.cli import main
from tests.sources.test_datasus import dbc_bytes

CSV_CONFIG = '[datasets.deaths]\nkind = "csv"\nsample = true\nsample_rows = 2000\nencoding = "latin-1"\ndelimiter = ";"\n'


def usage_error(capsys, *args):
    """The exit code and stderr of a command argparse refuses."""
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory-limit", "12XB"], "invalid size '12XB'"),
        (["--memory-limit", "0"], "a memory limit of 0 MB is too small to work. The smallest is 256MB"),
        (["--memory-limit", "10MB"], "a memory limit of 10 MB is too small to work. The smallest is 256MB"),
        (["--threads", "0"], "--threads: expected a whole number of at least 1, not '0'"),
    ],
)
def test_bad_global_options_are_usage_errors(etl, capsys, args, message):
    code, err = usage_error(capsys, *args, "status")
    assert code == 2 and message in err


def test_the_smallest_budget_is_accepted_and_a_small_one_in_the_config_refused(etl, tmp_path):
    assert etl("--memory-limit", "256MB", "status").code == 0
    (tmp_path / "etl.toml").write_text('[etl]\nmemory_limit = "100MB"\n')
    r = etl("status")
    assert r.code == 1 and "a memory limit of 100 MB is too small to work. The smallest is 256MB" in r.err


@pytest.mark.parametrize(
    "args",
    [
        ["convert", "nvd", "x.json", "--out", "o", "--since", "2024-01-01"],
        ["convert", "nvd", "x.json", "--out", "o", "--base-url", "http://127.0.0.1:1/"],
        ["convert", "datasus", "x.dbc", "--out", "o", "--states", "SP"],
        ["convert", "datasus", "x.dbc", "--out", "o", "--no-keep-raw"],
        ["convert", "csv", "x.csv", "--out", "o", "--urls", "http://127.0.0.1:1/x.csv"],
        ["fetch", "datasus", "--encoding", "cp850"],
        ["fetch", "csv", "--delimiter", ";"],
    ],
)
def test_convert_and_fetch_refuse_the_other_commands_flags(etl, capsys, args):
    code, err = usage_error(capsys, *args)
    assert code == 2 and "unrecognized arguments" in err


def test_help_shows_only_the_flags_that_apply(etl, capsys):
    with pytest.raises(SystemExit):
        main(["convert", "datasus", "--help"])
    shown = capsys.readouterr().out
    assert "--system" in shown and "--encoding" in shown
    assert "--states" not in shown and "--keep-raw" not in shown and "--base-url" not in shown
    with pytest.raises(SystemExit):
        main(["--help"])
    assert (
        "exit codes: 0 all done, 1 something failed, 2 usage error, 130 interrupted"
        in capsys.readouterr().out
    )


def test_a_datasus_file_converted_as_another_system_is_an_error(etl, tmp_path):
    (tmp_path / "RDSP2301.dbc").write_bytes(dbc_bytes(tmp_path, "RDSP2301.dbc", rows=50))
    r = etl("convert", "datasus", "RDSP2301.dbc", "--system", "SIM", "--out", "out")
    assert r.code == 1
    assert "RDSP2301.dbc is a SIH RD file, not SIM RD. Pass --system SIH --group RD, or neither" in r.err
    assert not (tmp_path / "out").exists()
    r = etl("convert", "datasus", "RDSP2301.dbc", "--out", "out")
    assert r.code == 0 and "RDSP2301.dbc: 50 rows, 0 rejected" in r.err
    assert (
        etl("convert", "datasus", "RDSP2301.dbc", "--system", "sih", "--group", "rd", "--out", "o2").code == 0
    )


def test_keep_raw_false_never_deletes_a_users_own_file(etl, tmp_path):
    mine = tmp_path / "mine" / "RDSP2301.dbc"
    mine.parent.mkdir()
    mine.write_bytes(dbc_bytes(tmp_path, "RDSP2301.dbc", rows=40))
    (tmp_path / "etl.toml").write_text(
        '[datasets.sih]\nkind = "datasus"\npaths = ["mine/RDSP2301.dbc"]\nkeep_raw = false\n'
    )
    r = etl("--json", "run")
    assert r.code == 0, r.err
    assert json.loads(r.out)["rows"] == 40 and mine.exists()


def test_a_missing_file_is_named_once(etl):
    r = etl("convert", "csv", "nothere.csv", "--out", "out")
    assert r.code == 1
    assert r.err.count("nothere.csv") == 1 and "nothere.csv: file not found. Check the path" in r.err


def test_paths_that_match_nothing_fail_the_dataset(etl, tmp_path):
    (tmp_path / "etl.toml").write_text('[datasets.x]\nkind = "csv"\npaths = ["exports/*.csv"]\n')
    r = etl("run")
    assert r.code == 1
    assert f"no file matches {tmp_path}/exports/*.csv. Check the dataset's paths" in r.err
    assert "0 skipped, 1 failed" in r.err


def test_run_logs_each_file_the_warehouse_and_where_to_go_next(etl, tmp_path):
    (tmp_path / "etl.toml").write_text(CSV_CONFIG)
    r = etl("run")
    assert r.code == 0, r.err
    lines = r.err.splitlines()
    assert lines[0] == "INFO deaths: generating the sample CSV (2,000 rows, once)"
    converted = next(line for line in lines if line.startswith("INFO raw/deaths/deaths.csv: "))
    rows, rejected = (int(n.replace(",", "")) for n in converted.split(": ")[1].split(" ")[0:3:2])
    assert rows + rejected == 2000 and rejected > 0  # the sample has a few malformed rows
    assert "rejected (to data/parquet/deaths/_rejects)" in converted
    assert " MB, " in converted and " s, peak RSS " in converted
    assert any(line.startswith("INFO warehouse data/warehouse.duckdb: 1 views, ") for line in lines)
    assert lines[-3].startswith(f"run: {rows:,} rows, {rejected} rejected, ")
    assert lines[-2].startswith(
        "outputs: data/parquet/ (Parquet), data/warehouse.duckdb (DuckDB views and marts)"
    )
    assert lines[-1].startswith("next: etl sql 'SHOW ALL TABLES'")
    assert "generating" not in etl("run").err  # the sample is generated once


class Terminal(io.StringIO):
    """stderr as a terminal: etl draws its bars on it."""

    def isatty(self):
        return True


def test_log_lines_never_land_inside_a_progress_bar(etl, tmp_path, monkeypatch):
    (tmp_path / "etl.toml").write_text(
        CSV_CONFIG + '[datasets.more]\nkind = "csv"\nsample = true\nsample_rows = 500\n'
    )
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["run"]) == 0
    out = terminal.getvalue()
    assert "file/s" in out or "file]" in out  # the bars were drawn
    starts = [i for i in range(len(out)) if out.startswith("INFO ", i)]
    assert len(starts) >= 4 and all(out[i - 1] in "\r\n" for i in starts if i)


def test_status_shows_runs_with_their_figures_and_convert_commands_too(etl, tmp_path):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n3,4\n")
    assert etl("convert", "csv", "a.csv", "--out", "out").code == 0
    assert etl("convert", "csv", "nothere.csv", "--out", "out").code == 1
    r = etl("status")
    assert r.code == 0
    header = next(line for line in r.out.splitlines() if line.startswith("run "))
    assert header.split() == ["run", "command", "started", "seconds", "rows", "failed", "status"]
    lines = r.out.splitlines()
    runs = [line.split() for line in lines[lines.index(header) + 2 :] if line[:1].isdigit()]
    assert [(row[0], row[1], row[2], row[-3], row[-2], row[-1]) for row in runs] == [
        ("2", "convert", "csv", "0", "1", "failed"),
        ("1", "convert", "csv", "2", "0", "ok"),
    ]
    assert "run 2 failed: convert nothere.csv: nothere.csv: file not found. Check the path" in r.out
    data = json.loads(etl("--json", "status").out)
    assert [s["file"] for s in data["last_run_failures"]] == ["nothere.csv"]
    last = data["runs"][1]
    assert last["command"] == "convert csv" and last["status"] == "ok" and last["rows"] == 2
    assert last["summary"]["rows"] == 2 and last["summary"]["failed"] == 0  # JSON, not a JSON string
    assert last["seconds"] >= 0 and last["started"].startswith("20")


def test_a_missing_extra_is_named_in_one_line(etl, tmp_path, monkeypatch):
    for module in ("psycopg", "pyreadstat", "matplotlib"):
        monkeypatch.setitem(sys.modules, module, None)  # as if the extra were not installed
    r = etl("load", "postgres", "--dsn", "postgresql://127.0.0.1:1/x")
    assert r.code == 1
    assert (
        r.err
        == "etl: error: PostgreSQL needs the 'postgres' extra. Install it with pip install 'etl[postgres]'\n"
    )
    (tmp_path / "a.sav").write_bytes(b"$FL2")
    r = etl("convert", "stat", "a.sav", "--out", "out")
    assert r.code == 1 and "needs the 'stat' extra. Install it with pip install 'etl[stat]'" in r.err
    r = etl("report")
    assert r.code == 1 and "needs the 'report' extra. Install it with pip install 'etl[report]'" in r.err


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == "etl 0.1.0\n"


# pyarrow.compute and pyarrow.parquet (which imports pyarrow.fs, and ssl) cost a small conversion 35 ms: a .dbc's
# path calls the compute functions and the Parquet writer without them. psutil: where /proc gives the RSS.
LIBRARIES = (
    "duckdb",
    "numpy",
    "pandas",
    "polars",
    "psutil",
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.fs",
    "tqdm",
)


def libraries_imported(tmp_path, *args) -> tuple[int, list[str]]:
    """`etl ARGS` in a fresh interpreter: its exit code and which of LIBRARIES it imported."""
    code = (
        "import sys\nfrom etl.cli import main\ntry:\n    code = main(sys.argv[1:])\nexcept SystemExit as e:\n"
        f"    code = e.code\nprint(code, *(m for m in {LIBRARIES!r} if m in sys.modules), file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], cwd=tmp_path, capture_output=True, text=True
    )
    status, *imported = proc.stderr.splitlines()[-1].split()
    return int(status), imported


@pytest.mark.parametrize(
    ("args", "imported"),
    [
        (["--version"], []),
        (["--help"], []),
        (["status"], []),
        (
            ["--quiet", "convert", "dbc", "RDSP2301.dbc", "--out", "out"],
            ["numpy", *([] if Path("/proc/self/statm").exists() else ["psutil"]), "pyarrow"],
        ),
    ],
)
def test_a_command_imports_only_the_libraries_it_uses(tmp_path, args, imported):
    (tmp_path / "RDSP2301.dbc").write_bytes(dbc_bytes(tmp_path, "RDSP2301.dbc"))
    assert libraries_imported(tmp_path, *args) == (0, imported)
    if "convert" in args:
        assert (tmp_path / "out/RDSP2301.parquet").exists()
