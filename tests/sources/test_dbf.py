import datetime as dt
import json
import struct
from decimal import Decimal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dbfread import DBF, FieldParser

from etl.errors import SourceError
from etl.sources import dbf
from etl.sources.dbc import dbc_to_dbf
from etl.sources.dbf import DbfStats, _typed, read_batches, read_header, write_dbf
from tests.conftest import TEST_BUDGET_MB, etl_measured, samples_dir

FIELDS = [
    ("NOME", "C", 20, 0),
    ("IDADE", "N", 3, 0),
    ("VAL_TOT", "N", 12, 2),
    ("DT_INTER", "D", 8, 0),
    ("UTI", "L", 1, 0),
]
RECORDS = [
    ("São José", 34, 12.5, dt.date(2023, 1, 2), True),
    (None, None, None, None, None),
    ("a\x00b", 5, -1.25, "15/05/20", False),
    ("Ção ", "x9", "1,5", "00000000", None),
]


def table(path):
    return pq.read_table(path).to_pylist()


def test_types_blanks_invalid_values_and_lineage(tmp_path):
    write_dbf(tmp_path / "t.dbf", FIELDS, RECORDS)
    stats = DbfStats()
    rows = [r for b in read_batches(tmp_path / "t.dbf", lineage="t.dbf", stats=stats) for r in b.to_pylist()]
    assert rows[0] == {
        "NOME": "São José",
        "IDADE": 34,
        "VAL_TOT": Decimal("12.50"),
        "DT_INTER": dt.date(2023, 1, 2),
        "UTI": True,
        "_source_file": "t.dbf",
        "_source_row": 1,
    }
    assert rows[1] == {
        "NOME": "",
        "IDADE": None,
        "VAL_TOT": None,
        "DT_INTER": None,
        "UTI": None,
        "_source_file": "t.dbf",
        "_source_row": 2,
    }
    assert (
        rows[2]["NOME"] == "a\x00b" and rows[2]["DT_INTER"] is None and rows[2]["VAL_TOT"] == Decimal("-1.25")
    )
    assert rows[3]["NOME"] == "Ção" and rows[3]["IDADE"] is None and rows[3]["VAL_TOT"] == Decimal("1.50")
    assert rows[3]["DT_INTER"] is None  # zeros are a blank date, not an invalid one
    assert stats.nulled == {"DT_INTER": 1, "IDADE": 1}


def test_impossible_dates_are_null_not_rolled_over(tmp_path):
    values = ["20230230", "20230228", "20240229", "20230229", "20231301", "20230100"]
    write_dbf(tmp_path / "d.dbf", [("DT", "D", 8, 0)], [(v,) for v in values])
    stats = DbfStats()
    dates = [r["DT"] for b in read_batches(tmp_path / "d.dbf", stats=stats) for r in b.to_pylist()]
    assert dates == [None, dt.date(2023, 2, 28), dt.date(2024, 2, 29), None, None, None]
    assert stats.nulled == {"DT": 4}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([b"   12", b"    0", b"     ", b"99999"], [12, 0, None, 99999]),  # right-aligned: numpy arithmetic
        ([b"12   ", b"   -3", b"  +4 ", b" 1 2 "], [12, -3, 4, None]),  # other forms: the general parser
    ],
)
def test_integer_fields_in_every_form(tmp_path, raw, expected):
    write_dbf(tmp_path / "n.dbf", [("N", "C", 5, 0)], [(r.decode(),) for r in raw])
    data = bytearray((tmp_path / "n.dbf").read_bytes())
    data[32 + 11] = ord("N")  # written as text so that the bytes are exactly these, read as a number
    (tmp_path / "n.dbf").write_bytes(bytes(data))
    assert [r["N"] for r in next(read_batches(tmp_path / "n.dbf")).to_pylist()] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([b"  12.50", b"   0.05", b"       ", b"    .25"], ["12.50", "0.05", None, "0.25"]),
        ([b"     12", b"   -1.5", b"  1,25 ", b"  1.2.3"], ["12.00", "-1.50", "1.25", None]),
    ],
)
def test_decimal_fields_in_every_form(tmp_path, raw, expected):
    write_dbf(tmp_path / "d.dbf", [("V", "C", 7, 0)], [(r.decode(),) for r in raw])
    data = bytearray((tmp_path / "d.dbf").read_bytes())
    data[32 + 11], data[32 + 17] = ord("N"), 2  # N(7,2)
    (tmp_path / "d.dbf").write_bytes(bytes(data))
    got = [r["V"] for r in next(read_batches(tmp_path / "d.dbf")).to_pylist()]
    assert got == [Decimal(e) if e else None for e in expected]


