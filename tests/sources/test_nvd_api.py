"""The NVD CVE API pager against the emulator on loopback: paging, the rate limit, faults, resume, windows."""

import datetime as dt
import gzip
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from etl.errors import FetchError
from etl.sources.nvd_api import COMPLETE, FULL, parse_time, sync
from etl.state import StateStore
from tests.nvd_emulator import BASE, Emulator, make_cve, nvd_emulator_fixture, running  # noqa: F401

NOW = BASE + dt.timedelta(days=30)


def page_ids(page: Path) -> list[str]:
    return [v["cve"]["id"] for v in json.loads(gzip.decompress(page.read_bytes()))["vulnerabilities"]]


def ids_in(folder: Path) -> list[str]:
    return [i for page in sorted(folder.glob("page-*.json.gz")) for i in page_ids(page)]


def ids_of(cves: list[dict]) -> list[str]:
    return [c["cve"]["id"] for c in cves]


def run_sync(tmp_path, url, state=None, **kw):
    kw = {"results_per_page": 100, "max_requests": 5, "window_seconds": 1.0, "timeout": 5, "now": NOW, **kw}
    return sync(tmp_path / "raw", state=state, cursor_name="nvd", base_url=url, **kw)


def test_a_full_sync_writes_every_page_once_and_sets_the_cursor(nvd_emulator, tmp_path):
    emulator, url = nvd_emulator
    state = StateStore(tmp_path / "state.sqlite")
    pages = run_sync(tmp_path, url, state)
    folder = tmp_path / "raw" / FULL
    assert pages == [folder / f"page-{i:08d}.json.gz" for i in (0, 100, 200)]
    assert sorted(p.name for p in folder.iterdir()) == [
        "_complete",
        "_window.json",
        "page-00000000.json.gz",
        "page-00000100.json.gz",
        "page-00000200.json.gz",
    ]
    assert ids_in(folder) == ids_of(emulator.cves)
    page = json.loads(gzip.decompress(pages[2].read_bytes()))
    assert (page["startIndex"], page["totalResults"], page["vulnerabilities"]) == (
        200,
        250,
        emulator.cves[200:],
    )
    assert [(r["startIndex"], r["resultsPerPage"]) for r in emulator.requests] == [
        ("0", "100"),
        ("100", "100"),
        ("200", "100"),
    ]
    assert state.get_cursor("nvd") == "2024-01-31T00:00:00.000+00:00"  # when the full sync began


def test_a_well_behaved_run_is_never_throttled(tmp_path):
    with running(Emulator(count=1200, limit=5, window=1.0)) as (emulator, url):
        pages = run_sync(tmp_path, url, max_requests=5, window_seconds=1.0)
    assert len(pages) == 12 and len(emulator.requests) == 12
    assert emulator.throttled == 0


def test_nvds_403_throttling_is_retried(tmp_path, caplog):
    with running(Emulator(count=500, limit=5, window=1.0)) as (emulator, url):
        pages = run_sync(tmp_path, url, results_per_page=50, max_requests=50)  # a client over NVD's limit
    assert emulator.throttled > 0 and "HTTP 403 Forbidden; retrying" in caplog.text
    ids = [i for p in pages for i in page_ids(p)]
    assert ids == ids_of(emulator.cves)


@pytest.mark.parametrize(
    "fault, reason",
    [
        ("503", "HTTP 503 Service Unavailable"),
        ("429", "HTTP 429 Too Many Requests"),
        ("malformed", "IncompleteJSONError"),
        ("drop", "ChunkedEncodingError"),
        ("slow", "ReadTimeout"),
    ],
)
def test_transient_faults_are_retried(nvd_emulator, tmp_path, caplog, fault, reason):
    emulator, url = nvd_emulator
    emulator.faults = [None, fault]
    pages = run_sync(tmp_path, url, timeout=0.5 if fault == "slow" else 5)
    assert [i for p in pages for i in page_ids(p)] == ids_of(emulator.cves)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"NVD window full startIndex=100: {reason}")
    assert [r["startIndex"] for r in emulator.requests] == ["0", "100", "100", "200"]
    assert not list((tmp_path / "raw").rglob("*.tmp"))


