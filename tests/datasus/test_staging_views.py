"""Each system's staging view, built by `etl run` over .dbc files written here: row counts, decoded values, the
label policy, the data dictionary's comments and Parquet field metadata, and etl.datasus.scan."""

import datetime as dt

import duckdb
import pyarrow.parquet as pq
import pytest

from etl import datasus
from etl.config import load_config
from etl.dictionary import export_view
from etl.sources.dbc import write_dbc
from etl.sources.dbf import write_dbf
from tests.conftest import samples_dir

C = "C"

# The fields of each system's files that the views decode (real files have many more), and a few records whose
# decoded values the tests below spell out.
# fmt: off
SIM = (
    "SIM", "DO", "DOSP2023.dbc",
    [
        ("TIPOBITO", C, 1, 0), ("DTOBITO", C, 8, 0), ("DTNASC", C, 8, 0), ("IDADE", C, 3, 0), ("SEXO", C, 1, 0),
        ("RACACOR", C, 1, 0), ("ESTCIV", C, 1, 0), ("ESC", C, 1, 0), ("OCUP", C, 6, 0), ("CODMUNRES", C, 7, 0),
        ("LOCOCOR", C, 1, 0), ("CODMUNOCOR", C, 7, 0), ("CAUSABAS", C, 4, 0), ("CIRCOBITO", C, 1, 0),
        ("ACIDTRAB", C, 1, 0),
    ],
    [
        ("2", "15032023", "01011950", "473", "1", "4", "2", "4", "225125", "355030", "1", "3550308", "I219", "", ""),
        ("2", "31022023", "", "310", "2", "3", "", "", "", "3304557", "3", "330455", "R99", "", ""),
        ("1", "01062023", "", "999", "9", "9", "9", "9", "", "350000", "9", "", "P95 ", "3", "1"),
    ],
)
SIH = (
    "SIH", "RD", "RDSP2301.dbc",
    [
        ("ANO_CMPT", C, 4, 0), ("MES_CMPT", C, 2, 0), ("ESPEC", C, 2, 0), ("N_AIH", C, 13, 0), ("IDENT", C, 1, 0),
        ("MUNIC_RES", C, 6, 0), ("NASC", C, 8, 0), ("SEXO", C, 1, 0), ("DT_INTER", C, 8, 0), ("DT_SAIDA", C, 8, 0),
        ("DIAG_PRINC", C, 4, 0), ("MUNIC_MOV", C, 6, 0), ("COD_IDADE", C, 1, 0), ("IDADE", "N", 2, 0),
        ("DIAS_PERM", "N", 5, 0), ("MORTE", "N", 1, 0), ("RACA_COR", C, 2, 0), ("CAR_INT", C, 2, 0),
        ("COBRANCA", C, 2, 0), ("COMPLEX", C, 2, 0), ("VAL_TOT", "N", 14, 2),
    ],
    [
        ("2023", "01", "03", "3523100000001", "1", "355030", "19700101", "1", "20230102", "20230105", "J189",
         "355030", "4", 53, 3, 0, "03", "02", "12", "02", 1234.5),
        ("2023", "01", "02", "3523100000002", "1", "330455", "20221201", "3", "20230110", "15/05/20", "O800",
         "355030", "3", 1, 2, 0, "04", "01", "11", "02", 800.0),
        ("2023", "01", "07", "3523100000003", "5", "310620", "20230101", "0", "20230120", "20230125", "N390",
         "310620", "2", 12, 5, 1, "99", "05", "41", "03", 99.99),
    ],
)
SINASC = (
    "SINASC", "DN", "DNSP2023.dbc",
    [
        ("CODMUNNASC", C, 7, 0), ("LOCNASC", C, 1, 0), ("IDADEMAE", C, 2, 0), ("ESTCIVMAE", C, 1, 0),
        ("ESCMAE", C, 1, 0), ("CODOCUPMAE", C, 6, 0), ("CODMUNRES", C, 7, 0), ("GESTACAO", C, 1, 0),
        ("GRAVIDEZ", C, 1, 0), ("PARTO", C, 1, 0), ("CONSULTAS", C, 1, 0), ("DTNASC", C, 8, 0), ("SEXO", C, 1, 0),
        ("RACACOR", C, 1, 0), ("PESO", C, 4, 0), ("IDANOMAL", C, 1, 0), ("CODANOMAL", C, 4, 0),
    ],
    [
        ("3550308", "1", "28", "2", "5", "223505", "3550308", "5", "1", "2", "4", "02032023", "2", "4", "3250",
         "2", ""),
        ("3304557", "3", "99", "9", "9", "", "330455", "4", "2", "1", "2", "30022023", "1", "3", "2100", "1",
         "Q909"),
    ],
)
SINAN = (
    "SINAN", "DENG", "DENGBR23.dbc",
    [
        ("TP_NOT", C, 1, 0), ("ID_AGRAVO", C, 4, 0), ("DT_NOTIFIC", "D", 8, 0), ("ID_MUNICIP", C, 6, 0),
        ("DT_SIN_PRI", "D", 8, 0), ("NU_IDADE_N", "N", 4, 0), ("CS_SEXO", C, 1, 0), ("CS_GESTANT", C, 1, 0),
        ("CS_RACA", C, 1, 0), ("CS_ESCOL_N", C, 2, 0), ("ID_MN_RESI", C, 6, 0), ("CLASSI_FIN", C, 2, 0),
        ("CRITERIO", C, 1, 0), ("EVOLUCAO", C, 1, 0), ("DT_OBITO", "D", 8, 0),
    ],
    [
        ("2", "A90", "20230110", "291480", "20230107", 4035, "F", "2", "4", "06", "291480", "11", "1", "1", ""),
        ("2", "A90", "20230111", "355030", "20230108", 3008, "M", "6", "3", "10", "330455", "5", "2", "9", ""),
        ("2", "A90", "20230112", "355030", "20230101", 4080, "I", "9", "9", "00", "355030", "12", "1", "2",
         "20230120"),
    ],
)
SIA = (
    "SIA", "PA", "PASP2301.dbc",
    [
        ("PA_CODUNI", C, 7, 0), ("PA_UFMUN", C, 6, 0), ("PA_TPUPS", C, 2, 0), ("PA_CMP", C, 6, 0),
        ("PA_PROC_ID", C, 10, 0), ("PA_TPFIN", C, 2, 0), ("PA_NIVCPL", C, 1, 0), ("PA_DOCORIG", C, 1, 0),
        ("PA_CBOCOD", C, 6, 0), ("PA_CIDPRI", C, 4, 0), ("PA_CATEND", C, 2, 0), ("PA_IDADE", C, 3, 0),
        ("PA_SEXO", C, 1, 0), ("PA_RACACOR", C, 2, 0), ("PA_MUNPCN", C, 6, 0), ("PA_QTDAPR", "N", 11, 0),
        ("PA_VALAPR", "N", 20, 2),
    ],
    [
        ("2077485", "355030", "05", "202301", "0301010072", "06", "2", "I", "225125", "I219", "02", "066", "M",
         "03", "355030", 1, 10.0),
        ("2077485", "355030", "36", "202301", "0202010473", "04", "3", "P", "", "0000", "01", "999", "F", "04",
         "330455", 2, 5.5),
    ],
)
CNES = (
    "CNES", "ST", "STSP2301.dbc",
    [
        ("CNES", C, 7, 0), ("CODUFMUN", C, 6, 0), ("PF_PJ", C, 1, 0), ("NIV_DEP", C, 1, 0), ("VINC_SUS", C, 1, 0),
        ("TPGESTAO", C, 1, 0), ("ESFERA_A", C, 2, 0), ("CLIENTEL", C, 2, 0), ("TP_UNID", C, 2, 0),
        ("TURNO_AT", C, 2, 0), ("COMPETEN", C, 6, 0),
    ],
    [
        ("2077485", "355030", "3", "3", "1", "M", "03", "03", "05", "02", "202301"),
        ("9999999", "350000", "1", "1", "0", "E", "04", "01", "22", "04", "202313"),
    ],
)
# fmt: on
VIEWS = {
    "SIM": "stg_obitos",
    "SIH": "stg_internacoes",
    "SINASC": "stg_nascidos_vivos",
    "SINAN": "stg_notificacoes",
    "SIA": "stg_producao_ambulatorial",
    "CNES": "stg_estabelecimentos",
}
ALL = [SIM, SIH, SINASC, SINAN, SIA, CNES]


