"""The shared DATASUS decoding rules (sql/datasus/000_decode.sql), value by value, in DuckDB itself."""

import datetime as dt

import duckdb
import pytest

from etl.pipeline import BUILTIN_SQL
from etl.sinks.duckdb import run_sql_file


@pytest.fixture(scope="module")
def con():
    con = duckdb.connect()
    run_sql_file(con, BUILTIN_SQL / "datasus" / "000_decode.sql")
    yield con
    con.close()


def one(con, sql: str, *params):
    return con.execute(f"SELECT {sql}", list(params)).fetchone()


# SIM IDADE: a unit digit (0 minutes, 1 hours, 2 days, 3 months, 4 years, 5 years over 100, 9 unknown), then two
# digits. Under one year idade_anos is 0 and idade_dias the age in days (a month counts 30 days: '310' = 300).
@pytest.mark.parametrize(
    "code, years, days",
    [
        ("205", 0, 5),
        ("310", 0, 300),
        ("311", 0, 330),
        ("435", 35, None),
        ("400", 0, None),
        ("512", 112, None),
        ("999", None, None),
        ("030", 0, 0),  # 30 minutes
        ("112", 0, 0),  # 12 hours
        ("148", 0, 2),  # 48 hours
        ("", None, None),
        (None, None, None),
        ("4x5", None, None),
    ],
)
def test_sim_age(con, code, years, days):
    sql = "idade_anos(idade_unidade_de($1, 3), idade_valor_de($1, 3)), idade_dias(idade_unidade_de($1, 3), idade_valor_de($1, 3))"
    assert one(con, sql, code) == (years, days)


def test_sim_age_from_a_numeric_field(con):
    # An N field holds 435 as a number; a two-digit 35 would be minutes (035): width 3 restores the zero.
    assert one(con, "idade_anos(idade_unidade_de(435, 3), idade_valor_de(435, 3))") == (35,)
    assert one(con, "idade_dias(idade_unidade_de(35, 3), idade_valor_de(35, 3))") == (0,)


# SINAN NU_IDADE_N: four digits, the unit then three digits of value (microdatasus takes substr(x, 2, 3): '4035'
# would be 3 years there, not 35).
@pytest.mark.parametrize(
    "code, years, days",
    [
        (4035, 35, None),
        ("4035", 35, None),
        (3008, 0, 240),
        (2015, 0, 15),
        (1012, 0, 0),
        (4100, 100, None),
        (9999, None, None),
        (None, None, None),
    ],
)
def test_sinan_age(con, code, years, days):
    sql = "idade_anos(idade_unidade_de($1, 4), idade_valor_de($1, 4)), idade_dias(idade_unidade_de($1, 4), idade_valor_de($1, 4))"
    assert one(con, sql, None if code is None else str(code)) == (years, days)


# SIH IDADE with its unit COD_IDADE: 2 days, 3 months, 4 years, 5 years over 100.
@pytest.mark.parametrize(
    "unit, value, years, days",
    [
        ("4", 35, 35, None),
        ("2", 15, 0, 15),
        ("3", 10, 0, 300),
        ("5", 2, 102, None),
        ("0", None, 0, 0),
        ("", 40, None, None),
    ],
)
def test_sih_age(con, unit, value, years, days):
    assert one(con, "idade_anos($1, $2), idade_dias($1, $2)", unit, value) == (years, days)


@pytest.mark.parametrize(
    "code, ignored, years",
    [
        ("25", 99, 25),
        (25, 99, 25),
        ("99", 99, None),
        ("00", 99, None),
        ("", 99, None),
        ("999", 999, None),
        ("070", 999, 70),
    ],
)
def test_age_in_years(con, code, ignored, years):
    """SINASC IDADEMAE (99 unknown) and SIA PA_IDADE (999 unknown); 0 is unknown too."""
    assert one(con, "idade_em_anos($1, $2)", code, ignored) == (years,)


@pytest.mark.parametrize(
    "code, label",
    [
        ("1", "Masculino"),
        ("M", "Masculino"),
        ("m", "Masculino"),
        ("2", "Feminino"),
        ("F", "Feminino"),
        ("3", "Feminino"),
        ("0", None),
        ("9", None),
        ("I", None),
        ("", None),
        (" ", None),
        (None, None),
    ],
)
def test_sex(con, code, label):
    assert one(con, "sexo($1)", code) == (label,)


