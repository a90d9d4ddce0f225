"""Downloads against a real HTTP server on loopback that drops connections, throttles and supports ranges."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from etl.download import download, safe_name
from etl.errors import FetchError, SourceError

BODY = bytes(range(256)) * 4096  # 1 MiB


class Handler(BaseHTTPRequestHandler):
    faults: list[str] = []
    ranges: list[str | None] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        Handler.ranges.append(self.headers.get("Range"))
        fault = Handler.faults.pop(0) if Handler.faults else None
        if self.path == "/missing.csv":
            self.send_response(404)
            self.end_headers()
            return
        if fault == "503":
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(BODY) - start))
        self.end_headers()
        if fault == "drop":  # send half, then close the connection
            self.wfile.write(BODY[start : start + (len(BODY) - start) // 2])
            return
        self.wfile.write(BODY[start:])


@pytest.fixture
def server():
    Handler.faults, Handler.ranges = [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_dropped_connection_resumes_from_the_partial_file(server, tmp_path):
    Handler.faults = ["drop", "503"]
    path = download(f"{server}/data/big.csv", tmp_path, tries=4)
    assert path == tmp_path / "big.csv" and path.read_bytes() == BODY
    assert Handler.ranges == [None, "bytes=524288-", "bytes=524288-"]
    assert not list(tmp_path.glob("*.part"))


def test_a_permanent_error_is_not_retried(server, tmp_path):
    with pytest.raises(FetchError, match="HTTP 404"):
        download(f"{server}/missing.csv", tmp_path)
    assert len(Handler.ranges) == 1 and not list(tmp_path.iterdir())


def test_giving_up_keeps_the_partial_file_for_the_next_run(server, tmp_path):
    Handler.faults = ["drop", "drop"]
    with pytest.raises(FetchError, match="after 2 tries"):
        download(f"{server}/x.csv", tmp_path, tries=2)
    assert (tmp_path / "x.csv.part").exists() and not (tmp_path / "x.csv").exists()
    assert download(f"{server}/x.csv", tmp_path).read_bytes() == BODY


@pytest.mark.parametrize("name", ["http://h/a/..", "http://h/a/%2E%2E", "http://h/", "http://h/.hidden"])
def test_remote_names_cannot_escape_the_folder(name):
    with pytest.raises(SourceError, match="unsafe"):
        safe_name(name)
    assert safe_name("http://h/dir/%C3%A7.csv?x=1") == "ç.csv"
    assert safe_name("../../etc/passwd") == "passwd"  # only the last component is ever used


def test_csv_dataset_downloads_its_urls(etl, server, tmp_path):
    (tmp_path / "etl.toml").write_text(f'[datasets.web]\nkind = "csv"\nurls = ["{server}/web.csv"]\n')
    global BODY
    saved, BODY = BODY, b"a,b\n1,2\n3,4\n"
    try:
        r = etl("run")
    finally:
        BODY = saved
    assert r.code == 0, r.err
    assert (tmp_path / "data/raw/web/web.csv").exists()
    assert "2 rows" in r.err
