import json
import os
import subprocess
import sys

import pytest

from tests.test_pipeline import CONFIG


@pytest.fixture
def runs(etl, tmp_path):
    """Two real runs of a small CSV pipeline: the first converts, the second skips everything."""
    (tmp_path / "etl.toml").write_text(CONFIG.format(rows=2000))
    first = json.loads(etl("--json", "run").out)
    second = json.loads(etl("--json", "run").out)
    assert second["skipped"] >= 1 and second["rows"] == 0
    return first, second


def test_report_defaults_to_the_last_run_that_did_work(etl, tmp_path, runs):
    first, second = runs
    r = etl("report", "--html")
    assert r.code == 0, r.err
    png, page = (tmp_path / line for line in r.out.split())
    assert png.name == f"run-{first['run_id']}.png" and png.read_bytes()[:4] == b"\x89PNG"
    text = page.read_text()
    assert f"etl run {first['run_id']}: ok" in text and "<code>etl run</code>" in text
    assert "started 20" in text and " UTC" in text  # the run's date
    # the acquire step lists files and the warehouse step views: neither is shown as rows
    assert "1 files" in text and " views</td>" in text
    converted = next(s for s in first["steps"] if s["step"] == "convert")
    assert f"{converted['rows']:,} rows</td>" in text


def test_report_is_quiet_while_matplotlib_builds_its_font_cache(tmp_path, runs):
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl")}  # an empty cache: matplotlib rebuilds it
    r = subprocess.run(
        [sys.executable, "-m", "etl.cli", "report"], cwd=tmp_path, env=env, capture_output=True
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "mpl").is_dir() and r.stderr == b""
    assert r.stdout.decode().strip().endswith("run-1.png")


def test_report_of_a_chosen_run_and_an_unknown_one(etl, runs):
    _, second = runs
    r = etl("--json", "report", "--run", str(second["run_id"]))
    assert r.code == 0, r.err
    shown = json.loads(r.out)
    assert shown["run_id"] == second["run_id"] and shown["png"].endswith(f"run-{second['run_id']}.png")
    assert shown["html"] is None
    missing = etl("report", "--run", "99")
    assert missing.code == 1
    assert (
        "no report of run 99" in missing.err and f"Runs with reports: {second['run_id'] - 1}" in missing.err
    )


def test_report_without_runs_says_what_to_do(etl):
    r = etl("report")
    assert r.code == 1 and "no run reports under" in r.err and "Run `etl run` first" in r.err