@pytest.mark.parametrize(
    ("width", "decimals", "raw", "expected"),
    [
        (16, 0, [b"9999999999999999", b"               1"], [9999999999999999, 1]),  # two 8-digit words
        (17, 2, [b"99999999999999.99", b"             .01"], [Decimal("99999999999999.99"), Decimal("0.01")]),
        (18, 0, [b"999999999999999999", b"                 7"], [999999999999999999, 7]),  # general parser
    ],
)
def test_wide_numbers(tmp_path, width, decimals, raw, expected):
    write_dbf(tmp_path / "w.dbf", [("V", "C", width, 0)], [(r.decode(),) for r in raw])
    data = bytearray((tmp_path / "w.dbf").read_bytes())
    data[32 + 11], data[32 + 17] = ord("N"), decimals
    (tmp_path / "w.dbf").write_bytes(bytes(data))
    assert [r["V"] for r in next(read_batches(tmp_path / "w.dbf")).to_pylist()] == expected


@pytest.mark.parametrize(
    ("width", "decimals", "raw", "expected"),
    [
        (16, 2, ["9999999999999.99", "            0.01"], ["9999999999999.99", "0.01"]),
        (9, 1, ["  12345.6", "        "], ["12345.6", None]),
        (9, 7, ["1.2345678", " .0000001"], ["1.2345678", "0.0000001"]),
        (12, 8, ["  1.23456789", "   .00000001"], ["1.23456789", "0.00000001"]),  # general parser
        (3, 0, ["  7", "123"], ["7", "123"]),
    ],
)
def test_numbers_after_other_fields_read_only_their_own_bytes(tmp_path, width, decimals, raw, expected):
    """A number is read with the bytes before it (the previous fields, digits here): they must not count."""
    fields = [("A", "C", 20, 0), ("V", "N", width, decimals), ("B", "C", 2, 0)]
    write_dbf(
        tmp_path / "a.dbf",
        fields,
        [("98765432109876543210", Decimal(r) if r.strip() else None, "99") for r in raw],
    )
    got = [r["V"] for r in next(read_batches(tmp_path / "a.dbf")).to_pylist()]
    assert got == [(Decimal(e) if decimals else int(e)) if e else None for e in expected]


def test_small_batches_cover_every_record(tmp_path):
    records = [
        (f"n{i}", i % 999, i / 4, dt.date(2020, 1, 1) + dt.timedelta(days=i % 900), i % 2 == 0)
        for i in range(60_000)
    ]
    write_dbf(tmp_path / "m.dbf", FIELDS, records, deleted={10, 59_999})
    stats = DbfStats()
    batches = list(read_batches(tmp_path / "m.dbf", memory_limit=1, lineage="m", stats=stats))
    assert len(batches) > 1 and sum(b.num_rows for b in batches) == 59_998
    assert [r for r, _ in stats.deleted] == [11, 60_000]
    rows = [r for b in batches for r in b.to_pylist()]
    assert rows[10] == {
        "NOME": "n11",
        "IDADE": 11,
        "VAL_TOT": Decimal("2.75"),
        "DT_INTER": dt.date(2020, 1, 12),
        "UTI": False,
        "_source_file": "m",
        "_source_row": 12,
    }


CODED_FIELDS = [
    ("UF", "C", 6, 0),
    ("SEXO", "C", 1, 0),
    ("IDADE", "N", 3, 0),
    ("VAL", "N", 6, 2),
    ("DT", "D", 8, 0),
    ("UTI", "L", 1, 0),
    ("ID", "C", 8, 0),
    ("PROC", "C", 10, 0),  # a key of two words
]


