"""Inputs of one dataset that share a name or a stem write distinct Parquet, so no file's rows are lost or doubled."""

import gzip
import random
import zipfile
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pyreadstat

from etl.files import distinct_stems
from etl.samples.datasus import FIELDS, _record
from etl.sources.csv import stem as csv_stem
from etl.sources.dbc import write_dbc
from etl.sources.dbf import write_dbf
from etl.state import StateStore


def warehouse_rows(tmp_path: Path, view: str) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "data/warehouse.duckdb"), read_only=True) as con:
        return con.sql(f"SELECT _source_file, count(*) FROM {view} GROUP BY 1 ORDER BY 1").fetchall()


def test_distinct_stems_keep_a_lone_stem_and_tell_the_others_apart(tmp_path):
    paths = [
        tmp_path / p for p in ("y2022/obitos.csv", "y2023/obitos.csv", "x.csv", "x.csv.gz", "DO2022.csv")
    ]
    names = distinct_stems(paths, csv_stem)
    assert [names[p.resolve()] for p in paths] == [
        "y2022/obitos",
        "y2023/obitos",
        "x.csv",
        "x.csv.gz",
        "DO2022",
    ]


def test_one_name_in_two_folders_and_one_stem_with_two_extensions(etl, tmp_path):
    for folder, rows in (("y2022", 3), ("y2023", 5)):
        (tmp_path / "in" / folder).mkdir(parents=True)
        (tmp_path / "in" / folder / "obitos.csv").write_text(
            "a,b\n" + "".join(f"{i},{folder}\n" for i in range(rows))
        )
    (tmp_path / "in/x.csv").write_text("a,b\n1,plain\n")
    (tmp_path / "in/x.csv.gz").write_bytes(gzip.compress(b"a,b\n1,gz\n2,gz\n"))
    (tmp_path / "in/DO2022.csv").write_text("a,b\n1,alone\n")
    (tmp_path / "etl.toml").write_text('[datasets.d]\nkind = "csv"\npaths = ["in/*/*.csv", "in/*.csv*"]\n')
    r = etl("run")
    assert r.code == 0, r.err
    assert warehouse_rows(tmp_path, "d") == [
        ("DO2022.csv", 1),
        ("x.csv", 1),
        ("x.csv.gz", 2),
        ("y2022/obitos.csv", 3),
        ("y2023/obitos.csv", 5),
    ]
    out = tmp_path / "data/parquet/d"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet")) == [
        "DO2022.parquet",
        "x.csv.gz.parquet",
        "x.csv.parquet",
        "y2022/obitos.parquet",
        "y2023/obitos.parquet",
    ]
    assert etl("run").code == 0 and warehouse_rows(tmp_path, "d")[0] == ("DO2022.csv", 1)  # a rerun skips


def test_one_stem_as_spss_and_stata(etl, tmp_path):
    pyreadstat.write_sav(pd.DataFrame({"v": [1.0, 2.0]}), tmp_path / "good.sav")
    pyreadstat.write_dta(pd.DataFrame({"v": [1.0, 2.0, 3.0]}), tmp_path / "good.dta")
    (tmp_path / "etl.toml").write_text('[datasets.s]\nkind = "stat"\npaths = ["good.*"]\n')
    r = etl("run")
    assert r.code == 0, r.err
    assert warehouse_rows(tmp_path, "s") == [("good.dta", 3), ("good.sav", 2)]


def test_a_zip_holding_one_name_in_two_folders(etl, tmp_path):
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as zf:
        for folder, rows in (("a", 20), ("b", 30)):
            rng = random.Random(folder)
            dbf = write_dbf(
                tmp_path / f"{folder}.dbf", FIELDS, (_record(rng, "SP", 2023, 1, i) for i in range(rows))
            )
            zf.write(write_dbc(dbf, tmp_path / f"{folder}.dbc"), f"{folder}/RDSP2301.dbc")
    (tmp_path / "etl.toml").write_text('[datasets.z]\nkind = "datasus"\npaths = ["two.zip"]\n')
    r = etl("run")
    assert r.code == 0, r.err
    assert warehouse_rows(tmp_path, "z.records") == [("a/RDSP2301.dbc", 20), ("b/RDSP2301.dbc", 30)]


def test_a_data_directory_where_two_files_shared_an_output_is_repaired(etl, tmp_path):
    """An older etl gave `y2022/obitos.csv` and `y2023/obitos.csv` one Parquet; the rerun after the upgrade
    converts both again, each to its own file, and removes the shared one: every row once."""
    for folder, rows in (("y2022", 3), ("y2023", 5)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "obitos.csv").write_text("a\n" + "1\n" * rows)
    (tmp_path / "etl.toml").write_text('[datasets.d]\nkind = "csv"\npaths = ["y*/obitos.csv"]\n')
    assert etl("run").code == 0
    shared = tmp_path / "data/parquet/d/obitos.parquet"
    pq.write_table(pq.read_table(tmp_path / "data/parquet/d/y2023/obitos.parquet"), shared)
    state = StateStore(tmp_path / "data/state.sqlite")
    for rec in state.files("d"):  # as the older etl left them: both records name one file
        state.put_file("d", rec.path, "converted", outputs={"records": str(shared)})
    state.close()
    r = etl("run")
    assert r.code == 0, r.err
    assert warehouse_rows(tmp_path, "d") == [("y2022/obitos.csv", 3), ("y2023/obitos.csv", 5)]
    assert not shared.exists()
    assert etl("run").code == 0 and warehouse_rows(tmp_path, "d")[1] == ("y2023/obitos.csv", 5)


def test_names_that_cannot_be_told_apart_fail_the_dataset_loudly(etl, tmp_path):
    for n in ("x.csv", "x.csv.gz", "x.csv.csv"):  # `x.csv.csv`'s stem is the name that tells `x.csv` apart
        (tmp_path / n).write_bytes(gzip.compress(b"a\n1\n") if n.endswith(".gz") else b"a\n1\n")
    (tmp_path / "etl.toml").write_text('[datasets.d]\nkind = "csv"\npaths = ["x.*"]\n')
    r = etl("run")
    assert r.code == 1
    assert (
        f"{tmp_path}/x.csv and {tmp_path}/x.csv.csv would write the same output 'x.csv': rename one" in r.err
    )
    assert not (tmp_path / "data/parquet/d").exists()