def stage(etl, tmp_path, spec, labels="text"):
    """Write the spec's rows as a .dbc, run etl over it, and return a read-only warehouse connection."""
    system, group, name, fields, rows = spec
    raw = tmp_path / "in"
    raw.mkdir(exist_ok=True)
    write_dbf(tmp_path / "x.dbf", fields, rows)
    write_dbc(tmp_path / "x.dbf", raw / name)
    (tmp_path / "etl.toml").write_text(
        f'[datasets.ds]\nkind = "datasus"\nsystem = "{system}"\ngroup = "{group}"\n'
        f'paths = ["in/{name}"]\nlabels = "{labels}"\n'
    )
    r = etl("run")
    assert r.code == 0, r.err
    return duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True)


def rows(con, view, columns):
    return con.execute(f"SELECT {', '.join(columns)} FROM ds.{view} ORDER BY _source_row").fetchall()


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s[0])
def test_every_row_staged_once_and_every_decoded_column_described(etl, tmp_path, spec):
    con = stage(etl, tmp_path, spec)
    view = VIEWS[spec[0]]
    assert con.execute(f"SELECT count(*) FROM ds.{view}").fetchone() == (len(spec[4]),)
    columns = con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'ds' AND table_name = ?",
        [view],
    ).fetchall()
    names = [c for c, _ in columns]
    fields = [f[0] for f in spec[3]]
    assert [c for c in names if c in fields] == [
        f for f in fields if f in names
    ]  # the file's columns, in order
    decoded = [(c, note) for c, note in columns if c == c.lower() and not c.startswith("_")]
    assert decoded and all(note and " / " in note for _, note in decoded), [c for c, n in decoded if not n]
    assert con.execute("SELECT count(*) FROM ds.datas_invalidas").fetchone()[0] >= 1


