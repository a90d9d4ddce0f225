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

import pytest

from etl.errors import FetchError
from etl.sources.nvd_api import Client, RateLimiter, iter_feed_cves, sync
from etl.state import StateStore
from tests.nvd_emulator import BASE, Emulator, serve


@pytest.fixture
def nvd():
    emulator = Emulator(count=250, limit=5, window=1.0)
    server, url = serve(emulator)
    yield emulator, url
    server.shutdown()
    server.server_close()


def ids_in(folder):
    out = []
    for page in sorted(folder.glob("page-*.json.gz")):
        out += [v["cve"]["id"] for v in json.loads(gzip.decompress(page.read_bytes()))["vulnerabilities"]]
    return out


def run_sync(tmp_path, url, state, **kw):
    kw = {"results_per_page": 100, "max_requests": 5, "window_seconds": 1.0, "timeout": 5, **kw}
    return sync(tmp_path / "raw", state=state, cursor_name="nvd", base_url=url, **kw)


def test_full_sync_pages_everything_once_and_sets_the_cursor(nvd, tmp_path):
    emulator, url = nvd
    state = StateStore(tmp_path / "state.sqlite")
    now = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
    (folder,) = run_sync(tmp_path, url, state, now=now)
    assert folder.name == "full-20261122T120000Z" and (folder / "_complete").exists()
    ids = ids_in(folder)
    assert len(ids) == 250 and len(set(ids)) == 250
    assert [r["startIndex"] for r in emulator.requests] == ["0", "100", "200"]
    assert state.get_cursor("nvd") == "2026-11-22T12:00:00.000+00:00"


def test_the_client_keeps_under_the_rate_limit(tmp_path):
    emulator = Emulator(count=700, limit=3, window=1.0)
    server, url = serve(emulator)
    try:
        (folder,) = sync(
            tmp_path,
            state=None,
            cursor_name="x",
            base_url=url,
            results_per_page=100,
            max_requests=3,
            window_seconds=1.0,
        )
    finally:
        server.shutdown()
    assert len(ids_in(folder)) == 700 and emulator.throttled == 0


@pytest.mark.parametrize("fault", ["503", "429", "malformed", "drop", "slow"])
def test_transient_faults_are_retried(nvd, tmp_path, fault):
    emulator, url = nvd
    emulator.faults = [None, fault]
    (folder,) = run_sync(tmp_path, url, None, timeout=1.0)
    assert sorted(ids_in(folder)) == sorted(c["cve"]["id"] for c in emulator.cves)


def test_throttling_403_is_retried_with_backoff(nvd, tmp_path):
    emulator, url = nvd
    (folder,) = run_sync(
        tmp_path, url, None, max_requests=50, window_seconds=1.0
    )  # a client over NVD's limit
    assert len(ids_in(folder)) == 250


def test_a_404_shows_nvds_message_and_is_not_retried(nvd):
    emulator, url = nvd
    client = Client(url, None, RateLimiter(5, 1.0), timeout=5, max_tries=3)
    with pytest.raises(FetchError, match="HTTP 404: The lastMod date range must not exceed 120 days"):
        client.page(
            {
                "lastModStartDate": "2024-01-01T00:00:00.000+00:00",
                "lastModEndDate": "2024-08-01T00:00:00.000+00:00",
            },
            "window",
        )
    assert len(emulator.requests) == 1


def test_giving_up_names_the_page(nvd, tmp_path):
    emulator, url = nvd
    emulator.faults = [None] + ["503"] * 10
    with pytest.raises(FetchError, match="startIndex=100: gave up after 2 tries: HTTP 503"):
        run_sync(tmp_path, url, None, max_tries=2)
    assert not (tmp_path / "raw" / "full").exists()
    folder = next((tmp_path / "raw").glob("full-*"))
    assert [p.name for p in sorted(folder.glob("page-*"))] == ["page-00000000.json.gz"]
    assert not (folder / "_complete").exists()


