"""An HTTP server on loopback that serves files and injects the faults real servers show, one per request.

    with FaultServer({"/x.csv": data}) as server:
        server.faults += ["drop", "503"]      # the first request is cut short, the second throttled, then normal
        download(server.url("/x.csv"), dest)
        server.requests                        # (path, headers) of each request, in order

Faults: "503" and "429" (Retry-After 0), "404", "drop" (a full Content-Length, half the body, closed),
"hang" (a few bytes, then silence until the client gives up), "416" (a range refused, Content-Range `*/size`),
"416-wrong" (a range refused, announcing another size), "bad-range" (a 206 from byte 0 whatever was asked),
"ignore-range" (a 200 with the whole body), "no-length" (the body, no Content-Length, closed at its end),
"no-length-short" (half the body that way), "gzip" (gzip-compressed whatever the client accepts),
"loop" (a redirect to itself), "elsewhere" (a redirect to the same path on `localhost`, another host name for
the same server), "truncated-gzip" (the first half of the body only, with a Content-Length that says so).
"""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG_SECONDS = 5.0  # longer than the clients' timeout in the tests


class FaultServer:
    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.faults: list[str] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def next_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def __enter__(self) -> FaultServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, dict(self.headers)))
                fault = server.next_fault()
                handle(self, server, fault)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _requested_start(h: BaseHTTPRequestHandler) -> int:
    rng = h.headers.get("Range")
    return int(rng.split("=")[1].split("-")[0]) if rng else 0


def _status(h: BaseHTTPRequestHandler, code: int, headers: dict[str, str] | None = None, body: bytes = b""):
    h.send_response(code)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def handle(h: BaseHTTPRequestHandler, server: FaultServer, fault: str | None) -> None:
    path = h.path.split("?")[0]
    if fault == "loop":
        return _status(h, 302, {"Location": h.path})
    if fault == "elsewhere":
        return _status(h, 302, {"Location": server.url(h.path, host="localhost")})
    if fault in ("503", "429"):
        return _status(h, int(fault), {"Retry-After": "0"})
    if fault == "404" or path not in server.files:
        return _status(h, 404)
    body = server.files[path]
    start = _requested_start(h)
    if fault == "416":
        return _status(h, 416, {"Content-Range": f"bytes */{len(body)}"})
    if fault == "416-wrong":
        return _status(h, 416, {"Content-Range": f"bytes */{len(body) + 7}"})
    if fault == "ignore-range":
        start = 0
    if fault == "gzip":
        sent = gzip.compress(body)
        return _status(h, 200, {"Content-Encoding": "gzip"}, sent)
    if fault in ("no-length", "no-length-short"):
        h.close_connection = True
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body if fault == "no-length" else body[: len(body) // 2])
        return None
    if fault == "truncated-gzip":
        return _status(h, 200, {}, body[: len(body) // 2])
    ranged = start > 0 or fault == "bad-range"
    if fault == "bad-range":
        start = 0
    rest = body[start:]
    h.send_response(206 if ranged else 200)
    h.send_header("Content-Length", str(len(rest)))
    if ranged:
        h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
    if fault == "drop":
        h.send_header("Connection", "close")
    h.end_headers()
    if fault == "drop":
        h.wfile.write(rest[: len(rest) // 2])
        h.wfile.flush()
        h.close_connection = True
        return None
    if fault == "hang":
        h.wfile.write(rest[:1000])
        h.wfile.flush()
        time.sleep(HANG_SECONDS)
        h.close_connection = True
        return None
    h.wfile.write(rest)
    return None