def coded_records(n):
    for i in range(n):
        yield (
            "MG" if i >= 15_000 and i % 2 else ["355030", "São", "", "a\x00b"][i % 4],  # MG first seen late
            "13"[i % 2],
            "x9" if i % 97 == 0 else [None, 7, 45][i % 3],  # an unparsable value, again and again
            [1.5, 12.25, None][i % 3],
            "15/05/20" if i % 89 == 0 else [dt.date(2023, 1, 2), None][i % 2],
            [True, False, None][i % 3],
            f"{i:08d}",  # all distinct: read plainly
            ["0303140151", "0411010034", "041101003"][i % 3],
        )


@pytest.mark.parametrize("limit", [dbf.DICTIONARY_LIMIT, 3])
def test_coded_batches_hold_the_same_values(etl, tmp_path, monkeypatch, limit):
    monkeypatch.setattr(dbf, "DICTIONARY_LIMIT", limit)  # 3: UF has more values, and goes on hashed by Arrow
    monkeypatch.setattr(dbf, "BATCH_ROWS", 4096)  # several batches
    write_dbf(tmp_path / "c.dbf", CODED_FIELDS, coded_records(20_000), deleted={5, 19_999})
    plain_stats, coded_stats = DbfStats(), DbfStats()
    plain = list(read_batches(tmp_path / "c.dbf", memory_limit=1, lineage="c.dbf", stats=plain_stats))
    typed = []  # how many values each call of _typed types
    monkeypatch.setattr(dbf, "_typed", lambda fld, *a: typed.append((fld.name, len(a[1]))) or _typed(fld, *a))
    coded = list(
        read_batches(tmp_path / "c.dbf", memory_limit=1, lineage="c.dbf", stats=coded_stats, coded=True)
    )
    assert len(coded) > 3  # several batches, one dictionary growing through them
    types = coded[0].schema
    # Text comes as dictionaries; numbers, dates and bools as their own types, typed once per distinct value.
    assert {f.name for f in types if pa.types.is_dictionary(f.type)} == {"UF", "SEXO", "PROC", "_source_file"}
    assert [f.type for f in types][2:6] == [f.type for f in plain[0].schema][2:6]
    once = [(name, n) for name, n in typed if name in ("IDADE", "VAL", "DT", "UTI")]
    assert {name for name, _ in once} == {"IDADE", "VAL", "DT", "UTI"}
    if limit > 4:  # each has 4 distinct values at most (past a limit of 3, IDADE is typed plainly)
        assert all(n <= 4 for _, n in once)
    assert all(b.schema == types for b in coded)
    for p, c in zip(plain, coded, strict=True):
        assert c.to_pylist() == p.to_pylist()
    assert plain_stats.nulled == coded_stats.nulled == {"IDADE": 207, "DT": 225}
    assert coded_stats.deleted == plain_stats.deleted
    # Converted, the codes are the file's dictionary encoding and the file reads back as the plain values.
    assert etl("--memory-limit", "256MB", "convert", "dbf", tmp_path / "c.dbf", "--out", "out").code == 0
    parquet = pq.ParquetFile(tmp_path / "out/c.parquet")
    assert parquet.schema_arrow == pa.schema([*plain[0].schema]).remove_metadata()
    assert parquet.read().to_pylist() == [r for b in plain for r in b.to_pylist()]
    chunk = parquet.metadata.row_group(0).column(0)
    assert chunk.path_in_schema == "UF" and "RLE_DICTIONARY" in chunk.encodings


def test_coded_records_of_one_byte(tmp_path):
    write_dbf(tmp_path / "t.dbf", [("S", "C", 1, 0)], [("12"[i % 2],) for i in range(5000)])
    (batch,) = read_batches(tmp_path / "t.dbf", coded=True)  # keys are read as 8-byte words past the records
    assert pa.types.is_dictionary(batch.schema.field("S").type)
    assert batch.column("S").to_pylist() == ["1", "2"] * 2500