def test_sim(etl, tmp_path):
    con = stage(etl, tmp_path, SIM)
    cols = [
        "dt_obito",
        "dt_nascimento",
        "idade_anos",
        "idade_dias",
        "sexo",
        "SEXO_COD",
        "raca_cor",
        "tipo_obito",
        "local_ocorrencia",
        "estado_civil",
        "escolaridade",
        "ocupacao",
        "municipio_residencia_ibge7",
        "municipio_residencia_nome",
        "uf_residencia",
        "municipio_ocorrencia_nome",
        "causa_basica_descricao",
        "causa_basica_capitulo",
        "circunstancia_obito",
        "acidente_trabalho",
    ]
    first, second, third = rows(con, "stg_obitos", cols)
    assert first == (
        dt.date(2023, 3, 15),
        dt.date(1950, 1, 1),
        73,
        None,
        "Masculino",
        "1",
        "Parda",
        "Não fetal",
        "Hospital",
        "Casado",
        "8 a 11 anos",
        "Medico clinico",
        "3550308",
        "São Paulo",
        "SP",
        "São Paulo",
        "Infarto agudo do miocárdio não especificado",
        "Capítulo IX - Doenças do aparelho circulatório",
        None,
        None,
    )
    # 31/02 is no date; IDADE 310 = 10 months; RACACOR 3 is Amarela in SIM; a 7-digit municipality joins too.
    assert second[:7] == (None, None, 0, 300, "Feminino", "2", "Amarela")
    assert second[12:15] == ("3304557", "Rio de Janeiro", "RJ")
    assert (
        second[16] == "Outras causas mal definidas e as não especificadas de mortalidade"
    )  # a category (R99)
    # Unknown age, sex and race are NULL; 350000 is "ignored, SP"; P95 is a category given with a blank.
    assert third[2:7] == (None, None, None, "9", None)
    assert third[7] == "Fetal" and third[12:15] == (None, "Município ignorado - SP", "SP")
    assert third[16] == "Morte fetal de causa não especificada" and third[18:] == ("Homicídio", "Sim")
    assert dict(con.execute("SELECT coluna, invalidas FROM ds.datas_invalidas").fetchall()) == {
        "dt_obito": 1,
        "dt_nascimento": 0,
    }


