"""The generated DATASUS samples: real layouts, real codes, unequal states, seasonality, determinism."""

import duckdb
import pytest

from etl.samples.datasus import CNES_FIELDS, SAMPLES, SINAN_FIELDS, sim_age, sinan_age, write_sample
from etl.sources.dbf import parse_header
from tests.conftest import samples_dir

DATASETS = {"sih_rd": "SIH RD", "sia_pa": "SIA PA", "sim_do": "SIM DO", "sinasc_dn": "SINASC DN",
            "sinan_deng": "SINAN DENG", "cnes_st": "CNES ST"}  # fmt: skip
ROWS = 4000


def layout(path):
    with open(path, "rb") as f:  # a .dbc starts with its DBF header as is
        return [(x.name, x.type, x.length, x.decimals) for x in parse_header(f, path.name).fields]


@pytest.mark.skipif(samples_dir() is None, reason="shared samples not present")
def test_sinan_and_cnes_layouts_are_those_of_the_real_files():
    assert SINAN_FIELDS[:38] == layout(samples_dir() / "datasus/ZIKABR21.dbc")
    assert layout(samples_dir() / "datasus/STPI2206.dbc") == CNES_FIELDS


@pytest.mark.parametrize(
    ("years", "sim", "sinan"),
    [
        (25 / (365.25 * 24 * 60), "025", 1000),  # 25 minutes
        (5 / (365.25 * 24), "105", 1005),  # 5 hours
        (12 / 365.25, "212", 2012),  # 12 days
        (0.5, "306", 3006),  # six months
        (47.3, "447", 4047),
        (103.2, "503", 4103),  # SIM's unit 5 holds ages over 100; SINAN writes 103 years as 4103
    ],
)
def test_age_codes(years, sim, sinan):
    assert sim_age(years) == sim and sinan_age(years) == sinan


