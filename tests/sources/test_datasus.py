"""The datasus kind end to end against an FTP server on loopback laid out like DATASUS's tree."""

import json
import zipfile

import duckdb
import pytest

from etl.samples.datasus import FIELDS, _record
from etl.sources.dbc import write_dbc
from etl.sources.dbf import write_dbf
from tests.ftp_server import SIA, SIH, SIH_OLD, Faults, FtpServer, put


def dbc_bytes(tmp_path, name, state="SP", year=2023, month=1, rows=200):
    import random

    rng = random.Random(name)
    dbf = write_dbf(
        tmp_path / f"{name}.dbf", FIELDS, (_record(rng, state, year, month, i) for i in range(rows))
    )
    return write_dbc(dbf, tmp_path / name).read_bytes()


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "ftp"
    work = tmp_path / "work"
    work.mkdir()
    for name, state, month in [
        ("RDSP2301.dbc", "SP", 1),
        ("RDSP2302.dbc", "SP", 2),
        ("RDRJ2301.dbc", "RJ", 1),
        ("RDSP2303.dbc", "SP", 3),
    ]:
        put(root, SIH, name, dbc_bytes(work, name, state, 2023, month))
    put(root, SIH_OLD, "RDSP0712.dbc", dbc_bytes(work, "RDSP0712.dbc", "SP", 2007, 12, rows=50))
    put(root, SIH, "README.txt", b"not data")
    return root


def config(tmp_path, url, **extra):
    keys = {
        "kind": "datasus",
        "system": "SIH",
        "group": "RD",
        "states": ["SP"],
        "years": [2023],
        "months": [1, 2],
        "base_url": url,
        **extra,
    }
    lines = ["[datasets.sih]"] + [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    (tmp_path / "etl.toml").write_text("\n".join(lines) + "\n")


def count(tmp_path, sql):
    con = duckdb.connect(str(tmp_path / "data/warehouse.duckdb"), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def test_run_fetches_the_selection_converts_and_builds_the_views(etl, tmp_path, tree):
    faults = Faults()
    with FtpServer(tree, faults) as url:
        config(tmp_path, url)
        r = etl("--json", "run")
        assert r.code == 0, r.err
        assert sorted(p.name for p in (tmp_path / "data/raw/sih").iterdir()) == [
            "RDSP2301.dbc",
            "RDSP2302.dbc",
        ]
        assert json.loads(r.out)["rows"] == 400
        assert count(tmp_path, "SELECT count(*), count(DISTINCT competencia) FROM sih.stg_internacoes") == [
            (400, 2)
        ]
        again = json.loads(etl("--json", "run").out)
    assert [name for name, _ in faults.retrs] == ["RDSP2301.dbc", "RDSP2302.dbc"]  # nothing fetched twice
    assert [s["status"] for s in again["steps"] if s["step"] == "convert"] == ["skipped", "skipped"]


def test_keep_raw_false_deletes_the_dbc_and_does_not_fetch_it_again(etl, tmp_path, tree):
    faults = Faults()
    with FtpServer(tree, faults) as url:
        config(tmp_path, url, keep_raw=False)
        assert etl("run").code == 0
        assert list((tmp_path / "data/raw/sih").iterdir()) == []
        assert etl("run").code == 0
    assert len(faults.retrs) == 2
    assert count(tmp_path, "SELECT count(*) FROM sih.records") == [(400,)]


def test_faults_fail_their_file_and_the_others_go_on(etl, tmp_path, tree):
    faults = Faults(drops={"RDSP2301.dbc": 1}, refused={"RDSP2302.dbc"})
    with FtpServer(tree, faults) as url:
        config(tmp_path, url, months=[1, 2, 3])
        r = etl("run")
    assert r.code == 1
    assert "RDSP2302.dbc" in r.err and "550" in r.err
    assert sorted(p.name for p in (tmp_path / "data/raw/sih").iterdir()) == ["RDSP2301.dbc", "RDSP2303.dbc"]
    assert count(tmp_path, "SELECT count(*) FROM sih.records") == [(400,)]
    status = etl("status").out
    assert "raw/sih/RDSP2302.dbc  failed" in status


def test_split_months_and_the_old_period_folder(etl, tmp_path, tree):
    work = tmp_path / "work"
    for part in "ab":
        put(tree, SIA, f"PASP2303{part}.dbc", dbc_bytes(work, f"PASP2303{part}.dbc", rows=30))
    with FtpServer(tree) as url:
        r = etl(
            "fetch",
            "datasus",
            "--system",
            "SIA",
            "--group",
            "PA",
            "--states",
            "SP",
            "--years",
            "2023",
            "--months",
            "3",
            "--base-url",
            url,
            "--out",
            tmp_path / "pa",
        )
        assert r.code == 0, r.err
        r = etl(
            "fetch",
            "datasus",
            "--system",
            "SIH",
            "--group",
            "RD",
            "--states",
            "SP",
            "--years",
            "2007",
            "--base-url",
            url,
            "--out",
            tmp_path / "old",
        )
        assert r.code == 0, r.err
    assert sorted(p.name for p in (tmp_path / "pa").iterdir()) == ["PASP2303a.dbc", "PASP2303b.dbc"]
    assert [p.name for p in (tmp_path / "old").iterdir()] == ["RDSP0712.dbc"]


def test_zip_archives_are_extracted_and_escaping_members_refused(etl, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    with zipfile.ZipFile(tmp_path / "good.zip", "w") as zf:
        zf.writestr("dados/RDSP2301.dbc", dbc_bytes(work, "RDSP2301.dbc"))
        zf.writestr("LEIAME.txt", "x")
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("../../evil.dbc", b"x")
    (tmp_path / "etl.toml").write_text('[datasets.z]\nkind = "datasus"\npaths = ["good.zip"]\n')
    assert etl("run").code == 0
    assert count(tmp_path, "SELECT count(*) FROM z") == [(200,)]
    (tmp_path / "etl.toml").write_text('[datasets.z]\nkind = "datasus"\npaths = ["evil.zip"]\n')
    r = etl("run")
    assert r.code == 1 and "escapes the folder" in r.err
    assert not (tmp_path.parent / "evil.dbc").exists()


def test_the_sample_dataset_and_its_views(etl, tmp_path):
    (tmp_path / "etl.toml").write_text(
        '[datasets.sih]\nkind = "datasus"\nsample = true\nsample_rows = 2000\n'
    )
    assert etl("run").code == 0
    assert count(tmp_path, "SELECT count(*), count(DISTINCT _source_file) FROM sih.records") == [(2000, 24)]
    rows = count(
        tmp_path,
        "SELECT uf_residencia, sum(internacoes) AS n FROM sih.internacoes_por_mes "
        "WHERE uf_residencia IS NOT NULL GROUP BY 1 ORDER BY n DESC",
    )
    assert [uf for uf, _ in rows] == ["SP", "MG", "BA", "AM"]  # states of different sizes
    ages = count(
        tmp_path,
        "SELECT min(idade_anos), max(idade_anos), count(*) FILTER (WHERE dt_saida IS NULL) "
        "FROM sih.stg_internacoes",
    )
    assert ages[0][0] == 0 and ages[0][1] <= 99


def test_bad_selection_is_a_config_error(etl, tmp_path):
    (tmp_path / "etl.toml").write_text('[datasets.x]\nkind = "datasus"\nsystem = "SIH"\nstates = ["XX"]\n')
    r = etl("run")
    assert r.code == 1 and "unknown state 'XX'" in r.err