@pytest.mark.parametrize("encoding", ["cp850", "cp1252"])
def test_encodings_per_file_and_per_column(tmp_path, encoding):
    write_dbf(
        tmp_path / "e.dbf",
        [("A", "C", 10, 0), ("B", "C", 10, 0)],
        [("Ção€" if encoding == "cp1252" else "Ção", "é")],
        encoding=encoding,
    )
    (row,) = (next(read_batches(tmp_path / "e.dbf", encoding=encoding)).to_pylist(),)
    assert row[0]["A"].startswith("Ção")
    raw = (tmp_path / "e.dbf").read_bytes()
    (tmp_path / "f.dbf").write_bytes(raw.replace("é".encode(encoding), "é".encode("latin-1")))
    mixed = next(
        read_batches(tmp_path / "f.dbf", encoding=encoding, column_encodings={"B": "latin-1"})
    ).to_pylist()
    assert mixed[0]["B"] == "é"


def test_header_quirks_of_real_files(tmp_path):
    write_dbf(tmp_path / "q.dbf", FIELDS, RECORDS[:1])
    raw = bytearray((tmp_path / "q.dbf").read_bytes())
    hlen = struct.unpack("<H", raw[8:10])[0]
    raw[hlen - 1] = 0x00  # terminator 0x00 instead of 0x0D
    quirky = (
        raw[:hlen] + b"\x00" + raw[hlen:-1] + b"garbage"
    )  # a pad byte (32n + 34), no 0x1A, trailing bytes
    quirky[8:10] = struct.pack("<H", hlen + 1)
    (tmp_path / "quirky.dbf").write_bytes(quirky)
    assert next(read_batches(tmp_path / "quirky.dbf")).to_pylist()[0]["NOME"] == "São José"


def test_truncated_and_not_a_dbf(tmp_path):
    write_dbf(tmp_path / "t.dbf", FIELDS, RECORDS)
    (tmp_path / "cut.dbf").write_bytes((tmp_path / "t.dbf").read_bytes()[:-40])
    with pytest.raises(
        SourceError, match="cut.dbf: truncated: the header declares 4 records, the file holds 3"
    ):
        read_header(tmp_path / "cut.dbf")
    (tmp_path / "no.dbf").write_text("id,name\n1,x\n" * 10)
    with pytest.raises(SourceError, match="no.dbf: not a DBF file"):
        read_header(tmp_path / "no.dbf")


def test_cli_convert_dbf_reports_deleted_and_untyped(etl, tmp_path):
    write_dbf(tmp_path / "RDSP2301.dbf", FIELDS, RECORDS, deleted={1})
    r = etl("--json", "convert", "dbf", tmp_path / "RDSP2301.dbf", "--out", "out")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert (summary["rows"], summary["rejected"]) == (3, 1)
    rejects = table(tmp_path / "out/_rejects/RDSP2301.parquet")
    assert rejects[0]["record"] == 2 and rejects[0]["reason"] == "deleted"
    assert [r["_source_row"] for r in table(tmp_path / "out/RDSP2301.parquet")] == [1, 3, 4]
    assert "values of DT_INTER could not be typed" in r.err and "values of IDADE" in r.err


@pytest.mark.skipif(samples_dir() is None, reason="shared samples not present")
@pytest.mark.parametrize("coded", [False, True])
@pytest.mark.parametrize("name", ["sids.dbc", "ZIKABR21.dbc", "STPI2206.dbc"])
def test_parity_with_dbfread_on_real_files(etl, tmp_path, name, coded):
    class Lenient(FieldParser):  # real D fields hold garbage such as 15/05/20: null, as etl does
        def parseD(self, field, data):
            try:
                return super().parseD(field, data)
            except ValueError:
                return None

    dbf = dbc_to_dbf(samples_dir() / "datasus" / name, tmp_path / "x.dbf")
    expected = list(DBF(dbf, encoding="latin-1", parserclass=Lenient, char_decode_errors="strict"))
    got = [r for b in read_batches(dbf, coded=coded) for r in b.to_pylist()]
    assert len(got) == len(expected) == read_header(dbf).records
    if coded:  # and converted to Parquet, as `etl convert` reads them
        assert etl("convert", "dbf", dbf, "--out", "out").code == 0
        lineage = ("_source_file", "_source_row")
        assert [
            {k: v for k, v in r.items() if k not in lineage} for r in table(tmp_path / "out/x.parquet")
        ] == got
    for i, (ours, theirs) in enumerate(zip(got, expected, strict=True)):
        for key, value in theirs.items():
            mine = ours[key]
            if isinstance(mine, Decimal) or isinstance(value, float):
                assert (mine is None and value is None) or float(mine) == pytest.approx(value), (i, key)
            else:
                assert mine == value, (i, key, mine, value)


