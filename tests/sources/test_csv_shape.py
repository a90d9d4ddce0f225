"""Title lines before a CSV's header, files whose rows do not fit their dialect, and blank lines in lineage."""

import duckdb
import pyarrow.parquet as pq

from tests.conftest import write_text_file as write


def tabnet(path):
    """A TabNet export: three quoted title lines, the table, its total, a blank line and the source's notes."""
    titles = (
        '"Morbidade Hospitalar do SUS - por local de internação - Brasil"\n'
        '"Internações por Município segundo Ano processamento"\n"Período:2008-2009"\n'
    )
    table = '"Município";"2008";"2009"\n' + "".join(
        f'"{355000 + i} MUN {i}";{i};{i * 2}\n' for i in range(2000)
    )
    notes = '"Total";1999000;3998000\n\n"Fonte: Ministério da Saúde - Sistema de Informações Hospitalares do SUS"\n'
    return write(path, titles + table + notes, "latin-1")


def test_title_lines_before_the_header_are_found_and_skipped(etl, tmp_path):
    # DuckDB's sniffer takes the first title for a one-column header and every row is rejected.
    r = etl("--json", "convert", "csv", tabnet(tmp_path / "tab.csv"), "--out", "out", "--encoding", "latin-1")
    assert r.code == 0, r.err
    assert "3 line(s) before the header skipped" in r.err
    assert '"rows": 2001' in r.out and '"rejected": 1' in r.out
    out = tmp_path / "out/tab.parquet"
    assert pq.read_schema(out).names == ["Município", "2008", "2009", "_source_file", "_source_row"]
    got = duckdb.sql(f"SELECT * EXCLUDE (_source_file) FROM '{out}' ORDER BY _source_row").fetchall()
    assert got[0] == ("355000 MUN 0", 0, 0, 1) and got[-1] == ("Total", 1999000, 3998000, 2001)
    rejects = duckdb.sql(
        f"SELECT line, raw, _source_row FROM '{tmp_path}/out/_rejects/tab.parquet'"
    ).fetchall()
    # the note after the blank line: line 2007 of the file, its 2,002nd row (the blank line is not a row)
    assert rejects == [
        (2007, '"Fonte: Ministério da Saúde - Sistema de Informações Hospitalares do SUS"', 2002)
    ]


def test_skip_names_the_lines_before_the_header(etl, tmp_path):
    # Title lines as wide as the table cannot be told from it: --skip says how many there are.
    src = write(
        tmp_path / "ibge.csv", "Fonte;IBGE\nAno;2022\nmun;nome\n355030;São Paulo\n330455;Rio de Janeiro\n"
    )
    assert etl("convert", "csv", src, "--out", "guessed").code == 0
    assert pq.read_schema(tmp_path / "guessed/ibge.parquet").names[:2] == ["Fonte", "IBGE"]
    r = etl("convert", "csv", src, "--out", "out", "--skip", "2")
    assert r.code == 0, r.err
    got = duckdb.sql(
        f"SELECT mun, nome, _source_row FROM '{tmp_path}/out/ibge.parquet' ORDER BY 3"
    ).fetchall()
    assert got == [(355030, "São Paulo", 1), (330455, "Rio de Janeiro", 2)]
    r = etl("convert", "csv", src, "--out", "out", "--skip", "-1")
    assert r.code == 1 and "skip must be 0 or more lines, not -1" in r.err


def test_a_dialect_that_rejects_most_rows_fails_before_the_file_is_read(etl, tmp_path):
    lines = ["id;name;city"] + [f"{i};n{i},c{i}" for i in range(1, 5001)]  # `,` where `;` should be
    write(tmp_path / "mixed.csv", "\n".join(lines) + "\n")
    r = etl("convert", "csv", tmp_path / "mixed.csv", "--out", "out", "--delimiter", ";")
    assert r.code == 1
    assert "mixed.csv: line 2: " in r.err
    assert "rows do not have the header's 3 field(s) split at ';' (the first has 2)" in r.err
    assert "--skip N for lines before the header" in r.err
    assert not (tmp_path / "out/mixed.parquet").exists()


def test_rejects_foretold_beyond_the_budget_fail_before_the_file_is_read(etl, tmp_path):
    # DuckDB's reader holds each reject until its scan ends, outside its memory limit: 500,000 of them took
    # 623 MB at a 256 MB budget. A share of short rows in the head foretells them.
    lines = ["a;b;c"] + [f"{i};x{i};{i}" if i % 2 else f"{i};x{i}" for i in range(1, 1_000_001)]
    write(tmp_path / "half.csv", "\n".join(lines) + "\n")
    r = etl("--memory-limit", "256MB", "convert", "csv", tmp_path / "half.csv", "--out", "out")
    assert r.code == 1
    assert (
        "half.csv: line 3: " in r.err and "rejects foretold in the file, more than a 256 MB budget" in r.err
    )
    assert "Raise --memory-limit" in r.err


def test_blank_lines_are_not_rows_in_lineage(etl, tmp_path):
    write(tmp_path / "b.csv", "a;b\r\n1;2\r\n\r\nx;3\r\n4;5\r\n\r\n\r\n7;8\r\n6\r\n9;9\r\n")
    r = etl("convert", "csv", tmp_path / "b.csv", "--out", "out", "--delimiter", ";", "--schema", "a=INTEGER")
    assert r.code == 0, r.err
    kept = duckdb.sql(f"SELECT a, _source_row FROM '{tmp_path}/out/b.parquet' ORDER BY 2").fetchall()
    assert kept == [(1, 1), (4, 3), (7, 4), (9, 6)]
    rejects = duckdb.sql(f"SELECT line, raw, _source_row FROM '{tmp_path}/out/_rejects/b.parquet'").fetchall()
    assert rejects == [(4, "x;3", 2), (9, "6", 5)]