def test_sih(etl, tmp_path):
    con = stage(etl, tmp_path, SIH)
    cols = [
        "competencia",
        "dt_internacao",
        "DT_SAIDA",
        "idade_anos",
        "idade_dias",
        "sexo",
        "raca_cor",
        "RACA_COR_COD",
        "obito",
        "municipio_residencia_nome",
        "uf_residencia",
        "municipio_estabelecimento_ibge7",
        "cid_principal_descricao",
        "cid_principal_capitulo",
        "especialidade",
        "carater_internacao",
        "motivo_saida",
        "complexidade",
        "tipo_aih",
    ]
    got = rows(con, "stg_internacoes", cols)
    assert got[0] == (
        dt.date(2023, 1, 1),
        dt.date(2023, 1, 2),
        dt.date(2023, 1, 5),
        53,
        None,
        "Masculino",
        "Parda",
        "03",
        False,
        "São Paulo",
        "SP",
        "3550308",
        "Pneumonia não especificada",
        "Capítulo X - Doenças do aparelho respiratório",
        "Clínico",
        "Urgência",
        "Alta melhorado",
        "Média complexidade",
        "Principal",
    )
    # COD_IDADE 3 = months: 1 month = 30 days; SIH's 04 is Amarela; 15/05/20 is no date.
    assert got[1][2:8] == (None, 0, 30, "Feminino", "Amarela", "04")
    assert got[1][12] == "Parto espontâneo cefálico" and got[1][14:16] == ("Obstétrico", "Eletivo")
    assert got[2][3:9] == (0, 12, None, None, "99", True)
    assert got[2][14:] == (
        "Pediátrico",
        "Outros tipos de acidente de trânsito",
        "Óbito com DO fornecida pelo médico assistente",
        "Alta complexidade",
        "Longa permanência",
    )
    assert dict(con.execute("SELECT coluna, invalidas FROM ds.datas_invalidas").fetchall()) == {
        "dt_internacao": 0,
        "DT_SAIDA": 1,
        "dt_nascimento": 0,
    }
    assert con.execute(
        "SELECT internacoes, obitos FROM ds.internacoes_por_mes WHERE uf_residencia = 'MG'"
    ).fetchall() == [(1, 1)]


def test_sinasc(etl, tmp_path):
    con = stage(etl, tmp_path, SINASC)
    cols = [
        "dt_nascimento",
        "idade_mae_anos",
        "sexo",
        "raca_cor",
        "local_nascimento",
        "estado_civil_mae",
        "escolaridade_mae",
        "ocupacao_mae",
        "semanas_gestacao",
        "tipo_gravidez",
        "tipo_parto",
        "consultas_prenatal",
        "anomalia_congenita",
        "anomalia_descricao",
        "municipio_residencia_nome",
        "municipio_nascimento_ibge7",
        "PESO",
        "RACACOR",
    ]
    first, second = rows(con, "stg_nascidos_vivos", cols)
    assert first == (
        dt.date(2023, 3, 2),
        28,
        "Feminino",
        "Parda",
        "Hospital",
        "Casado",
        "12 anos ou mais",
        "Enfermeiro",
        "37 a 41 semanas",
        "Única",
        "Cesáreo",
        "7 ou mais",
        "Não",
        None,
        "São Paulo",
        "3550308",
        "3250",
        "4",
    )
    # RACACOR stays the newborn's (microdatasus overwrote it from PESO); 30/02 is no date; mother's age 99 unknown.
    assert second == (
        None,
        None,
        "Masculino",
        "Amarela",
        "Domicílio",
        None,
        None,
        None,
        "32 a 36 semanas",
        "Dupla",
        "Vaginal",
        "1 a 3",
        "Sim",
        "Síndrome de Down não especificada",
        "Rio de Janeiro",
        "3304557",
        "2100",
        "3",
    )


