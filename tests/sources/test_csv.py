import gzip

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import write_text_file as write


def rows(path, order="_source_row"):
    return duckdb.sql(f"SELECT * EXCLUDE (_source_file) FROM '{path}' ORDER BY {order}").fetchall()


def test_utf8_bom_crlf_quotes_and_embedded_newlines(etl, tmp_path):
    src = write(
        tmp_path / "a.csv", '\ufeffid,name,note\r\n1,"Ana, Maria","said ""hi"""\r\n2,Bo,"two\r\nlines"\r\n'
    )
    r = etl("convert", "csv", src, "--out", "out")
    assert r.code == 0, r.err
    assert rows(tmp_path / "out/a.parquet") == [
        (1, "Ana, Maria", 'said "hi"', 1),
        (2, "Bo", "two\r\nlines", 2),
    ]
    assert pq.read_schema(tmp_path / "out/a.parquet").names == [
        "id",
        "name",
        "note",
        "_source_file",
        "_source_row",
    ]


def test_latin1_and_cp1252(etl, tmp_path):
    write(tmp_path / "l.csv", "mun;nome\n355030;São Paulo\n", "latin-1")
    write(tmp_path / "w.csv", "preco;obs\n10;“caro” €\n", "cp1252")
    assert etl("convert", "csv", tmp_path / "l.csv", "--out", "out", "--encoding", "latin-1").code == 0
    assert etl("convert", "csv", tmp_path / "w.csv", "--out", "out", "--encoding", "cp1252").code == 0
    assert rows(tmp_path / "out/l.parquet") == [(355030, "São Paulo", 1)]
    assert rows(tmp_path / "out/w.parquet") == [(10, "“caro” €", 1)]
    assert not list((tmp_path / "data").rglob("*.utf8.csv"))  # the transcoded copy is removed


def test_gzip(etl, tmp_path):
    with gzip.open(tmp_path / "g.csv.gz", "wt", encoding="latin-1") as f:
        f.write("a;b\n1;ção\n2;pé\n")
    r = etl("convert", "csv", tmp_path / "g.csv.gz", "--out", "out", "--encoding", "latin-1")
    assert r.code == 0, r.err
    assert rows(tmp_path / "out/g.parquet") == [(1, "ção", 1), (2, "pé", 2)]


def test_ragged_rows_go_to_rejects_and_counts_add_up(etl, tmp_path):
    lines = ["a;b;c"] + [f"{i};x{i};{i * 2}" for i in range(1, 101)]
    lines[10] = "10;short"
    lines[20] = "20;x;40;extra"
    write(tmp_path / "r.csv", "\n".join(lines) + "\n")
    r = etl("--json", "convert", "csv", tmp_path / "r.csv", "--out", "out", "--delimiter", ";")
    assert r.code == 0, r.err
    assert '"rows": 98' in r.out and '"rejected": 2' in r.out
    rejects = duckdb.sql(
        f"SELECT line, error_type, raw, _source_file FROM '{tmp_path}/out/_rejects/r.parquet'"
    ).fetchall()
    assert rejects == [
        (11, "MISSING COLUMNS", "10;short", "r.csv"),
        (21, "TOO MANY COLUMNS", "20;x;40;extra", "r.csv"),
    ]
    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path}/out/r.parquet'").fetchall()[0][0] == 98


def test_a_stray_value_late_in_the_file_does_not_turn_the_column_into_text(etl, tmp_path):
    lines = ["id;qty"] + [f"{i};{i % 7}" for i in range(1, 60_001)]
    lines[50_000] = "50000;n/a"
    write(tmp_path / "late.csv", "\n".join(lines) + "\n")
    assert etl("convert", "csv", tmp_path / "late.csv", "--out", "out").code == 0
    schema = pq.read_schema(tmp_path / "out/late.parquet")
    assert str(schema.field("qty").type) == "int64"
    reason = duckdb.sql(f"SELECT reason FROM '{tmp_path}/out/_rejects/late.parquet'").fetchall()
    assert len(reason) == 1 and "n/a" in reason[0][0]


