"""etl.datasus.fetch and scan end to end against an FTP server on loopback, and a file DATASUS publishes anew."""

import json
import os

import duckdb
import polars as pl
import pytest

from etl import datasus
from etl.errors import EtlError
from tests.ftp_server import SIH, Faults, FtpServer, put
from tests.sources.test_datasus import dbc_bytes


@pytest.fixture
def notebook(tmp_path, monkeypatch):
    """A project folder with an etl.toml (its sample dataset has the name the API would take) and a notebooks/."""
    (tmp_path / "etl.toml").write_text(
        '[etl]\nmemory_limit = "512MB"\n\n[datasets.sih_rd]\nkind = "datasus"\nsample = true\n'
    )
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    for name in [n for n in os.environ if n.startswith("ETL_") and n != "ETL_TEST_PG_DSN"]:
        monkeypatch.delenv(name)
    return tmp_path


def test_fetch_converts_the_selection_once_and_scan_gives_its_staged_rows(notebook, tree):
    faults = Faults()
    with FtpServer(tree, faults) as url:
        paths = datasus.fetch("SIH", "RD", states=["SP"], years=[2023], months=[1, 2], base_url=url)
        out = (
            notebook / "data" / "parquet" / "sih_rd_ftp"
        )  # etl.toml found from notebooks/ up; sih_rd is the sample
        assert paths == [out / "RDSP2301.parquet", out / "RDSP2302.parquet"]
        assert sorted(name for name, _ in faults.retrs) == ["RDSP2301.dbc", "RDSP2302.dbc"]
        again = datasus.fetch("SIH", "RD", states=["SP"], years=[2023], months=[1, 2], base_url=url)
        assert again == paths and len(faults.retrs) == 2  # nothing fetched or converted again

    admissions = datasus.scan("SIH", "RD", states=["SP"], years=[2023])
    assert isinstance(admissions, pl.LazyFrame)
    assert {"N_AIH", "sexo", "idade_anos", "raca_cor", "uf_residencia", "_source_file"} <= set(
        admissions.collect_schema().names()
    )
    by_file = admissions.group_by("_source_file").len().sort("_source_file").collect()
    assert by_file.rows() == [("RDSP2301.dbc", 200), ("RDSP2302.dbc", 200)]
    raw = duckdb.sql(
        f"SELECT SEXO, count(*) FROM read_parquet({[str(p) for p in paths]}) GROUP BY 1"
    ).fetchall()
    expected_women = sum(n for sex, n in raw if sex in ("2", "3"))
    women = admissions.filter(pl.col("sexo") == "Feminino").select(pl.len()).collect().item()
    assert women == expected_women > 0
    assert set(admissions.select("sexo").unique().collect()["sexo"]) <= {"Masculino", "Feminino", None}

    january = datasus.scan("SIH", "RD", states=["SP"], years=[2023], months=[1])
    assert january.select(pl.len()).collect().item() == 200
    with pytest.raises(EtlError, match="nothing of SIH RD matching the selection is converted") as e:
        datasus.scan("SIH", "RD", states=["RJ"], years=[2023])
    assert "etl.datasus.fetch" in e.value.hint


def test_fetch_uses_the_configs_dataset_and_its_budget(notebook, tree, monkeypatch):
    with FtpServer(tree) as url:
        (notebook / "etl.toml").write_text(
            f'[etl]\ndata_dir = "store"\n\n[datasets.admissions]\nkind = "datasus"\nsystem = "SIH"\ngroup = "RD"\n'
            f'years = [2022]\nbase_url = "{url}"\n'
        )
        paths = datasus.fetch("SIH", "RD", states=["RJ"], years=[2023], months=[1], memory_limit="300MB")
        assert paths == [notebook / "store" / "parquet" / "admissions" / "RDRJ2301.parquet"]
    report = json.loads((notebook / "store" / "reports" / "last-run.json").read_text())
    assert report["command"] == "datasus fetch SIH RD" and report["memory_limit_mb"] == 300.0
    assert [(s["step"], s["status"], s["rows"]) for s in report["steps"] if s["step"] == "convert"] == [
        ("convert", "ok", 200)
    ]