def test_retry_after_is_honoured(nvd_emulator, tmp_path, caplog):
    emulator, url = nvd_emulator
    emulator.faults = ["429"]
    run_sync(tmp_path, url)
    assert "HTTP 429 Too Many Requests; retrying in 1.0 s" in caplog.text


def test_giving_up_names_the_page_and_a_rerun_resumes_there(nvd_emulator, tmp_path):
    emulator, url = nvd_emulator
    emulator.faults = [None] + ["503"] * 2
    with pytest.raises(FetchError) as e:
        run_sync(tmp_path, url, max_tries=2)
    assert "NVD window full startIndex=100: gave up after 2 tries: HTTP 503 Service Unavailable" in str(
        e.value
    )
    assert "the fetch resumes from this page" in str(e.value)
    folder = tmp_path / "raw" / FULL
    assert [p.name for p in folder.glob("page-*")] == ["page-00000000.json.gz"]
    assert not (folder / COMPLETE).exists()
    emulator.requests.clear()
    run_sync(tmp_path, url)
    assert [r["startIndex"] for r in emulator.requests] == ["100", "200"]
    assert ids_in(folder) == ids_of(emulator.cves)


def test_a_404_shows_nvds_message_and_is_not_retried(tmp_path):
    state = StateStore(tmp_path / "state.sqlite")
    state.set_cursor("nvd", "2024-01-01T00:00:00.000+00:00")
    with running(Emulator(max_days=20)) as (emulator, url), pytest.raises(FetchError) as e:
        run_sync(tmp_path, url, state)  # a 30-day window: over this emulator's limit
    assert "startIndex=0: HTTP 404: The lastMod date range must not exceed 20 days" in str(e.value)
    assert len(emulator.requests) == 1
    assert state.get_cursor("nvd") == "2024-01-01T00:00:00.000+00:00"


@pytest.mark.parametrize(
    "query, message",
    [
        ({"lastModStartDate": "2024-01-01T00:00:00.000+00:00"}, "Both lastModStartDate and lastModEndDate"),
        (
            {"lastModStartDate": "2024-01-01T00:00:00", "lastModEndDate": "2024-01-02T00:00:00"},
            "Invalid date",
        ),
        (
            {"lastModStartDate": "2024-01-01T00:00:00Z", "lastModEndDate": "2024-06-01T00:00:00Z"},
            "must not exceed 120 days",
        ),
    ],
)
def test_the_emulator_rejects_windows_as_nvd_does(nvd_emulator, query, message):
    _, url = nvd_emulator
    r = requests.get(url, params=query, timeout=5)
    assert r.status_code == 404 and message in r.headers["message"]


def test_a_changing_total_rereads_the_window(nvd_emulator, tmp_path, caplog):
    emulator, url = nvd_emulator
    emulator.faults = [None, "grow"]  # a CVE appears first in NVD's order while page 2 is asked for
    (*_, last) = run_sync(tmp_path, url)
    assert "totalResults went from 250 to 251 while paging; reading the window again" in caplog.text
    ids = ids_in(last.parent)
    assert ids == ids_of(emulator.cves) and len(set(ids)) == 251
    assert [r["startIndex"] for r in emulator.requests] == ["0", "100", "0", "100", "200"]