def test_a_changing_total_rereads_the_window(nvd, tmp_path):
    emulator, url = nvd
    emulator.faults = [None, "grow"]
    (folder,) = run_sync(tmp_path, url, None)
    ids = ids_in(folder)
    assert len(ids) == 251 and len(set(ids)) == 251


def test_incremental_windows_after_a_full_sync(nvd, tmp_path):
    emulator, url = nvd
    state = StateStore(tmp_path / "state.sqlite")
    run_sync(tmp_path, url, state, now=BASE + dt.timedelta(days=30))
    changed = [emulator.add(BASE + dt.timedelta(days=d)) for d in (40, 200, 290)]
    later = BASE + dt.timedelta(days=300)
    folders = run_sync(tmp_path, url, state, now=later)
    windows = [f for f in folders if not f.name.startswith("full-")]
    assert [f.name for f in windows] == [
        "20240131T000000Z_20240530T000000Z",
        "20240530T000000Z_20240927T000000Z",
        "20240927T000000Z_20241027T000000Z",
    ]
    fetched = [i for w in windows for i in ids_in(w)]
    assert sorted(fetched) == sorted(c["cve"]["id"] for c in changed)
    assert state.get_cursor("nvd") == "2024-10-27T00:00:00.000+00:00"
    for r in emulator.requests:
        assert ("lastModStartDate" in r) == ("lastModEndDate" in r)


def test_the_api_key_goes_in_a_header_and_never_in_the_log(nvd, tmp_path, caplog):
    emulator, url = nvd
    emulator.faults = [None, "503"]
    with caplog.at_level(logging.DEBUG):
        run_sync(tmp_path, url, None, api_key="s3cret-key")
    assert {r["apiKey"] for r in emulator.requests} == {"s3cret-key"}
    assert all("apiKey" not in r or r["apiKey"] == "s3cret-key" for r in emulator.requests)
    assert "s3cret-key" not in caplog.text and "503" in caplog.text


def test_yearly_feeds_are_streamed(tmp_path):
    from etl.samples.nvd import make_cve

    feed = tmp_path / "nvdcve-2.0-2024.json.gz"
    with gzip.open(feed, "wt") as f:
        json.dump(
            {"format": "NVD_CVE", "version": "2.0", "vulnerabilities": [make_cve(i) for i in range(30)]}, f
        )
    ids = [v["cve"]["id"] for v in iter_feed_cves(feed)]
    assert ids == [make_cve(i)["cve"]["id"] for i in range(30)]


@pytest.mark.slow
def test_killed_at_random_points_the_sync_resumes_without_gaps_or_duplicates(tmp_path):
    emulator = Emulator(count=1500, limit=10, window=1.0)
    server, url = serve(emulator)
    code = (
        "import sys; from etl.sources.nvd_api import sync; from etl.state import StateStore; "
        "sync(sys.argv[1], state=StateStore(sys.argv[2]), cursor_name='nvd', base_url=sys.argv[3], "
        "results_per_page=100, max_requests=10, window_seconds=1.0, timeout=5)"
    )
    argv = [sys.executable, "-c", code, str(tmp_path / "raw"), str(tmp_path / "state.sqlite"), url]
    rng = random.Random(3)
    try:
        for _ in range(4):
            proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.3, 1.2))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert subprocess.run(argv).returncode == 0
    finally:
        server.shutdown()
    (folder,) = list((tmp_path / "raw").glob("full-*"))
    ids = ids_in(folder)
    later = [
        f for f in (tmp_path / "raw").iterdir() if f != folder
    ]  # windows after the full sync: nothing new
    assert all((f / "_complete").exists() and ids_in(f) == [] for f in later)
    assert len(ids) == 1500 and len(set(ids)) == 1500
    assert not list(folder.glob("*.tmp"))
    assert StateStore(tmp_path / "state.sqlite").get_cursor("nvd") is not None