def test_types_are_narrowed_in_the_sniffed_dialect(etl, tmp_path):
    # The reads that narrow a text column reuse the sniffer's dialect (here `|` and CRLF, neither passed).
    lines = ["id|qty|name"] + [f"{i}|{i % 7}|n{i}" for i in range(1, 5001)]
    lines[3] = "3|??|x"
    write(tmp_path / "crlf.csv", "\r\n".join(lines) + "\r\n")
    assert etl("convert", "csv", tmp_path / "crlf.csv", "--out", "out").code == 0
    assert str(pq.read_schema(tmp_path / "out/crlf.parquet").field("qty").type) == "int64"
    got = rows(tmp_path / "out/crlf.parquet")
    assert len(got) == 4999 and got[:3] == [(1, 1, "n1", 1), (2, 2, "n2", 2), (4, 4, "n4", 4)]
    rejects = duckdb.sql(
        f"SELECT line, raw, _source_row FROM '{tmp_path}/out/_rejects/crlf.parquet'"
    ).fetchall()
    assert rejects == [(4, "3|??|x", 3)]


def test_source_row_is_the_row_in_the_file_with_rejected_rows_counted(etl, tmp_path):
    # `row` is each data row's place in the file: a quoted value over two lines, rows rejected early and across
    # row groups; kept and rejected rows both say where they stood.
    rows_in_file = 300_000
    lines = ["row;qty;note"] + [f"{i};{i % 7};n{i}" for i in range(1, rows_in_file + 1)]
    bad = {5: "5;??;n5", 6: "6;1", 150_000: "150000;1;n;extra", 299_999: "299999;x;n"}
    for row, text in bad.items():
        lines[row] = text
    lines[3] = '3;3;"two\nlines"'
    write(tmp_path / "s.csv", "\n".join(lines) + "\n", "latin-1")
    args = ["convert", "csv", tmp_path / "s.csv", "--out", "out", "--encoding", "latin-1"]
    r = etl("--json", "--memory-limit", "256MB", *args)
    assert r.code == 0, r.err
    assert f'"rows": {rows_in_file - len(bad)}' in r.out and f'"rejected": {len(bad)}' in r.out
    out = tmp_path / "out/s.parquet"
    assert pq.ParquetFile(out).num_row_groups > 1
    misplaced = duckdb.sql(f"SELECT count(*) FROM '{out}' WHERE _source_row <> \"row\"").fetchall()[0][0]
    assert misplaced == 0
    assert duckdb.sql(f"SELECT note FROM '{out}' WHERE _source_row = 3").fetchall() == [("two\nlines",)]
    rejects = duckdb.sql(
        f"SELECT _source_row, raw FROM '{tmp_path}/out/_rejects/s.parquet' ORDER BY _source_row"
    ).fetchall()
    assert rejects == sorted(bad.items())


def test_a_stray_value_early_is_rejected_not_widened(etl, tmp_path):
    lines = ["id;qty"] + [f"{i};{i % 7}" for i in range(1, 5001)]
    lines[3] = "3;??"
    write(tmp_path / "early.csv", "\n".join(lines) + "\n")
    assert etl("convert", "csv", tmp_path / "early.csv", "--out", "out").code == 0
    assert str(pq.read_schema(tmp_path / "out/early.parquet").field("qty").type) == "int64"
    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path}/out/early.parquet'").fetchall()[0][0] == 4999


