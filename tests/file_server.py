"""A loopback HTTP server of in-memory files (KEV catalogues, EPSS score files, CWE catalogues), with faults."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Files:
    """What the server holds: `files` (path -> bytes; a missing path is a 404), `faults` ('503' answers one request
    with a 503 and `Retry-After: 0`), and `requests`, the paths asked for."""

    def __init__(self, files: dict[str, bytes] | None = None):
        self.files = dict(files or {})
        self.faults: list[str] = []
        self.requests: list[str] = []


@contextlib.contextmanager
def serving(files: Files) -> Iterator[str]:
    """The files served on a free loopback port for the block: its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            files.requests.append(self.path)
            if files.faults and files.faults.pop(0) == "503":
                self.send_response(503)
                self.send_header("Retry-After", "0")
                self.end_headers()
                return
            body = files.files.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