@pytest.mark.parametrize(
    "code, sim, sih",
    [
        ("1", "Branca", "Branca"),
        ("2", "Preta", "Preta"),
        ("3", "Amarela", "Parda"),  # SIM/SINASC/SINAN 3 = Amarela; SIH 03 = Parda
        ("4", "Parda", "Amarela"),
        ("5", "Indígena", "Indígena"),
        ("9", None, None),
        ("99", None, None),
        ("", None, None),
    ],
)
def test_race_by_each_systems_table(con, code, sim, sih):
    assert one(con, "raca_cor($1), raca_cor_sih($1), raca_cor_sih(lpad($1, 2, '0'))", code) == (sim, sih, sih)


@pytest.mark.parametrize(
    "macro, text, date",
    [
        ("data_ddmmaaaa", "25122023", dt.date(2023, 12, 25)),
        ("data_ddmmaaaa", "5012023", dt.date(2023, 1, 5)),  # an N field lost the day's leading zero
        ("data_ddmmaaaa", "31022023", None),
        ("data_ddmmaaaa", "00000000", None),
        ("data_ddmmaaaa", "15/05/20", None),
        ("data_ddmmaaaa", "", None),
        ("data_aaaammdd", "20231225", dt.date(2023, 12, 25)),
        ("data_aaaammdd", "20231301", None),
        ("data_aaaammdd", "00010101", None),  # a year no record has
        ("data_aaaammdd", "15/05/20", None),
        ("data_aaaammdd", "2023-01-02", dt.date(2023, 1, 2)),  # a DATE field unioned with text
        ("data_aaaammdd", None, None),
    ],
)
def test_dates(con, macro, text, date):
    assert one(con, f"{macro}($1::VARCHAR)", text) == (date,)


def test_a_date_field_passes_through(con):
    assert one(con, "data_aaaammdd(DATE '2021-01-05'), data_ddmmaaaa(DATE '2021-01-05')") == (
        dt.date(2021, 1, 5),
        dt.date(2021, 1, 5),
    )


def test_invalid_dates_are_those_with_something_that_is_no_date(con):
    rows = con.execute(
        "SELECT count_if(data_invalida(x, data_aaaammdd(x))) FROM (VALUES ('20230101'), ('20231301'), (''), (NULL), ('x')) t(x)"
    ).fetchone()
    assert rows == (2,)


def test_competence_months(con):
    assert one(
        con, "competencia_aaaamm('202306'), competencia_ano_mes('2023', '6'), competencia_aaaamm('202313')"
    ) == (
        dt.date(2023, 6, 1),
        dt.date(2023, 6, 1),
        None,
    )


def test_municipality_and_cid_codes(con):
    assert one(con, "municipio_cod6('3550308'), municipio_cod6('355030'), municipio_cod6(355030)") == (
        "355030",
        "355030",
        "355030",
    )
    assert one(con, "cid('j18.9 '), cid3('J189'), cid(''), cid('R99')") == ("J189", "J18", None, "R99")


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("sim_nao('1'), sim_nao('2'), sim_nao('9')", ("Sim", "Não", None)),
        (
            "carater_atendimento('01'), carater_atendimento('2'), carater_atendimento('99')",
            ("Eletivo", "Urgência", None),
        ),
        ("complexidade('03'), complexidade('1')", ("Alta complexidade", "Atenção básica")),
        (
            "tipo_unidade('05'), tipo_unidade('2'), tipo_unidade('74')",
            ("Hospital geral", "Centro de saúde/Unidade básica", "Polo academia da saúde"),
        ),
        (
            "motivo_saida('11'), motivo_saida('41')",
            ("Alta curado", "Óbito com DO fornecida pelo médico assistente"),
        ),
        (
            "escolaridade_anos('1'), escolaridade_anos('5'), escolaridade_anos('9')",
            ("Nenhuma", "12 anos ou mais", None),
        ),
        ("estado_civil('2'), estado_civil('9')", ("Casado", None)),
        (
            "semanas_gestacao('5'), tipo_gravidez('1'), tipo_parto('2')",
            ("37 a 41 semanas", "Única", "Cesáreo"),
        ),
    ],
)
def test_shared_code_tables(con, sql, expected):
    assert one(con, sql) == expected