def test_leading_zero_codes_stay_text_and_schema_overrides(etl, tmp_path):
    write(tmp_path / "z.csv", "cep;uf;n\n01001000;35;1\n20040002;33;2\n")
    r = etl("convert", "csv", tmp_path / "z.csv", "--out", "out", "--schema", "uf=VARCHAR,n=DOUBLE")
    assert r.code == 0, r.err
    assert rows(tmp_path / "out/z.parquet") == [("01001000", "35", 1.0, 1), ("20040002", "33", 2.0, 2)]
    bad = etl("convert", "csv", tmp_path / "z.csv", "--out", "out2", "--schema", "nope=INT")
    assert bad.code == 1 and "nope" in bad.err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "file not found"),
        ("empty.csv", b"", "file is empty"),
        ("header.csv", b"a;b;c\n", "no data rows"),
        ("garbage.csv", bytes(range(256)) * 64, "binary"),
    ],
)
def test_bad_inputs_fail_clearly_and_the_other_files_still_convert(etl, tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    write(tmp_path / "good.csv", "a;b\n1;2\n")
    r = etl("convert", "csv", tmp_path / name, tmp_path / "good.csv", "--out", "out")
    assert r.code == 1
    assert name in r.err and message in r.err
    assert (tmp_path / "out/good.parquet").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.parquet"]


def test_invalid_utf8_is_rejected_per_row(etl, tmp_path):
    (tmp_path / "u.csv").write_bytes(b"a;b\n1;ok\n2;caf\xe9\n3;ok\n")
    r = etl("convert", "csv", tmp_path / "u.csv", "--out", "out")
    assert r.code == 0, r.err
    assert duckdb.sql(f"SELECT a FROM '{tmp_path}/out/u.parquet' ORDER BY a").fetchall() == [(1,), (3,)]
    assert duckdb.sql(f"SELECT line FROM '{tmp_path}/out/_rejects/u.parquet'").fetchall() == [(3,)]


def test_wrong_cp1252_byte_names_the_position(etl, tmp_path):
    (tmp_path / "bad.csv").write_bytes(b"a\n" + b"x\n" * 10 + b"\x81\n")  # 0x81 is undefined in cp1252
    r = etl("convert", "csv", tmp_path / "bad.csv", "--out", "out", "--encoding", "cp1252")
    assert r.code == 1 and "bad.csv, byte 22: not valid cp1252" in r.err


def test_arrow_and_duckdb_readers_give_the_same_rows_and_types(etl, tmp_path):
    """A clean file is written by Arrow's reader; DuckDB's reader, which takes any other, reads it the same."""
    from etl.config import Settings
    from etl.sources.csv import Options, read_batches

    lines = ["\ufeffid;code;day;ok;price;note;empty"]
    lines += [
        f"{i};{i % 1000:04d};2024-01-{i % 28 + 1:02d};{'true' if i % 3 else 'false'};{i / 8};"
        f'"{"a;b" if i % 5 == 0 else " x "}{i}";{"" if i % 2 else chr(34) * 2}'
        for i in range(1, 3001)
    ]
    lines[7] = '7;0007;2024-01-08;true;1e3;"two\r\nlines ""quoted""";'
    lines[9] = "9;NA;2024-01-10;false;-1.5e-3;null;"  # text, not NULL, for both
    write(tmp_path / "c.csv", "\r\n".join(lines) + "\r\n")
    r = etl("convert", "csv", tmp_path / "c.csv", "--out", "out")
    assert r.code == 0, r.err
    assert "read again" not in r.err  # Arrow's reader took it whole
    written = pq.read_table(tmp_path / "out/c.parquet")
    assert written.column("_source_row").to_pylist() == list(range(1, 3001))
    settings = Settings(data_dir=tmp_path / "data")
    duck = pa.Table.from_batches(list(read_batches(tmp_path / "c.csv", Options(), settings)))
    assert written.drop_columns(["_source_file", "_source_row"]).schema == duck.schema
    assert written.drop_columns(["_source_file", "_source_row"]).to_pylist() == duck.to_pylist()
    assert written.column("empty").null_count == 3000  # empty, quoted or not, is NULL for both


@pytest.mark.parametrize(
    ("bad", "reason"),
    [("2999;x", "MISSING COLUMNS"), ("2999;x;1;2", "TOO MANY COLUMNS"), ("2999;x;?", "CAST")],
)
def test_a_bad_row_late_in_a_clean_file_is_rejected_with_its_line(etl, tmp_path, bad, reason):
    """Arrow's pass fails on it after writing most of the file: DuckDB's reader converts the file again."""
    lines = ["a;b;c"] + [f"{i};x{i};{i * 2}" for i in range(1, 3001)]
    lines[2999] = bad
    write(tmp_path / "late.csv", "\n".join(lines) + "\n")
    r = etl("--json", "convert", "csv", tmp_path / "late.csv", "--out", "out", "--delimiter", ";")
    assert r.code == 0, r.err
    assert "read again by DuckDB's reader" in r.err
    assert '"rows": 2999' in r.out and '"rejected": 1' in r.out
    rejects = duckdb.sql(
        f"SELECT line, error_type, raw FROM '{tmp_path}/out/_rejects/late.parquet'"
    ).fetchall()
    assert rejects == [(3000, reason, bad)]
    assert rows(tmp_path / "out/late.parquet")[-1] == (3000, "x3000", 6000, 3000)  # the 3,000th row


@pytest.mark.parametrize(("strays", "typ"), [(10, "int64"), (11, "string")])
def test_strays_at_the_top_are_weighed_against_the_whole_sample(etl, tmp_path, strays, typ):
    """The first values only rule out a type that the whole sample could not give: 10 stray values in 10,000 are
    within the 0.1% tolerance, even when all of them come first; 11 are not, and the column stays text."""
    lines = ["id;qty"] + [f"{i};{'n/a' if i <= strays else i % 7}" for i in range(1, 10_001)]
    write(tmp_path / "top.csv", "\n".join(lines) + "\n")
    r = etl("--json", "convert", "csv", tmp_path / "top.csv", "--out", "out")
    assert r.code == 0, r.err
    assert str(pq.read_schema(tmp_path / "out/top.parquet").field("qty").type) == typ
    if typ == "int64":
        assert '"rows": 9990' in r.out and f'"rejected": {strays}' in r.out
        rejects = duckdb.sql(f"SELECT line, raw FROM '{tmp_path}/out/_rejects/top.parquet' ORDER BY line")
        assert rejects.fetchall() == [(i + 1, f"{i};n/a") for i in range(1, strays + 1)]
        assert rows(tmp_path / "out/top.parquet")[0] == (11, 4, 11)  # the 11th row, the first kept
    else:
        assert '"rows": 10000' in r.out and '"rejected": 0' in r.out
        assert rows(tmp_path / "out/top.parquet")[0] == (1, "n/a", 1)


def test_segments_cut_inside_quoted_values_give_the_whole_files_rows(tmp_path):
    """Arrow's pass parses segments of the file side by side; a cut that falls inside a quoted value (a line end in
    the middle or last column, or a value ending with one) is read again joined with the next segment."""
    from pyarrow import csv as arrow_csv

    from etl.config import Settings
    from etl.sources.csv import Options, arrow_batches, arrow_plan

    lines = ["id;note;n;tail"]
    for i in range(1, 401):
        note = f'"a;\n""{i}""\nb"' if i % 3 == 0 else f"n{i}"
        tail = f'"t{i}\n"' if i % 5 == 0 else (f'"x\r\ny{i}"' if i % 7 == 0 else f"t{i}")
        lines.append(f"{i};{note};{i * 2};{tail}")
    path = write(tmp_path / "q.csv", "\n".join(lines) + "\n")
    plan = arrow_plan(path, Options(), Settings(data_dir=tmp_path / "data"))
    whole = arrow_csv.read_csv(
        path,
        parse_options=arrow_csv.ParseOptions(delimiter=";", newlines_in_values=True),
        convert_options=arrow_csv.ConvertOptions(column_types=plan.types),
    )
    for segment_bytes in (16, 50, 333):
        table = pa.Table.from_batches(list(arrow_batches(path, plan, Options(), segment_bytes)))
        assert table.num_rows == 400
        assert table.to_pylist() == whole.to_pylist(), segment_bytes
    assert table.column("tail")[4].as_py() == "t5\n" and table.column("note")[2].as_py() == 'a;\n"3"\nb'


def test_a_bad_row_in_a_later_segment_fails_arrows_pass(tmp_path):
    from etl.config import Settings
    from etl.sources.csv import NotClean, Options, arrow_batches, arrow_plan

    lines = ["a;b"] + [f"{i};x{i}" for i in range(1, 2001)]
    path = write(tmp_path / "bad.csv", "\n".join(lines) + "\n")
    plan = arrow_plan(path, Options(), Settings(data_dir=tmp_path / "data"))
    lines[1500] = "1500;x;extra"  # beyond the rows DuckDB's sniffer reads, as in a large file
    write(path, "\n".join(lines) + "\n")
    read = []
    with pytest.raises(NotClean, match="Expected 2 columns, got 3"):
        for batch in arrow_batches(path, plan, Options(), segment_bytes=1000):
            read.append(batch.num_rows)
    assert 0 < sum(read) < 1499  # the segments before it were yielded, in order
