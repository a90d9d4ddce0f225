"""An NVD CVE API 2.0 emulator on loopback: pages, lastModified windows, the rolling rate limit, and NVD's faults."""

from __future__ import annotations

import collections
import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from etl.samples.nvd import make_cve
from etl.sources.nvd_api import parse_time

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


class Emulator:
    """`faults` are consumed one per request: '503', '429', 'slow', 'drop', 'malformed', 'grow' or None."""

    def __init__(self, count: int = 250, *, limit: int = 5, window: float = 1.0, max_page: int = 2000):
        self.cves = [make_cve(i, modified=BASE + dt.timedelta(hours=i)) for i in range(count)]
        self.limit, self.window, self.max_page = limit, window, max_page
        self.faults: list[str | None] = []
        self.requests: list[dict] = []
        self.throttled = 0
        self.sent: collections.deque[float] = collections.deque()
        self.lock = threading.Lock()

    def add(self, modified: dt.datetime) -> dict:
        cve = make_cve(len(self.cves), modified=modified)
        self.cves.append(cve)
        return cve

    def handle(self, query: dict, headers) -> tuple[int, dict, bytes, str | None]:
        with self.lock:
            now = time.monotonic()
            while self.sent and now - self.sent[0] >= self.window:
                self.sent.popleft()
            self.requests.append({**query, "apiKey": headers.get("apiKey")})
            if len(self.sent) >= self.limit:
                self.throttled += 1
                return 403, {}, b"Forbidden", None
            self.sent.append(now)
            fault = self.faults.pop(0) if self.faults else None
        if fault == "503":
            return 503, {}, b"Service Unavailable", None
        if fault == "429":
            return 429, {"Retry-After": "1"}, b"Too Many Requests", None
        start_s, end_s = query.get("lastModStartDate"), query.get("lastModEndDate")
        if bool(start_s) != bool(end_s):
            return 404, {"message": "Both lastModStartDate and lastModEndDate are required"}, b"", None
        cves = self.cves
        if start_s:
            start, end = parse_time(start_s), parse_time(end_s)
            if end - start > dt.timedelta(days=120):
                return 404, {"message": "The lastMod date range must not exceed 120 days"}, b"", None
            cves = [c for c in cves if start <= parse_time(c["cve"]["lastModified"]) <= end]
        if fault == "grow" and start_s:
            self.add(parse_time(start_s) + dt.timedelta(seconds=1))
        elif fault == "grow":
            self.add(BASE)
        first = int(query.get("startIndex", 0))
        size = min(int(query.get("resultsPerPage", self.max_page)), self.max_page)
        body = json.dumps(
            {
                "resultsPerPage": len(cves[first : first + size]),
                "startIndex": first,
                "totalResults": len(cves),
                "format": "NVD_CVE",
                "version": "2.0",
                "timestamp": "2026-11-22T00:00:00.000",
                "vulnerabilities": cves[first : first + size],
            }
        ).encode()
        if fault == "malformed":
            body = body[: len(body) // 2]
        return 200, {}, body, fault


def serve(emulator: Emulator):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
            status, headers, body, fault = emulator.handle(query, self.headers)
            if fault == "slow":
                time.sleep(1.5)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if fault == "drop":
                self.wfile.write(body[: len(body) // 3])
                self.close_connection = True
                return
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/rest/json/cves/2.0"
