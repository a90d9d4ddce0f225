"""Downloads against a real HTTP server on loopback that injects the faults real servers show (tests/http_server.py)."""

import gzip
import logging

import pytest

from etl.download import download, safe_name
from etl.errors import FetchError, SourceError
from etl.retry import Policy
from tests.http_server import FaultServer

BODY = bytes(range(256)) * 4096  # 1 MiB
FAST = Policy(tries=4, base=0.01)


@pytest.fixture
def server():
    with FaultServer({"/data/big.csv": BODY, "/x.csv": BODY}) as s:
        yield s


def ranges(server) -> list[str | None]:
    return [headers.get("Range") for _, headers in server.requests]


def test_a_dropped_connection_resumes_from_the_partial_file(server, tmp_path):
    server.faults += ["drop", "503"]
    path = download(server.url("/data/big.csv"), tmp_path, policy=FAST)
    assert path == tmp_path / "big.csv" and path.read_bytes() == BODY
    assert ranges(server) == [None, "bytes=524288-", "bytes=524288-"]
    assert not list(tmp_path.glob("*.part"))


def test_a_permanent_error_is_not_retried(server, tmp_path):
    with pytest.raises(FetchError, match="HTTP 404"):
        download(server.url("/missing.csv"), tmp_path, policy=FAST)
    assert len(server.requests) == 1 and not list(tmp_path.iterdir())


def test_giving_up_keeps_the_partial_file_for_the_next_run(server, tmp_path):
    server.faults += ["drop", "drop"]
    with pytest.raises(
        FetchError,
        match=r"x.csv: gave up after 2 tries: connection lost at byte 786432 of 1048576.*Run again to resume",
    ):
        download(server.url("/x.csv"), tmp_path, policy=Policy(tries=2, base=0.01))
    assert (tmp_path / "x.csv.part").stat().st_size == len(BODY) * 3 // 4
    assert not (tmp_path / "x.csv").exists()
    assert download(server.url("/x.csv"), tmp_path, policy=FAST).read_bytes() == BODY


def test_a_416_is_complete_only_when_the_total_is_the_partial_size(server, tmp_path):
    (tmp_path / "x.csv.part").write_bytes(BODY)  # a crash between the last byte and the rename
    server.faults += ["416"]
    assert download(server.url("/x.csv"), tmp_path, policy=FAST).read_bytes() == BODY
    assert len(server.requests) == 1


def test_a_416_announcing_another_size_starts_again_from_zero(server, tmp_path):
    (tmp_path / "x.csv.part").write_bytes(b"stale bytes of an older version")
    server.faults += ["416-wrong"]
    assert download(server.url("/x.csv"), tmp_path, policy=FAST).read_bytes() == BODY
    assert ranges(server) == ["bytes=31-", None]


def test_a_206_from_another_offset_starts_again_from_zero(server, tmp_path):
    (tmp_path / "x.csv.part").write_bytes(BODY[:1000])
    server.faults += ["bad-range"]
    assert download(server.url("/x.csv"), tmp_path, policy=FAST).read_bytes() == BODY
    assert ranges(server) == ["bytes=1000-", None]


def test_a_200_to_a_range_request_replaces_the_partial_file(server, tmp_path):
    (tmp_path / "x.csv.part").write_bytes(BODY[:1000])
    server.faults += ["ignore-range"]
    assert download(server.url("/x.csv"), tmp_path, policy=FAST).read_bytes() == BODY
    assert len(server.requests) == 1


def test_a_server_that_hangs_keeps_the_bytes_it_sent_for_the_resume(server, tmp_path):
    server.faults += ["hang"]
    path = download(server.url("/x.csv"), tmp_path, policy=FAST, timeout=0.5)
    assert path.read_bytes() == BODY
    assert ranges(server) == [None, "bytes=1000-"]


def test_gzip_content_encoding_is_stored_as_sent(server, tmp_path):
    server.faults += ["gzip"]
    path = download(server.url("/x.csv"), tmp_path, policy=FAST)
    assert gzip.decompress(path.read_bytes()) == BODY  # the bytes sent, whose size the server announced
    assert len(server.requests) == 1 and server.requests[0][1]["Accept-Encoding"] == "identity"


def test_a_body_without_length_is_kept_and_said_to_be_unverified(server, tmp_path, caplog):
    server.faults += ["no-length"]
    with caplog.at_level(logging.WARNING):
        path = download(server.url("/x.csv"), tmp_path, policy=FAST)
    assert path.read_bytes() == BODY
    assert f"its size ({len(BODY)} bytes) could not be verified" in caplog.text


def test_a_short_body_without_length_cannot_pass_silently(server, tmp_path, caplog):
    server.faults += ["no-length-short"]
    with caplog.at_level(logging.WARNING):
        path = download(server.url("/x.csv"), tmp_path, policy=FAST)
    assert path.stat().st_size == len(BODY) // 2
    assert "x.csv: the server sent no length" in caplog.text and "delete it and fetch it again" in caplog.text


def test_a_redirect_loop_is_one_clear_error(server, tmp_path):
    server.faults += ["loop"] * 40
    with pytest.raises(FetchError, match=r"x.csv: the server redirects in a loop\. Check the URL"):
        download(server.url("/x.csv"), tmp_path, policy=FAST)
    assert not list(tmp_path.iterdir())


def test_retries_honour_retry_after():
    policy = Policy(base=10)
    assert policy.delay(0, "0") == 0 and policy.delay(3, "7") == 7
    assert policy.delay(0, "Wed, 21 Oct 2015 07:28:00 GMT") == 0  # a date in the past: now
    assert 0 < policy.delay(0) <= 10 and policy.delay(20) <= policy.cap


@pytest.mark.parametrize("name", ["http://h/a/..", "http://h/a/%2E%2E", "http://h/", "http://h/.hidden"])
def test_remote_names_cannot_escape_the_folder(name):
    with pytest.raises(SourceError, match="unsafe"):
        safe_name(name)
    assert safe_name("http://h/dir/%C3%A7.csv?x=1") == "ç.csv"
    assert safe_name("../../etc/passwd") == "passwd"  # only the last component is ever used


def test_csv_dataset_downloads_its_urls(etl, tmp_path):
    with FaultServer({"/web.csv": b"a,b\n1,2\n3,4\n"}) as server:
        (tmp_path / "etl.toml").write_text(
            f'[datasets.web]\nkind = "csv"\nurls = ["{server.url("/web.csv")}"]\n'
        )
        r = etl("run")
    assert r.code == 0, r.err
    assert (tmp_path / "data/raw/web/web.csv").exists()
    assert "2 rows" in r.err
