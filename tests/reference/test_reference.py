import csv
from pathlib import Path

import duckdb
import pytest

from etl.reference import TABLES, data_file, load_reference
from etl.reference.build import DEFAULT_SOURCE, build

SHARED = DEFAULT_SOURCE if DEFAULT_SOURCE.is_dir() else None
needs_shared = pytest.mark.skipif(SHARED is None, reason="../shared/reference is not beside this checkout")


def csv_rows(name: str) -> list[dict]:
    with open(SHARED / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def ref():
    con = duckdb.connect()
    load_reference(con)
    yield con
    con.close()


@needs_shared
def test_shipped_tables_have_the_shared_files_row_counts(ref):
    datasus = {r["municipio_cod6"] for r in csv_rows("datasus_municipios.csv")}
    ibge = {r["municipio_ibge6"] for r in csv_rows("ibge_municipios_2024.csv")}
    categories = csv_rows("cid10_categorias.csv")
    subcategories = csv_rows("cid10_subcategorias.csv")
    expected = {
        "ufs": len({r["uf_code"] for r in csv_rows("ibge_municipios_2024.csv")}),
        "municipios": len(datasus | ibge),  # DATASUS's 5,659 codes and IBGE's one newer municipality
        "cid10_capitulos": len(csv_rows("cid10_capitulos.csv")),
        "cid10_categorias": len(categories),
        "cid10_subcategorias": len(subcategories),
        "cid10": len(categories) + sum(len(r["cid4"]) == 4 for r in subcategories),
        "cbo": len(csv_rows("cbo2002.csv")),
    }
    shipped = {t: ref.execute(f"SELECT count(*) FROM ref.{t}").fetchone()[0] for t in TABLES}
    assert shipped == expected
    assert expected["municipios"] == 5660 and expected["cid10"] == 14233


@needs_shared
def test_rebuilding_from_the_shared_files_gives_the_shipped_rows(tmp_path):
    counts = build(SHARED, tmp_path)
    con = duckdb.connect()
    for table in TABLES:
        shipped, rebuilt = (f"read_parquet('{p}')" for p in (data_file(table), tmp_path / f"{table}.parquet"))
        differ = con.execute(
            f"SELECT count(*) FROM ((FROM {shipped} EXCEPT ALL FROM {rebuilt}) "
            f"UNION ALL (FROM {rebuilt} EXCEPT ALL FROM {shipped}))"
        ).fetchone()[0]
        assert differ == 0, (
            f"{table}: the shipped data differs from a rebuild; run python -m etl.reference.build"
        )
        assert con.execute(f"SELECT count(*) FROM {shipped}").fetchone()[0] == counts[table]


def test_build_names_a_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="cbo2002.csv: missing reference CSV"):
        build(tmp_path / "nowhere", tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_municipalities_keep_text_codes_and_join_ibge(ref):
    rows = ref.execute(
        "SELECT municipio_cod6, municipio_ibge7, municipio_nome, uf, uf_codigo, uf_nome, regiao, status, tipo "
        "FROM ref.municipios WHERE municipio_cod6 IN ('000000', '350000', '355030', '110001', '520040', '510183') "
        "ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("000000", None, "Ignorado ou exterior", None, None, None, None, "IGNOR", "IGNOR"),
        ("110001", "1100015", "Alta Floresta D'Oeste", "RO", "11", "Rondônia", "Norte", "ATIVO", "MUNIC"),
        ("350000", None, "Município ignorado - SP", "SP", "35", "São Paulo", "Sudeste", "IGNOR", "IGNOR"),
        ("355030", "3550308", "São Paulo", "SP", "35", "São Paulo", "Sudeste", "ATIVO", "MUNIC"),
        (
            "510183",
            "5101837",
            "Boa Esperança do Norte",
            "MT",
            "51",
            "Mato Grosso",
            "Centro-Oeste",
            None,
            None,
        ),
        ("520040", None, "Almas (transf. p/TO)", "GO", "52", "Goiás", "Centro-Oeste", "TRANSF", "MUNIC"),
    ]
    # transferred municipalities have no coordinates rather than 0.0
    assert ref.execute(
        "SELECT latitude, longitude, area_km2 FROM ref.municipios WHERE municipio_cod6 = '520040'"
    ).fetchone() == (None, None, None)
    types = dict(
        ref.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'ref' AND table_name = 'municipios'"
        ).fetchall()
    )
    assert types["municipio_cod6"] == types["municipio_ibge7"] == types["uf_codigo"] == "VARCHAR"
    assert ref.execute("SELECT count(DISTINCT municipio_cod6) = count(*) FROM ref.municipios").fetchone() == (
        True,
    )
    assert ref.execute("SELECT regiao, count(*) FROM ref.ufs GROUP BY 1 ORDER BY 1").fetchall() == [
        ("Centro-Oeste", 4),
        ("Nordeste", 9),
        ("Norte", 7),
        ("Sudeste", 4),
        ("Sul", 3),
    ]