def test_sinan(etl, tmp_path):
    con = stage(etl, tmp_path, SINAN)
    cols = [
        "dt_notificacao",
        "dt_primeiros_sintomas",
        "DT_OBITO",
        "idade_anos",
        "idade_dias",
        "sexo",
        "raca_cor",
        "agravo",
        "gestante",
        "escolaridade",
        "classificacao_final",
        "criterio_confirmacao",
        "evolucao_caso",
        "municipio_notificacao_nome",
        "municipio_residencia_ibge7",
        "uf_residencia",
    ]
    got = rows(con, "stg_notificacoes", cols)
    assert got[0] == (
        dt.date(2023, 1, 10),
        dt.date(2023, 1, 7),
        None,
        35,
        None,
        "Feminino",
        "Parda",
        "Dengue [dengue clássico]",
        "2º trimestre",
        "Ensino médio completo",
        "Dengue com sinais de alarme",
        "Laboratorial",
        "Cura",
        "Itabuna",
        "2914802",
        "BA",
    )
    assert got[1][3:7] == (0, 240, "Masculino", "Amarela")
    assert got[1][8:13] == ("Não se aplica", "Não se aplica", "Descartado", "Clínico-epidemiológico", None)
    assert got[2][2:7] == (dt.date(2023, 1, 20), 80, None, None, None)
    assert got[2][8:13] == (
        None,
        "Analfabeto",
        "Dengue grave",
        "Laboratorial",
        "Óbito pelo agravo notificado",
    )


def test_sia(etl, tmp_path):
    con = stage(etl, tmp_path, SIA)
    cols = [
        "competencia",
        "idade_anos",
        "sexo",
        "raca_cor",
        "tipo_unidade",
        "tipo_financiamento",
        "complexidade",
        "instrumento_registro",
        "carater_atendimento",
        "ocupacao_profissional",
        "cid_principal_descricao",
        "municipio_residencia_nome",
        "uf_estabelecimento",
    ]
    assert rows(con, "stg_producao_ambulatorial", cols) == [
        (
            dt.date(2023, 1, 1),
            66,
            "Masculino",
            "Parda",
            "Hospital geral",
            "Média e alta complexidade (MAC)",
            "Média complexidade",
            "BPA individualizado",
            "Urgência",
            "Medico clinico",
            "Infarto agudo do miocárdio não especificado",
            "São Paulo",
            "SP",
        ),
        (
            dt.date(2023, 1, 1),
            None,
            "Feminino",
            "Amarela",
            "Clínica/Centro de especialidade",
            "Fundo de Ações Estratégicas e Compensações (FAEC)",
            "Alta complexidade",
            "APAC - procedimento principal",
            "Eletivo",
            None,
            None,
            "Rio de Janeiro",
            "SP",
        ),
    ]


def test_cnes(etl, tmp_path):
    con = stage(etl, tmp_path, CNES)
    cols = [
        "competencia",
        "municipio_ibge7",
        "municipio_nome",
        "uf",
        "tipo_unidade",
        "tipo_gestao",
        "esfera_administrativa",
        "pessoa_fisica_juridica",
        "nivel_dependencia",
        "vinculo_sus",
        "fluxo_clientela",
        "turno_atendimento",
    ]
    assert rows(con, "stg_estabelecimentos", cols) == [
        (
            dt.date(2023, 1, 1),
            "3550308",
            "São Paulo",
            "SP",
            "Hospital geral",
            "Municipal",
            "Municipal",
            "Pessoa jurídica",
            "Mantida",
            "Sim",
            "Atendimento de demanda espontânea e referenciada",
            "Contínuo 24h/dia (plantão: sábados, domingos e feriados)",
        ),
        (
            None,
            None,
            "Município ignorado - SP",
            "SP",
            "Consultório isolado",
            "Estadual",
            "Privada",
            "Pessoa física",
            "Individual",
            "Não",
            "Atendimento de demanda espontânea",
            "Manhã",
        ),
    ]
    assert con.execute("SELECT coluna, invalidas FROM ds.datas_invalidas").fetchall() == [("competencia", 1)]