@pytest.mark.slow
def test_a_dbf_many_times_the_budget_converts_within_it(tmp_path):
    fields = [
        ("N_AIH", "C", 13, 0),
        ("MUNIC_RES", "C", 6, 0),
        ("DT_INTER", "D", 8, 0),
        ("IDADE", "N", 3, 0),
        ("VAL_TOT", "N", 13, 2),
        ("DIAG_PRINC", "C", 4, 0),
        ("NOME", "C", 80, 0),
    ]
    block = 10_000
    recs = (
        (
            f"35{i:011d}",
            f"{355000 + i % 900}",
            dt.date(2023, 1 + i % 12, 1 + i % 28),
            i % 100,
            i / 3,
            f"I{i % 99:02d}",
            f"Hospital {i % 5000}",
        )
        for i in range(block)
    )
    write_dbf(tmp_path / "small.dbf", fields, recs)
    raw = (tmp_path / "small.dbf").read_bytes()
    hlen = struct.unpack("<H", raw[8:10])[0]
    repeats = 500  # 5M records: the block of 10,000 written again and again
    rows = block * repeats
    with open(tmp_path / "big.dbf", "wb") as f:
        f.write(raw[:4] + struct.pack("<I", rows) + raw[8:hlen])
        for _ in range(repeats):
            f.write(raw[hlen:-1])
    assert (tmp_path / "big.dbf").stat().st_size > 1.5 * TEST_BUDGET_MB * 2**20
    code, out, err, peak_mb = etl_measured(
        tmp_path, "--json", "convert", "dbf", tmp_path / "big.dbf", "--out", tmp_path / "out"
    )
    assert code == 0, err
    assert json.loads(out)["rows"] == rows
    assert peak_mb < TEST_BUDGET_MB
    assert duckdb.sql(f"SELECT count(DISTINCT _source_row) FROM '{tmp_path}/out/big.parquet'").fetchall() == [
        (rows,)
    ]


def test_dates_of_eight_digits_typed_by_arithmetic_as_by_arrows_strptime():
    # Every day of leap and common years across centuries, year 0 and 9999, impossible days and months, zeros
    # and blanks: the fast path (8 digits or blank) gives the values and invalid flags the general parser gives.
    days = [dt.date(1, 1, 1) + dt.timedelta(days=d) for d in range(0, 3_652_059, 97)]
    texts = [d.strftime("%Y%m%d").rjust(8, "0") for d in days]
    texts += ["19000229", "20000229", "21000229", "20240229", "20230229", "00000229", "00000101", "99991231"]
    texts += ["20231301", "20230001", "20230100", "20230132", "20230431", "00000000", "        ", "\x00" * 8]
    block = np.frombuffer("".join(texts).encode("latin-1"), np.uint8).reshape(-1, 8)
    fast_values, fast_bad = dbf._digit_dates(block)
    values, bad = dbf._text_dates(block)
    # compared as days since 1970: year 0 is no Python date
    days_since_1970 = pa.Array.from_buffers(pa.int32(), len(values), values.buffers())
    assert pa.Array.from_buffers(pa.int32(), len(block), fast_values.buffers()).equals(days_since_1970)
    assert fast_bad.to_pylist() == bad.fill_null(False).to_pylist()
    assert fast_values.null_count == 11 and fast_bad.to_pylist().count(True) == 8
