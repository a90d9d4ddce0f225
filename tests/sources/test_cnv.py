"""The TabWin .CNV reader: the three real files DATASUS ships, ranges, lists, overlaps, malformed lines, datasets."""

import zipfile

import duckdb
import pyarrow.parquet as pq
import pytest

from etl.errors import ConversionError
from etl.sources.cnv import read_batches
from tests.conftest import REPO, TEST_BUDGET_MB, etl_measured

TABWIN = REPO.parent / "shared" / "reference" / "tabwin"
needs_tabwin = pytest.mark.skipif(
    not TABWIN.is_dir(), reason="../shared/reference/tabwin is not beside this checkout"
)


def cnv_line(number: int, label: str, codes: str) -> str:
    """A category line laid out as TabWin writes it: number in columns 1-7, label 10-60, codes from 61."""
    return f"{number:>7}  {label:<51}{codes}"


def write_cnv(path, header: str, lines: list[str]) -> None:
    path.write_bytes(("\r\n".join([header, *lines]) + "\r\n").encode("latin-1"))


def table(path, **options) -> dict[str, list]:
    rows = [r for b in read_batches(path, **options) for r in b.to_pylist()]
    return {r["codigo"]: (r["rotulo"], r["categoria"], r["_source_row"]) for r in rows} | {"_n": len(rows)}


@needs_tabwin
def test_the_three_real_files_give_one_row_per_code():
    cbo = table(TABWIN / "CBO2002.CNV")
    assert cbo["_n"] == 2428
    assert cbo["010105"] == ("Oficial General da Aeronáutica", 1, 2)  # latin-1, leading zero kept
    assert cbo["999992"] == ("Dona de Casa", 2424, 2425)
    assert cbo[""] == (
        "Nao informada",
        2428,
        2429,
    )  # `      ,` labels blank values (the file's last line has no CRLF)
    natur = table(TABWIN / "NATUR.CNV")
    assert natur["_n"] == 290  # 293 categories; 3 codes listed twice
    assert natur["851"] == ("MATO GROSSO", 289, 290)
    assert natur["044"] == ("LAOS", 44, 45)  # CAMBOJA on line 44 lists 044 too: the later line wins
    assert natur[""] == ("N Inf", 293, 294)
    ocupacao = table(TABWIN / "OCUPACAO.CNV")
    assert ocupacao["_n"] == 1000  # `Ignorado 000-999` expanded, then overridden by the specific codes
    assert ocupacao["000"] == ocupacao["123"] == ("Ignorado", 351, 2)
    assert ocupacao["001"] == ("Procura prim emprego", 1, 3)
    assert ocupacao["999"] == ("Out trab bracais", 350, 352)


@needs_tabwin
def test_overlaps_all_keeps_every_pair():
    rows = [r for b in read_batches(TABWIN / "NATUR.CNV", overlaps="all") for r in b.to_pylist()]
    assert len(rows) == 293
    assert sorted(r["rotulo"] for r in rows if r["codigo"] == "044") == ["CAMBOJA", "LAOS"]


def test_lists_numeric_and_alphanumeric_ranges(tmp_path):
    path = tmp_path / "CID.CNV"
    write_cnv(
        path,
        "4 4",
        [
            cnv_line(1, "Algumas doenças infecciosas", "A00-B99"),
            cnv_line(2, "Neoplasias", "C000-C009,C01,D48"),
            cnv_line(3, "Códigos 90 a 95", "0090-0095, 0099"),
            cnv_line(4, "Não informado", "    ,"),
            cnv_line(5, "Reticências\x85 em cp1252", "9999"),  # byte 0x85 is no line break
        ],
    )
    t = table(path)
    assert t["_n"] == 200 + 12 + 7 + 1 + 1
    assert t["A00"] == t["A99"] == t["B00"] == t["B99"] == ("Algumas doenças infecciosas", 1, 2)
    assert "A9A" not in t and "C00" not in t
    assert t["C005"] == ("Neoplasias", 2, 3) and t["D48"][0] == "Neoplasias"
    assert [c for c in t if c.startswith("00")] == ["0090", "0091", "0092", "0093", "0094", "0095", "0099"]
    assert t[""] == ("Não informado", 4, 5)
    assert t["9999"] == ("Reticências\x85 em cp1252", 5, 6)


def bad_file(tmp_path):
    path = tmp_path / "BAD.CNV"
    write_cnv(
        path,
        "6 3",
        [
            cnv_line(1, "Bom", "001"),
            cnv_line(2, "Tamanhos diferentes", "01-100"),
            cnv_line(3, "Invertido", "020-010"),
            "  sem numero nem codigos",
            cnv_line(5, "Largo demais", "000-999"),
            cnv_line(6, "Bom também", "002,003"),
        ],
    )
    return path


def test_a_malformed_line_is_an_error_naming_file_and_line(tmp_path):
    with pytest.raises(ConversionError, match=r"BAD.CNV.*line 3: range 01-100: its ends differ in length"):
        list(read_batches(bad_file(tmp_path)))


