"""NVD's Change History API against the emulator on loopback: paging, 120-day windows, faults, the cve_changes
table and the cves_history view."""

import datetime as dt
import gzip
import json
from pathlib import Path

import duckdb
import pytest

from etl.sources.nvd_api import FULL, HISTORY, sync
from etl.state import StateStore
from tests.nvd_emulator import BASE, HISTORY_PATH, PATH, Emulator, running

NOW = BASE + dt.timedelta(days=30)


def change_ids(folder: Path) -> list[str]:
    return [
        c["change"]["cveChangeId"]
        for page in sorted(folder.glob("page-*.json.gz"))
        for c in json.loads(gzip.decompress(page.read_bytes()))["cveChanges"]
    ]


def history_sync(tmp_path, url, state=None, **kw):
    kw = {"results_per_page": 100, "max_requests": 5, "window_seconds": 1.0, "timeout": 5, "now": NOW, **kw}
    return sync(tmp_path / "raw", state=state, cursor_name="history", base_url=url, endpoint=HISTORY, **kw)


@pytest.fixture
def served():
    with running(Emulator(count=10, changes=250)) as (emulator, url):
        yield emulator, url.replace(PATH, HISTORY_PATH)


def test_a_full_sync_pages_every_change_once(served, tmp_path):
    emulator, url = served
    state = StateStore(tmp_path / "state.sqlite")
    pages = history_sync(tmp_path, url, state)
    assert [p.name for p in pages] == [
        "page-00000000.json.gz",
        "page-00000100.json.gz",
        "page-00000200.json.gz",
    ]
    assert change_ids(tmp_path / "raw" / FULL) == [c["change"]["cveChangeId"] for c in emulator.changes]
    assert state.get_cursor("history") == "2024-01-31T00:00:00.000+00:00"
    assert {r["resultsPerPage"] for r in emulator.requests} == {"100"}


def test_incremental_windows_use_change_dates_of_at_most_120_days(served, tmp_path):
    emulator, url = served
    since = BASE - dt.timedelta(days=200)
    history_sync(tmp_path, url, since=since.isoformat())
    windows = [
        (r["changeStartDate"], r["changeEndDate"]) for r in emulator.requests if r.get("startIndex") == "0"
    ]
    assert windows == [
        ("2023-06-15T00:00:00.000+00:00", "2023-10-13T00:00:00.000+00:00"),
        ("2023-10-13T00:00:00.000+00:00", "2024-01-31T00:00:00.000+00:00"),
    ]
    folders = sorted(p for p in (tmp_path / "raw").iterdir() if p.is_dir())
    assert [change_ids(f) for f in folders] == [[], [c["change"]["cveChangeId"] for c in emulator.changes]]


@pytest.mark.parametrize("fault", ["503", "429", "drop", "malformed", "grow"])
def test_faults_are_retried_and_a_changing_total_rereads_the_window(served, tmp_path, fault):
    emulator, url = served
    emulator.faults = [None, fault]  # on the second page
    history_sync(tmp_path, url)
    assert change_ids(tmp_path / "raw" / FULL) == [c["change"]["cveChangeId"] for c in emulator.changes]
    assert len(emulator.changes) == 250 + (fault == "grow")


def test_the_emulator_rejects_history_windows_as_nvd_does(served):
    emulator, _ = served
    status, headers, _, _ = emulator.handle(
        {
            "changeStartDate": "2024-01-01T00:00:00.000+00:00",
            "changeEndDate": "2024-06-01T00:00:00.000+00:00",
        },
        {},
        HISTORY_PATH,
    )
    assert (status, headers["message"]) == (404, "The change date range must not exceed 120 days")


def test_fetch_and_run_build_cve_changes_and_cves_history(etl, tmp_path, served):
    emulator, url = served
    (tmp_path / "etl.toml").write_text(
        f'[datasets.nvd_history]\nkind = "nvd_history"\nbase_url = "{url}"\nresults_per_page = 100\n'
        "window_seconds = 1.0\n"
    )
    r = etl("--json", "run")
    assert r.code == 0, r.err
    details = sum(max(1, len(c["change"]["details"])) for c in emulator.changes)
    assert json.loads(r.out)["rows"] == details
    assert "cursor nvd_history:nvd_history: " in etl("status").out
    con = duckdb.connect(str(tmp_path / "data/warehouse.duckdb"), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    first = emulator.changes[1]["change"]  # CVE 0's initial analysis: two details
    got = con.sql(
        "SELECT cve_id, event_name, source_identifier, CAST(created AS VARCHAR), detail_index, action, type, "
        "old_value, new_value, _source_file, _source_row FROM nvd_history.cve_changes "
        "WHERE cve_change_id = ? ORDER BY detail_index",
        params=[first["cveChangeId"]],
    ).fetchall()
    assert got == [
        (first["cveId"], "Initial Analysis", "nvd@nist.gov", "2024-01-01 01:00:00+00", n + 1, d["action"],
         d["type"], d.get("oldValue"), d["newValue"], "full/page-00000000.json.gz", 2)
        for n, d in enumerate(first["details"])
    ]  # fmt: skip
    history = con.sql(
        "SELECT event_name, CAST(valid_from AS VARCHAR), CAST(valid_to AS VARCHAR), len(details) "
        "FROM nvd_history.cves_history WHERE cve_id = ? ORDER BY valid_from",
        params=[first["cveId"]],
    ).fetchall()
    assert history == [
        ("New CVE Received", "2024-01-01 00:00:00+00", "2024-01-01 01:00:00+00", 1),
        ("Initial Analysis", "2024-01-01 01:00:00+00", "2024-01-01 02:00:00+00", 2),
        (emulator.changes[2]["change"]["eventName"], "2024-01-01 02:00:00+00", None, len(emulator.changes[2]["change"]["details"])),
    ]  # fmt: skip
