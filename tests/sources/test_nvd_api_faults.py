"""The NVD pager against the fault-injecting server (tests/http_server.py): redirects, loops, cut pages."""

import json

import pytest

from etl.errors import FetchFailures
from etl.sources.nvd_api import FULL, sync
from tests.http_server import FaultServer
from tests.nvd_emulator import make_cve

CVES = [make_cve(i) for i in range(3)]
PAGE = json.dumps(
    {
        "resultsPerPage": 3,
        "startIndex": 0,
        "totalResults": 3,
        "format": "NVD_CVE",
        "version": "2.0",
        "timestamp": "2026-11-01T00:00:00.000",
        "vulnerabilities": CVES,
    }
).encode()


def run(tmp_path, server, **kw):
    return sync(
        tmp_path / "raw",
        state=None,
        cursor_name="nvd",
        base_url=server.url("/cves"),
        timeout=2,
        max_requests=100,
        window_seconds=1.0,
        **kw,
    )


def test_the_api_key_is_not_sent_to_another_host_after_a_redirect(tmp_path):
    with FaultServer({"/cves": PAGE}) as server:
        server.faults += ["elsewhere"]
        pages = run(tmp_path, server, api_key="s3cret")
    (host0, first), (host1, second) = [(h["Host"], h) for _, h in server.requests]
    assert host0.startswith("127.0.0.1") and host1.startswith("localhost")
    assert first["apiKey"] == "s3cret" and "apiKey" not in second
    assert pages == [tmp_path / "raw" / FULL / "page-00000000.json.gz"]


def test_a_redirect_loop_fails_the_window_at_once_with_what_to_do(tmp_path):
    with FaultServer({"/cves": PAGE}) as server:
        server.faults += ["loop"] * 40
        with pytest.raises(FetchFailures) as e:
            run(tmp_path, server)
    assert len(server.requests) == 31  # requests' 30 redirects, once: a loop is not retried
    assert "startIndex=0: the API redirects in a loop. Check base_url (--base-url)" in str(e.value)


def test_a_page_cut_short_is_fetched_again(tmp_path):
    with FaultServer({"/cves": PAGE}) as server:
        server.faults += ["truncated-gzip"]
        pages = run(tmp_path, server)
    assert len(server.requests) == 2 and len(pages) == 1