def test_samples_are_deterministic(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_sample(tmp_path / name, tmp_path, "SIM", "DO", rows=500)
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """All six samples at ROWS records each, run through the pipeline once."""
    import contextlib
    import io
    import os

    from etl.cli import main

    root = tmp_path_factory.mktemp("samples")
    lines = []
    for name, system_group in DATASETS.items():
        system, group = system_group.split()
        lines += [f"[datasets.{name}]", 'kind = "datasus"', "sample = true", f'system = "{system}"',
                  f'group = "{group}"', f"sample_rows = {ROWS}"]  # fmt: skip
    (root / "etl.toml").write_text("\n".join(lines) + "\n")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            assert main(["run"]) == 0, err.getvalue()
    finally:
        os.chdir(cwd)
    con = duckdb.connect(str(root / "data/warehouse.duckdb"), read_only=True)
    yield con
    con.close()


def rows(con, sql):
    return con.execute(sql).fetchall()


def test_every_system_has_its_rows_and_files_named_as_datasus_names_them(warehouse):
    for name, system_group in DATASETS.items():
        system, group = system_group.split()
        files = rows(warehouse, f"SELECT DISTINCT _source_file FROM {name}.records ORDER BY 1")
        assert rows(warehouse, f"SELECT count(*) FROM {name}.records") == [(ROWS,)]
        assert len(files) == len(SAMPLES[(system, group)].files)
    assert rows(warehouse, "SELECT DISTINCT _source_file FROM sinan_deng.records") == [("DENGBR23.dbc",)]
    assert rows(warehouse, "SELECT min(_source_file), max(_source_file) FROM sim_do.records") == [
        ("DOAM2023.dbc", "DOSP2023.dbc")
    ]


def test_states_differ_in_size(warehouse):
    by_state = rows(
        warehouse,
        "SELECT substr(_source_file, 3, 2) uf, count(*) n FROM sih_rd.records GROUP BY 1 ORDER BY n DESC",
    )
    assert [uf for uf, _ in by_state] == ["SP", "MG", "BA", "AM"]
    assert by_state[0][1] > 8 * by_state[-1][1]


@pytest.mark.parametrize(
    ("dataset", "column"),
    [("sih_rd", "MUNIC_RES"), ("sia_pa", "PA_UFMUN"), ("sim_do", "CODMUNRES"), ("sinasc_dn", "CODMUNRES"),
     ("sinan_deng", "ID_MN_RESI"), ("cnes_st", "CODUFMUN")],
)  # fmt: skip
def test_municipalities_are_real_codes_of_several_states(warehouse, dataset, column):
    unknown, states, ignored = rows(
        warehouse,
        f"SELECT count(*) FILTER (WHERE m.municipio_cod6 IS NULL), count(DISTINCT m.uf), "
        f"count(*) FILTER (WHERE m.status = 'IGNOR') FROM {dataset}.records r "
        f"LEFT JOIN ref.municipios m ON m.municipio_cod6 = r.{column}",
    )[0]
    assert unknown == 0 and states >= 4
    assert ignored > 0 or dataset in (
        "cnes_st",
        "sia_pa",
    )  # residence fields hold "ignored" codes now and then


def test_diagnoses_are_real_cid10_codes_with_a_skewed_distribution(warehouse):
    top, share, unknown = rows(
        warehouse,
        "WITH c AS (SELECT DIAG_PRINC, count(*) n FROM sih_rd.records GROUP BY 1) "
        "SELECT arg_max(DIAG_PRINC, n), max(n) / sum(n), "
        "sum(n) FILTER (WHERE DIAG_PRINC NOT IN (SELECT cid FROM ref.cid10)) FROM c",
    )[0]
    assert top == "O800" and 0.05 < share < 0.2 and unknown is None
    distinct = rows(warehouse, "SELECT count(DISTINCT CAUSABAS) FROM sim_do.records")[0][0]
    assert distinct > 300  # the common causes and a long tail
    not_in_ref = rows(
        warehouse,
        "SELECT DISTINCT CAUSABAS FROM sim_do.records WHERE CAUSABAS NOT IN (SELECT cid FROM ref.cid10)",
    )
    assert not_in_ref == [("U071",)]  # COVID-19, newer than the shared CID-10 table


def test_each_system_uses_its_own_code_tables(warehouse):
    assert {r[0] for r in rows(warehouse, "SELECT DISTINCT RACA_COR FROM sih_rd.records")} == {
        "01", "02", "03", "04", "05", "99"
    }  # fmt: skip
    for dataset, column in [("sim_do", "RACACOR"), ("sinasc_dn", "RACACOR"), ("sinan_deng", "CS_RACA")]:
        assert {r[0] for r in rows(warehouse, f"SELECT DISTINCT {column} FROM {dataset}.records")} == set(
            "123459"
        )
    units = rows(warehouse, "SELECT DISTINCT left(IDADE, 1) FROM sim_do.records ORDER BY 1")
    assert [u for (u,) in units] == ["0", "1", "2", "3", "4", "5", "9"]
    assert rows(warehouse, "SELECT DISTINCT NU_IDADE_N // 1000 FROM sinan_deng.records ORDER BY 1") == [
        (1,),
        (2,),
        (3,),
        (4,),
        (9,),
    ]
    assert {r[0] for r in rows(warehouse, "SELECT DISTINCT SEXO FROM sih_rd.records")} == {"0", "1", "3"}
    assert {r[0] for r in rows(warehouse, "SELECT DISTINCT CS_SEXO FROM sinan_deng.records")} == {
        "F",
        "I",
        "M",
    }


def test_dates_keep_each_systems_format_with_some_invalid(warehouse):
    sim_bad, sim_all = rows(
        warehouse,
        "SELECT count(*) FILTER (WHERE try_strptime(DTOBITO, '%d%m%Y') IS NULL), count(*) FROM sim_do.records",
    )[0]
    assert 0 < sim_bad < sim_all / 100  # a few impossible dates, as real files have
    sih_ok = rows(
        warehouse,
        "SELECT count(*) FILTER (WHERE try_strptime(DT_INTER, '%Y%m%d') IS NOT NULL) FROM sih_rd.records",
    )[0][0]
    assert sih_ok == ROWS
    assert rows(warehouse, "SELECT typeof(DT_NOTIFIC) FROM sinan_deng.records LIMIT 1") == [("DATE",)]


def test_months_have_seasonality(warehouse):
    by_month = dict(
        rows(warehouse, "SELECT month(DT_SIN_PRI), count(*) FROM sinan_deng.records GROUP BY 1 ORDER BY 1")
    )
    assert by_month[4] > 5 * by_month[9]  # dengue peaks in the autumn
    deaths = dict(
        rows(warehouse, "SELECT substr(DTOBITO, 3, 2), count(*) FROM sim_do.records GROUP BY 1 ORDER BY 1")
    )
    assert deaths["07"] > deaths["02"]  # deaths peak in the winter