def test_convert_rejects_malformed_lines_with_their_line_and_reason(etl, tmp_path):
    path = bad_file(tmp_path)
    r = etl("--json", "convert", "cnv", path, "--out", tmp_path / "out", "--max-range", "500")
    assert r.code == 0, r.err
    assert [r for r in pq.read_table(tmp_path / "out/BAD.parquet").to_pylist()] == [
        {"codigo": "001", "rotulo": "Bom", "categoria": 1, "_source_file": "BAD.CNV", "_source_row": 2},
        {
            "codigo": "002",
            "rotulo": "Bom também",
            "categoria": 6,
            "_source_file": "BAD.CNV",
            "_source_row": 7,
        },
        {
            "codigo": "003",
            "rotulo": "Bom também",
            "categoria": 6,
            "_source_file": "BAD.CNV",
            "_source_row": 7,
        },
    ]
    rejects = pq.read_table(tmp_path / "out/_rejects/BAD.parquet").to_pylist()
    assert [(x["line"], x["reason"]) for x in rejects] == [
        (3, "range 01-100: its ends differ in length"),
        (4, "range 020-010: its start comes after its end"),
        (5, "no category number in columns 1-9"),
        (6, "range 000-999 covers 1,000 codes, more than max_range = 500"),
    ]
    assert rejects[2]["raw"] == "  sem numero nem codigos"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x01\x02binary", "a binary file, not a TabWin .CNV"),
        (b"codigo;nome\r\n1;a\r\n", "line 1: the header 'codigo;nome' is not '<categories> <width> "),
    ],
)
def test_not_a_cnv_fails_the_file_with_its_name(etl, tmp_path, content, message):
    (tmp_path / "X.CNV").write_bytes(content)
    r = etl("convert", "cnv", tmp_path / "X.CNV", "--out", tmp_path / "out")
    assert r.code == 1 and "X.CNV" in r.err and message in r.err
    assert not (tmp_path / "out" / "X.parquet").exists()


def test_a_dataset_of_cnv_files_and_an_auxiliar_zip_joins_in_the_warehouse(etl, tmp_path):
    write_cnv(tmp_path / "SEXO.CNV", "3 1", [cnv_line(1, "Masculino", "1"), cnv_line(2, "Feminino", "2,3"),
                                             cnv_line(3, "Ignorado", "0,9, ,")])  # fmt: skip
    with zipfile.ZipFile(tmp_path / "TAB_SIH.zip", "w") as zf:
        for name, lines in [("CNV/CARATER.CNV", [cnv_line(1, "Eletivo", "01"), cnv_line(2, "Urgência", "02-06")]),
                            ("CNV/ESPEC.CNV", [cnv_line(1, "Cirúrgico", "01")]), ("DEF/RD.DEF", ["x"])]:  # fmt: skip
            zf.writestr(name, ("\r\n".join([f"{len(lines)} 2", *lines]) + "\r\n").encode("latin-1"))
    (tmp_path / "etl.toml").write_text(
        '[datasets.sexo]\nkind = "cnv"\npaths = ["SEXO.CNV"]\n[datasets.tab_sih]\nkind = "cnv"\npaths = ["TAB_SIH.zip"]\n'
    )
    assert etl("run").code == 0
    con = duckdb.connect(str(tmp_path / "data/warehouse.duckdb"), read_only=True)
    assert con.sql(
        "SELECT s.rotulo, count(*) FROM (VALUES ('1'), ('3'), ('2'), (''), ('9')) t(sexo) "
        "JOIN sexo s ON s.codigo = t.sexo GROUP BY 1 ORDER BY 1"
    ).fetchall() == [("Feminino", 2), ("Ignorado", 2), ("Masculino", 1)]
    assert con.sql("SELECT codigo, rotulo, _source_file FROM tab_sih.carater ORDER BY 1").fetchall() == [
        ("01", "Eletivo", "TAB_SIH.zip:CNV/CARATER.CNV")
    ] + [(f"0{k}", "Urgência", "TAB_SIH.zip:CNV/CARATER.CNV") for k in range(2, 7)]
    assert con.sql("SELECT rotulo FROM tab_sih.espec").fetchall() == [("Cirúrgico",)]


def test_a_catch_all_of_a_million_codes_stays_under_the_budget_and_wider_ones_are_refused(tmp_path):
    path = tmp_path / "CBO.CNV"
    write_cnv(path, "3 6", [cnv_line(1, "Ignorada", "000000-999999"), cnv_line(2, "Médico", "225125"),
                            cnv_line(3, "Tudo", "0000000-9999999")])  # fmt: skip
    code, _, err, peak = etl_measured(tmp_path, "convert", "cnv", path, "--out", tmp_path / "out")
    assert code == 0, err
    assert peak < TEST_BUDGET_MB
    t = pq.read_table(tmp_path / "out/CBO.parquet")
    assert t.num_rows == 1_000_000
    assert duckdb.sql(
        f"SELECT rotulo FROM '{tmp_path}/out/CBO.parquet' WHERE codigo = '225125'"
    ).fetchall() == [("Médico",)]
    rejects = pq.read_table(tmp_path / "out/_rejects/CBO.parquet").to_pylist()
    assert rejects[0]["line"] == 4 and "covers 10,000,000 codes, more than max_range" in rejects[0]["reason"]
    code, _, err, _ = etl_measured(
        tmp_path, "convert", "cnv", path, "--out", tmp_path / "out2", "--max-range", "10000000"
    )
    assert code == 1 and "CBO.CNV" in err and "more than the memory budget holds" in err


def test_a_missing_file_fails_with_its_name(etl, tmp_path):
    r = etl("convert", "cnv", tmp_path / "NONE.CNV", "--out", tmp_path / "out")
    assert r.code == 1 and "NONE.CNV" in r.err and "file not found" in r.err