def test_labels_codes_keeps_the_files_columns_and_the_derived_ones(etl, tmp_path):
    con = stage(etl, tmp_path, SIH, labels="codes")
    names = [r[0] for r in con.execute("DESCRIBE ds.stg_internacoes").fetchall()]
    fields = [f[0] for f in SIH[3]]
    assert [n for n in names if n in fields] == fields  # SEXO and RACA_COR under their own names again
    assert "sexo" not in names and "raca_cor" not in names and "cid_principal_descricao" not in names
    assert {
        "competencia",
        "dt_internacao",
        "idade_anos",
        "idade_dias",
        "municipio_residencia_ibge7",
        "uf_residencia",
        "obito",
    } <= set(names)
    assert not [n for n in names if n in ("especialidade", "municipio_residencia_nome", "SEXO_COD")]
    assert con.execute(
        "SELECT SEXO, RACA_COR, idade_anos FROM ds.stg_internacoes ORDER BY _source_row"
    ).fetchall() == [("1", "03", 53), ("3", "04", 0), ("0", "99", 0)]
    comment = con.execute(
        "SELECT comment FROM duckdb_columns() WHERE table_name = 'stg_internacoes' AND column_name = 'SEXO'"
    ).fetchone()[0]
    assert comment.startswith("Sexo, como no arquivo")
    # The marts read codes and derived columns only, so they build under either policy.
    assert con.execute("SELECT sum(internacoes) FROM ds.internacoes_por_mes").fetchone() == (3,)


def test_labels_must_be_text_or_codes(etl, tmp_path):
    (tmp_path / "etl.toml").write_text('[datasets.ds]\nkind = "datasus"\nsample = true\nlabels = "names"\n')
    r = etl("run")
    assert r.code != 0 and 'labels must be "text" or "codes", not \'names\'' in r.err


def test_export_writes_descriptions_as_parquet_field_metadata(etl, tmp_path):
    stage(etl, tmp_path, SIM)
    settings = load_config(tmp_path / "etl.toml").settings
    con = duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True)
    out = tmp_path / "obitos.parquet"
    assert export_view(con, "ds", "stg_obitos", out, settings) == 3
    schema = pq.read_schema(out)
    assert (
        schema.field("raca_cor").metadata[b"description"]
        == "Raça/cor (tabela do SIM) / Race/colour (SIM's table)".encode()
    )
    assert schema.field("DTOBITO").metadata[b"description"].startswith(b"Data do \xc3\xb3bito")
    assert pq.read_table(out).column("raca_cor").to_pylist() == ["Parda", "Amarela", None]


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s[0])
def test_scan_returns_the_staged_columns(etl, tmp_path, spec):
    con = stage(etl, tmp_path, spec)
    view = VIEWS[spec[0]]
    expected = [r[0] for r in con.execute(f"DESCRIBE ds.{view}").fetchall()]
    con.close()
    frame = datasus.scan(spec[0], spec[1], config=tmp_path / "etl.toml", dataset="ds")
    assert frame.collect_schema().names() == expected
    assert frame.collect().height == len(spec[4])


@pytest.mark.skipif(samples_dir() is None, reason="needs ../shared/samples")
@pytest.mark.parametrize(
    "name, system, group, view, rows",
    [
        ("ZIKABR21.dbc", "SINAN", "ZIKA", "stg_notificacoes", 19090),
        ("STPI2206.dbc", "CNES", "ST", "stg_estabelecimentos", 4068),
    ],
)
def test_real_files(etl, tmp_path, name, system, group, view, rows):
    (tmp_path / "etl.toml").write_text(
        f'[datasets.ds]\nkind = "datasus"\nsystem = "{system}"\ngroup = "{group}"\n'
        f'paths = ["{samples_dir() / "datasus" / name}"]\n'
    )
    assert etl("run").code == 0
    con = duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True)
    assert con.execute(f"SELECT count(*) FROM ds.{view}").fetchone() == (rows,)
    if system == "SINAN":
        # NU_IDADE_N 3008 = 8 months; every notification has an age, a municipality and the disease's name.
        first = con.execute(
            "SELECT idade_anos, idade_dias, municipio_notificacao_nome, agravo FROM ds.stg_notificacoes WHERE _source_row = 1"
        ).fetchone()
        assert first == (0, 240, "Itabuna", "Outras febres virais especificadas transmitidas por mosquitos")
        assert (
            con.execute(
                "SELECT count(*) FROM ds.stg_notificacoes WHERE municipio_notificacao_ibge7 IS NULL OR sexo IS NULL"
            ).fetchone()[0]
            < rows * 0.01
        )
    else:
        assert con.execute(
            "SELECT count(*) FROM ds.stg_estabelecimentos WHERE municipio_nome IS NULL OR tipo_unidade IS NULL"
        ).fetchone() == (0,)
