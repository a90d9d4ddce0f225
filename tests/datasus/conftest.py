"""A DATASUS tree for the listing and API tests: three SIH RD months of 2023 (SP January and February, RJ January)."""

import pytest

from tests.ftp_server import SIH, put
from tests.sources.test_datasus import dbc_bytes


@pytest.fixture
def tree(tmp_path):
    root, work = tmp_path / "ftp", tmp_path / "work"
    work.mkdir()
    for name, state, month in [
        ("RDSP2301.dbc", "SP", 1),
        ("RDSP2302.dbc", "SP", 2),
        ("RDRJ2301.dbc", "RJ", 1),
    ]:
        put(root, SIH, name, dbc_bytes(work, name, state, 2023, month))
    put(root, SIH, "README.txt", b"not data")
    return root