def test_cid10_lookup_has_each_code_once_with_its_chapter(ref):
    assert ref.execute(
        "SELECT cid, descricao, capitulo, cid3 FROM ref.cid10 WHERE cid IN ('A09', 'I219', 'V01', 'U049') ORDER BY 1"
    ).fetchall() == [
        ("A09", "Diarréia e gastroenterite de origem infecciosa presumível", 1, "A09"),
        ("I219", "Infarto agudo do miocárdio não especificado", 9, "I21"),
        (
            "U049",
            "Síndrome respiratória aguda grave [Severe acute respiratory syndrome) [SARS], não especificada",
            22,
            "U04",
        ),
        ("V01", "Pedestre traumatizado em colisão com um veículo a pedal", 20, "V01"),
    ]
    assert ref.execute(
        "SELECT count(*) = count(DISTINCT cid), count(*) FILTER (WHERE capitulo IS NULL) FROM ref.cid10"
    ).fetchone() == (True, 0)
    assert ref.execute(
        "SELECT restr_sexo, causa_obito FROM ref.cid10_subcategorias WHERE cid4 = 'A34'"
    ).fetchone() == ("F", None)
    assert ref.execute("SELECT nome FROM ref.cbo WHERE cbo_cod = '010105'").fetchone() == (
        "Oficial General da Aeronautica",
    )


def test_every_warehouse_build_has_ref_before_the_transforms(etl, tmp_path):
    (tmp_path / "etl.toml").write_text('[datasets.deaths]\nkind = "csv"\npaths = ["d.csv"]\n')
    (tmp_path / "d.csv").write_text("codmunres,causabas\n355030,I219\n000000,R99\n330455,XXX9\n")
    (tmp_path / "sql/deaths").mkdir(parents=True)
    (tmp_path / "sql/deaths/010_named.sql").write_text(
        "CREATE VIEW named AS SELECT m.municipio_nome, m.uf, c.capitulo FROM records r "
        "LEFT JOIN ref.municipios m ON m.municipio_cod6 = CAST(r.codmunres AS VARCHAR) "
        "LEFT JOIN ref.cid10 c ON c.cid = r.causabas ORDER BY ALL;"
    )
    assert etl("run").code == 0
    con = duckdb.connect(str(Path(tmp_path) / "data/warehouse.duckdb"), read_only=True)
    assert con.sql("SELECT * FROM deaths.named").fetchall() == [
        ("Ignorado ou exterior", None, 18),
        ("Rio de Janeiro", "RJ", None),
        ("São Paulo", "SP", 9),
    ]
    comment = con.execute(
        "SELECT comment FROM duckdb_views() WHERE schema_name = 'ref' AND view_name = 'cbo'"
    )
    assert "CBO 2002" in comment.fetchone()[0]
