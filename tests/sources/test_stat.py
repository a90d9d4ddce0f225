import datetime as dt

import pandas as pd
import pyarrow.parquet as pq
import pyreadstat
import pytest

from tests.conftest import TEST_BUDGET_MB, etl_measured


@pytest.fixture
def frame():
    n = 1000
    return pd.DataFrame(
        {
            "id": range(n),
            "sexo": [1.0 if i % 2 else 2.0 for i in range(n)],
            "nome": [f"pessoa {i}" if i % 50 else None for i in range(n)],
            "nascimento": [dt.date(1990, 1, 1) + dt.timedelta(days=i) for i in range(n)],
            "renda": [i * 10.5 for i in range(n)],
        }
    )


LABELS = {"sexo": {1.0: "Masculino", 2.0: "Feminino"}}


@pytest.mark.parametrize("ext", [".sav", ".zsav", ".dta", ".xpt", ".por"])
def test_each_format_converts_with_labels_and_dates(etl, tmp_path, frame, ext):
    path = tmp_path / f"survey{ext}"
    if ext in (".sav", ".zsav"):
        pyreadstat.write_sav(
            frame,
            path,
            column_labels={"renda": "Renda mensal"},
            variable_value_labels=LABELS,
            compress=ext == ".zsav",
        )
    elif ext == ".dta":
        pyreadstat.write_dta(
            frame, path, column_labels={"renda": "Renda mensal"}, variable_value_labels=LABELS
        )
    elif ext == ".xpt":
        pyreadstat.write_xport(
            frame.rename(columns={"nascimento": "nasc"}), path, column_labels={"renda": "Renda mensal"}
        )
    else:
        pyreadstat.write_por(
            frame.drop(columns=["nascimento"]), path, column_labels={"renda": "Renda mensal"}
        )
    r = etl("--memory-limit", "256MB", "convert", "stat", path, "--out", "out")
    assert r.code == 0, r.err
    table = pq.read_table(tmp_path / "out/survey.parquet")
    assert table.num_rows == 1000
    rows = table.to_pylist()
    id_col = next(c for c in table.column_names if c.lower() == "id")
    assert rows[7][id_col] == 7 and rows[7]["_source_row"] == 8 and rows[7]["_source_file"] == path.name
    renda = next(c for c in table.column_names if c.lower() == "renda")
    if ext != ".por":  # the portable format keeps no variable labels
        assert table.schema.field(renda).metadata == {b"label": b"Renda mensal"}
    if ext in (".sav", ".zsav", ".dta"):
        assert rows[0]["nascimento"] == dt.date(1990, 1, 1)
        labels = pq.read_table(tmp_path / "out/_labels/survey.parquet").to_pylist()
        assert {(r["variable"], float(r["value"]), r["label"]) for r in labels} == {
            ("sexo", 1.0, "Masculino"),
            ("sexo", 2.0, "Feminino"),
        }


def test_apply_labels_and_chunks_beyond_one(etl, tmp_path):
    n = 120_000
    df = pd.DataFrame(
        {"sexo": [1.0 if i % 2 else 2.0 for i in range(n)], "x": [None] * 60_000 + ["a"] * 60_000}
    )
    pyreadstat.write_sav(df, tmp_path / "big.sav", variable_value_labels=LABELS)
    r = etl(
        "--memory-limit", "256MB", "convert", "stat", tmp_path / "big.sav", "--out", "out", "--apply-labels"
    )
    assert r.code == 0, r.err
    table = pq.read_table(tmp_path / "out/big.parquet")
    assert table.column("sexo").to_pylist()[:2] == ["Feminino", "Masculino"]
    assert table.column("x").to_pylist()[-1] == "a" and table.num_rows == n


def test_truncated_file_is_an_error_and_leaves_nothing(etl, tmp_path, frame):
    pyreadstat.write_sav(frame, tmp_path / "t.sav")
    data = (tmp_path / "t.sav").read_bytes()
    (tmp_path / "cut.sav").write_bytes(data[: len(data) // 2])
    r = etl("convert", "stat", tmp_path / "cut.sav", tmp_path / "t.sav", "--out", "out")
    assert r.code == 1 and "cut.sav" in r.err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.parquet")) == ["t.parquet"]
    r = etl("convert", "stat", tmp_path / "x.csv", "--out", "out")
    assert r.code == 1 and "file not found" in r.err


@pytest.mark.slow
def test_a_file_many_times_the_budget_in_bounded_memory(tmp_path):
    n = 1_000_000
    # Two wide text columns rather than ten narrow ones: the same 540 MB, written in 15 s rather than 49 s
    # (pyreadstat writes a value at a time).
    df = pd.DataFrame(
        {f"c{k}": [f"{k} texto de exemplo {i % 5000:>260}" for i in range(n)] for k in range(2)}
    )
    df["n"] = range(n)
    pyreadstat.write_dta(df, tmp_path / "big.dta")
    del df
    assert (tmp_path / "big.dta").stat().st_size > 1.5 * TEST_BUDGET_MB * 2**20
    code, out, err, peak = etl_measured(
        tmp_path, "convert", "stat", tmp_path / "big.dta", "--out", tmp_path / "out"
    )
    assert code == 0, err
    assert pq.read_metadata(tmp_path / "out/big.parquet").num_rows == n
    assert peak < TEST_BUDGET_MB
