import pytest

from etl.errors import FetchError
from etl.ftp import FtpClient
from tests.ftp_server import SIH, Faults, FtpServer, put

DATA = bytes(range(256)) * 2000


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "ftp"
    put(root, SIH, "RDSP2301.dbc", DATA)
    put(root, SIH, "RDSP2302.dbc", DATA[:1000])
    return root


def test_listing_has_sizes_and_dates(tree):
    with FtpServer(tree) as url:
        client = FtpClient(url)
        files = sorted(client.list("/" + SIH), key=lambda f: f.name)
        client.close()
    assert [(f.name, f.size) for f in files] == [("RDSP2301.dbc", len(DATA)), ("RDSP2302.dbc", 1000)]
    assert all(f.modified is not None for f in files)
    with FtpServer(tree) as url:
        assert FtpClient(url).list("/no/such/folder") == []


def test_a_dropped_transfer_resumes_where_it_stopped(tree, tmp_path):
    faults = Faults(drops={"RDSP2301.dbc": 2})
    with FtpServer(tree, faults) as url:
        client = FtpClient(url, tries=4)
        remote = next(f for f in client.list("/" + SIH) if f.name == "RDSP2301.dbc")
        path = client.download("/" + SIH, remote, tmp_path / "raw")
        client.close()
    assert path.read_bytes() == DATA
    offsets = [rest for name, rest in faults.retrs if name == "RDSP2301.dbc"]
    assert offsets[0] == 0 and offsets[1] > 0 and offsets[2] > offsets[1]  # each retry resumes further on
    assert path.stat().st_mtime == pytest.approx(remote.modified.timestamp())
    assert not list((tmp_path / "raw").glob("*.part"))


def test_a_listed_file_the_server_cannot_serve(tree, tmp_path):
    faults = Faults(refused={"RDSP2302.dbc"})
    with FtpServer(tree, faults) as url:
        client = FtpClient(url)
        remote = next(f for f in client.list("/" + SIH) if f.name == "RDSP2302.dbc")
        with pytest.raises(FetchError, match="RDSP2302.dbc: the server refused it: 550"):
            client.download("/" + SIH, remote, tmp_path / "raw")
        client.close()
    assert not (tmp_path / "raw" / "RDSP2302.dbc").exists()


def test_giving_up_after_the_tries(tree, tmp_path):
    faults = Faults(drops={"RDSP2301.dbc": 10})
    with FtpServer(tree, faults) as url:
        client = FtpClient(url, tries=2)
        remote = next(f for f in client.list("/" + SIH) if f.name == "RDSP2301.dbc")
        with pytest.raises(
            FetchError, match="RDSP2301.dbc: gave up after 2 tries: connection closed at byte"
        ):
            client.download("/" + SIH, remote, tmp_path / "raw")
        client.close()
    assert not (tmp_path / "raw" / "RDSP2301.dbc").exists()