def test_incremental_windows_after_a_full_sync(nvd_emulator, tmp_path):
    emulator, url = nvd_emulator
    state = StateStore(tmp_path / "state.sqlite")
    full = run_sync(tmp_path, url, state)
    changed = [emulator.add(BASE + dt.timedelta(days=d)) for d in (40, 200, 290)]
    emulator.requests.clear()
    later = BASE + dt.timedelta(days=300)
    pages = run_sync(tmp_path, url, state, now=later)
    windows = sorted({p.parent for p in pages} - {full[0].parent})
    assert [w.name for w in windows] == [
        "20240131T000000Z_20240530T000000Z",
        "20240530T000000Z_20240927T000000Z",
        "20240927T000000Z_20241027T000000Z",
    ]
    assert pages[:3] == full  # pages of windows completed earlier come first, in order
    for w in windows:
        start, end = (
            parse_time(json.loads((w / "_window.json").read_text())["params"][k])
            for k in ("lastModStartDate", "lastModEndDate")
        )
        assert ids_in(w) == ids_of(emulator.matching(start, end))
    assert [i for w in windows for i in ids_in(w)] == ids_of(changed)
    assert [r["lastModStartDate"] for r in emulator.requests] == [
        "2024-01-31T00:00:00.000+00:00",
        "2024-05-30T00:00:00.000+00:00",
        "2024-09-27T00:00:00.000+00:00",
    ]
    assert state.get_cursor("nvd") == "2024-10-27T00:00:00.000+00:00"
    emulator.requests.clear()
    assert run_sync(tmp_path, url, state, now=later) == pages  # nothing new to ask for
    assert emulator.requests == []


def test_a_changing_total_in_a_window_rereads_it(nvd_emulator, tmp_path):
    emulator, url = nvd_emulator
    state = StateStore(tmp_path / "state.sqlite")
    state.set_cursor("nvd", "2024-01-01T00:00:00.000+00:00")
    emulator.faults = [None, "grow"]
    pages = run_sync(tmp_path, url, state, now=BASE + dt.timedelta(days=10))  # CVEs 0-240 changed in it
    assert [i for p in pages for i in page_ids(p)] == ids_of(
        emulator.matching(BASE, BASE + dt.timedelta(days=10))
    )
    assert len(emulator.cves) == 251 and state.get_cursor("nvd") == "2024-01-11T00:00:00.000+00:00"


def test_since_never_moves_the_cursor_past_a_gap(nvd_emulator, tmp_path):
    emulator, url = nvd_emulator
    state = StateStore(tmp_path / "state.sqlite")
    state.set_cursor("nvd", "2024-01-01T00:00:00.000+00:00")
    pages = run_sync(tmp_path, url, state, since="2024-01-06T00:00:00Z", now=BASE + dt.timedelta(days=8))
    assert {p.parent.name for p in pages} == {"20240106T000000Z_20240109T000000Z"}
    assert ids_in(pages[0].parent) == ids_of(emulator.cves[120:193])
    assert state.get_cursor("nvd") == "2024-01-01T00:00:00.000+00:00"  # 1-6 January was never fetched
    run_sync(tmp_path, url, state, since=BASE, now=BASE + dt.timedelta(days=8))
    assert state.get_cursor("nvd") == "2024-01-09T00:00:00.000+00:00"


def test_full_replaces_the_previous_full_sync(nvd_emulator, tmp_path):
    emulator, url = nvd_emulator
    state = StateStore(tmp_path / "state.sqlite")
    run_sync(tmp_path, url, state)
    emulator.add(BASE, first=True)
    pages = run_sync(tmp_path, url, state, full=True, now=NOW + dt.timedelta(days=1))
    assert ids_in(pages[0].parent) == ids_of(emulator.cves)
    assert state.get_cursor("nvd") == "2024-02-01T00:00:00.000+00:00"


