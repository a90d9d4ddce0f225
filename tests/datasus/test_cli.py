"""`etl datasus systems|groups|files` in-process, the listing read from an FTP server on loopback."""

import json
import os

import pytest

from tests.ftp_server import SIH, FtpServer, put
from tests.sources.test_datasus import dbc_bytes


def write_config(tmp_path, url, months):
    (tmp_path / "etl.toml").write_text(
        '[datasets.sih]\nkind = "datasus"\nsystem = "SIH"\ngroup = "RD"\nstates = ["SP"]\nyears = [2023]\n'
        f'months = {json.dumps(months)}\nbase_url = "{url}"\n'
    )


def test_systems_lists_every_system_with_its_long_names(etl):
    r = etl("datasus", "systems")
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0].split() == ["system", "name", "english", "groups"]
    sih = next(line for line in lines if line.startswith("SIH "))
    assert "Sistema de Informações Hospitalares do SUS" in sih and "Hospital Information System" in sih
    data = json.loads(etl("--json", "datasus", "systems").out)
    assert [s["system"] for s in data["systems"]] == ["SIH", "SIA", "CNES", "SIM", "SINASC", "SINAN"]
    assert data["systems"][0]["groups"][:4] == ["RD", "RJ", "ER", "SP"]


def test_groups_lists_a_systems_groups_and_refuses_an_unknown_system(etl):
    r = etl("datasus", "groups", "sih")
    assert r.code == 0
    rd = next(line for line in r.out.splitlines() if line.startswith("RD "))
    assert rd.split("  ")[0:1] == ["RD"]
    assert "AIH Reduzida" in rd and "Reduced hospital admission record" in rd and "stg_internacoes" in rd
    data = json.loads(etl("--json", "datasus", "groups", "SIM").out)
    assert data["system"] == "SIM"
    assert {g["group"]: g["files"] for g in data["groups"]} == {
        "DO": "per state, yearly",
        "DOEXT": "national, yearly",
        "DOFET": "national, yearly",
        "DOINF": "national, yearly",
        "DOMAT": "national, yearly",
    }
    r = etl("datasus", "groups", "SUS")
    assert r.code == 1 and "unknown DATASUS system 'SUS'" in r.err and "Known systems: SIH" in r.err
    with pytest.raises(SystemExit) as e:
        etl("datasus", "groups")
    assert e.value.code == 2


def test_files_shows_new_converted_and_changed_files_of_the_listing(etl, tmp_path, tree):
    with FtpServer(tree) as url:
        write_config(tmp_path, url, [1])
        r = etl("--json", "datasus", "files", "SIH", "RD", "--states", "SP", "--years", "2023")
        assert r.code == 0, r.err
        data = json.loads(r.out)
        assert (data["system"], data["group"], data["dataset"]) == ("SIH", "RD", "sih")
        assert [(f["name"], f["status"]) for f in data["files"]] == [
            ("RDSP2301.dbc", "new"),
            ("RDSP2302.dbc", "new"),
        ]
        first = data["files"][0]
        assert first["size"] == (tree / SIH / "RDSP2301.dbc").stat().st_size
        assert (first["state"], first["year"], first["month"], first["folder"]) == ("SP", 2023, 1, "/" + SIH)
        assert first["modified"].startswith("20")

        assert etl("run").code == 0
        r = etl("datasus", "files", "SIH", "RD", "--states", "SP", "--years", "2023")
        assert r.code == 0, r.err
        rows = [line.split() for line in r.out.splitlines()[2:]]
        assert [(row[0], row[-1]) for row in rows] == [("RDSP2301.dbc", "converted"), ("RDSP2302.dbc", "new")]
        assert "2 files (1 new, 1 converted)" in r.err

        # DATASUS publishes RDSP2301 anew: another size; and RDRJ2301 is outside the selection
        put(tree, SIH, "RDSP2301.dbc", dbc_bytes(tmp_path / "work", "RDSP2301.dbc", "SP", 2023, 1, rows=300))
        data = json.loads(etl("--json", "datasus", "files", "SIH", "RD", "--changed").out)
        assert [(f["name"], f["status"]) for f in data["files"]] == [("RDSP2301.dbc", "changed")]
        assert data["counts"] == {
            "new": 2,
            "converted": 0,
            "changed": 1,
        }  # RDRJ2301, RDSP2302 were never converted
        r = etl("datasus", "files", "SIH", "RD", "--months", "1", "--states", "SP", "RJ")
        assert [line.split()[::4] for line in r.out.splitlines()[2:]] == [["RDRJ2301.dbc"], ["RDSP2301.dbc"]]


def test_files_sees_a_new_date_alone_as_a_change(etl, tmp_path, tree):
    with FtpServer(tree) as url:
        write_config(tmp_path, url, [1])
        assert etl("run").code == 0
        os.utime(tree / SIH / "RDSP2301.dbc", (1_700_000_000, 1_700_000_000))
        data = json.loads(etl("--json", "datasus", "files", "SIH", "RD", "--changed").out)
        assert [(f["name"], f["status"], f["modified"]) for f in data["files"]] == [
            ("RDSP2301.dbc", "changed", "2023-11-14T22:13:20+00:00")
        ]


def test_files_refuses_what_cannot_be_listed(etl, tmp_path):
    r = etl("datasus", "files", "SIH", "XX", "--base-url", "ftp://127.0.0.1:1")
    assert r.code == 1 and "SIH has no group 'XX'" in r.err and "Groups: RD" in r.err
    r = etl("datasus", "files", "SIH", "RD", "--base-url", "https://mirror.example/datasus")
    assert r.code == 1 and "only an FTP tree can be listed" in r.err


def test_files_of_national_groups_with_and_without_a_state_in_their_names(etl, tmp_path):
    root = tmp_path / "ftp"
    put(root, "dissemin/publicos/SINAN/DADOS/FINAIS", "DENGBR22.dbc", b"x" * 10)
    put(root, "dissemin/publicos/SINAN/DADOS/PRELIM", "DENGBR24.dbc", b"x" * 20)
    put(root, "dissemin/publicos/SINAN/DADOS/PRELIM", "ZIKABR24.dbc", b"x" * 30)
    put(root, "dissemin/publicos/SIM/CID10/DOFET", "DOFET22.dbc", b"x" * 40)
    put(root, "dissemin/publicos/SIM/CID10/DOFET", "DOEXT22.dbc", b"x" * 50)
    with FtpServer(root) as url:
        data = json.loads(etl("--json", "datasus", "files", "SINAN", "DENG", "--base-url", url).out)
        assert [(f["name"], f["folder"], f["state"], f["year"], f["size"]) for f in data["files"]] == [
            ("DENGBR22.dbc", "/dissemin/publicos/SINAN/DADOS/FINAIS", "BR", 2022, 10),
            ("DENGBR24.dbc", "/dissemin/publicos/SINAN/DADOS/PRELIM", "BR", 2024, 20),
        ]
        r = etl("datasus", "files", "SIM", "DOFET", "--years", "2022", "--base-url", url)
        assert r.code == 0, r.err
        assert [line.split()[:2] for line in r.out.splitlines()[2:]] == [["DOFET22.dbc", "40"]]
        assert "1 file (1 new)" in r.err