def test_fetch_names_the_files_that_failed(notebook, tree):
    with FtpServer(tree, Faults(refused={"RDSP2302.dbc"})) as url:
        with pytest.raises(
            EtlError, match=r"1 of the selection's files failed: RDSP2302.dbc: .*refused"
        ) as e:
            datasus.fetch("SIH", "RD", states=["SP"], years=[2023], base_url=url)
        assert "Run the same call again" in e.value.hint
    assert datasus.scan("SIH", "RD", states=["SP"]).select(pl.len()).collect().item() == 200


@pytest.mark.parametrize("keep_raw", [True, False])
def test_a_file_published_anew_is_converted_again_and_reported(etl, tmp_path, tree, keep_raw):
    with FtpServer(tree) as url:
        (tmp_path / "etl.toml").write_text(
            f'[datasets.sih]\nkind = "datasus"\nsystem = "SIH"\ngroup = "RD"\nstates = ["SP"]\nyears = [2023]\n'
            f'base_url = "{url}"\nkeep_raw = {str(keep_raw).lower()}\n'
        )
        assert etl("run").code == 0
        first = tmp_path / "data" / "parquet" / "sih" / "RDSP2301.parquet"
        assert (tmp_path / "data" / "raw" / "sih" / "RDSP2301.dbc").exists() == keep_raw
        assert duckdb.sql(f"SELECT count(*) FROM '{first}'").fetchall() == [(200,)]

        put(tree, SIH, "RDSP2301.dbc", dbc_bytes(tmp_path / "work", "RDSP2301.dbc", "SP", 2023, 1, rows=260))
        r = etl("--json", "run")
        assert r.code == 0, r.err
        report = json.loads(r.out)
        assert report["revised"] == [{"file": "raw/sih/RDSP2301.dbc", "rows_before": 200, "rows_after": 260}]
        assert report["skipped"] == 1  # RDSP2302 is unchanged
        assert "raw/sih/RDSP2301.dbc: revised: 200 rows before, 260 now" in r.err
        assert duckdb.sql(f"SELECT count(*) FROM '{first}'").fetchall() == [(260,)]
        assert etl("sql", "SELECT count(*) AS n FROM sih", "--format", "csv").out == "n\n460\n"
        last = json.loads((tmp_path / "data" / "reports" / "last-run.json").read_text())
        assert last["revised"] == report["revised"]

        os.utime(tree / SIH / "RDSP2302.dbc", (1_700_000_000, 1_700_000_000))  # a new date, the same content
        r = etl("run")
        assert r.code == 0
        assert "revised: raw/sih/RDSP2302.dbc: 200 rows before, 200 now" in r.err

        r = etl("--json", "run")  # nothing changed since: everything skipped, nothing revised
        report = json.loads(r.out)
        assert report["revised"] == [] and report["skipped"] == 2
        assert json.loads(etl("--json", "datasus", "files", "SIH", "RD", "--changed").out)["files"] == []


def test_scan_reads_a_named_dataset_of_the_config_such_as_the_sample(etl, tmp_path):
    (tmp_path / "etl.toml").write_text('[datasets.sih]\nkind = "datasus"\nsample = true\nsample_rows = 100\n')
    assert etl("run").code == 0
    staged = datasus.scan("SIH", "RD", dataset="sih")
    by_state = staged.group_by("uf_residencia").len().sort("uf_residencia").collect().rows()
    assert by_state == etl_rows(
        etl, "SELECT uf_residencia, count(*) FROM sih.stg_internacoes GROUP BY 1 ORDER BY 1"
    )
    mg = etl_rows(etl, "SELECT 'MG', count(*) FROM sih.records WHERE _source_file LIKE 'RDMG%'")
    assert datasus.scan("SIH", "RD", ["MG"], dataset="sih").select(pl.len()).collect().item() == mg[0][1] > 0
    with pytest.raises(EtlError, match="the config has no SIH RD dataset named 'nvd'") as e:
        datasus.scan("SIH", "RD", dataset="nvd")
    assert e.value.hint == "Its datasus datasets: sih"


def etl_rows(etl, sql):
    """The rows `etl sql` gives, as tuples of text and integers."""
    lines = etl("sql", sql, "--format", "csv").out.splitlines()[1:]
    return [(a, int(b)) for a, b in (line.split(",") for line in lines)]