def test_the_api_key_goes_in_a_header_and_never_in_a_log(nvd_emulator, tmp_path, caplog, monkeypatch):
    emulator, url = nvd_emulator
    monkeypatch.setenv("NVD_API_KEY", "s3cret-key-from-env")
    emulator.faults = [None, "503"]
    with caplog.at_level(logging.DEBUG):
        run_sync(tmp_path, url)
        emulator.faults = ["503"] * 3
        with pytest.raises(FetchError) as e:
            run_sync(tmp_path / "other", url, api_key="an0ther-key", max_tries=2)
    assert [r["apiKey"] for r in emulator.requests] == ["s3cret-key-from-env"] * 4 + ["an0ther-key"] * 2
    assert "HTTP 503" in caplog.text and "GET /rest/json/cves/2.0?startIndex=0" in caplog.text
    for secret in ("s3cret", "an0ther"):
        assert secret not in caplog.text and secret not in str(e.value)
        assert not any(secret in v for r in emulator.requests for k, v in r.items() if k != "apiKey")


def test_without_a_key_no_apikey_header_is_sent(nvd_emulator, tmp_path, monkeypatch):
    emulator, url = nvd_emulator
    monkeypatch.delenv("NVD_API_KEY", raising=False)
    run_sync(tmp_path, url)
    assert {r["apiKey"] for r in emulator.requests} == {None}


def cursor_chain_ok(raw: Path, cursor: str | None) -> bool:
    """Every window from the full sync's start up to the cursor is complete, with no gap between them."""
    if cursor is None:
        return True
    full = raw / FULL
    if not (full / COMPLETE).exists():
        return False
    at = parse_time(json.loads((full / "_window.json").read_text())["began"])
    while at < parse_time(cursor):
        nxt = [p for p in raw.glob(at.strftime("%Y%m%dT%H%M%SZ") + "_*") if (p / COMPLETE).exists()]
        if not nxt:
            return False
        at = dt.datetime.strptime(nxt[0].name.split("_")[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    return at == parse_time(cursor)


def test_killed_at_random_points_the_sync_resumes_without_gaps_or_duplicates(tmp_path):
    """A full sync then three windows, each run SIGKILLed at random moments, then run to the end."""
    emulator = Emulator(count=1500, limit=5, window=1.0)
    for i in range(300):  # changes spread over the later windows
        emulator.add(BASE + dt.timedelta(days=70, hours=i * 19))
    raw, db = tmp_path / "raw", tmp_path / "state.sqlite"
    code = (
        "import sys; from etl.sources.nvd_api import sync; from etl.state import StateStore; "
        "sync(sys.argv[1], state=StateStore(sys.argv[2]), cursor_name='nvd', base_url=sys.argv[3], "
        "now=__import__('datetime').datetime.fromisoformat(sys.argv[4]), results_per_page=100, max_requests=5, window_seconds=1.0, timeout=5)"
    )
    rng = random.Random(4)
    with running(emulator) as (_, url):
        for now in (BASE + dt.timedelta(days=10), BASE + dt.timedelta(days=400)):
            argv = [sys.executable, "-c", code, str(raw), str(db), url, now.isoformat()]
            for _ in range(4):
                proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
                time.sleep(rng.uniform(0.5, 1.5))  # each run gets up to a second of work
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                state = StateStore(db)
                assert cursor_chain_ok(raw, state.get_cursor("nvd"))
                state.close()
            assert subprocess.run(argv).returncode == 0
    assert StateStore(db).get_cursor("nvd") == "2025-02-04T00:00:00.000+00:00"
    windows = sorted(p for p in raw.iterdir())
    assert [w.name for w in windows] == [
        "20240111T000000Z_20240510T000000Z",
        "20240510T000000Z_20240907T000000Z",
        "20240907T000000Z_20250105T000000Z",
        "20250105T000000Z_20250204T000000Z",
        FULL,
    ]
    assert ids_in(raw / FULL) == ids_of(emulator.cves)  # each CVE exactly once, in NVD's order
    for w in windows[:-1]:
        start, end = (parse_time(s) for s in json.loads((w / "_window.json").read_text())["params"].values())
        assert (w / COMPLETE).exists() and ids_in(w) == ids_of(emulator.matching(start, end))
    assert sum(len(ids_in(w)) for w in windows[:-1]) > 0
    assert not list(raw.rglob("*.tmp"))
