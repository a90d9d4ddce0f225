"""The Spark engine on local[2]: the default etl.toml gives the same rows as the local engine; failures, reruns
and untranspilable SQL behave as locally. One Spark session for the module."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from etl.cli import main
from etl.state import StateStore
from tests.conftest import REPO
from tests.engines.conftest import good_files_and_a_bad_one

pytestmark = pytest.mark.slow


def etl(cwd: Path, *args: str, monkeypatch) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with monkeypatch.context() as m:
        m.chdir(cwd)
        for name in ("ETL_ENGINE", "ETL_DATA_DIR", "ETL_MEMORY_LIMIT", "ETL_SQL_DIR", "ETL_THREADS"):
            m.delenv(name, raising=False)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, local_spark):
    """The default etl.toml run once with each engine, each in its own folder; the Spark run starts from the
    local run's raw files (the samples are generated on the driver alike: once is enough)."""
    mp = pytest.MonkeyPatch()
    out = {}
    for engine in ("local", "spark"):
        folder = tmp_path_factory.mktemp(engine)
        shutil.copy(REPO / "etl.toml", folder / "etl.toml")
        if engine == "spark":
            shutil.copytree(out["local"][0] / "data" / "raw", folder / "data" / "raw")
        out[engine] = (folder, *etl(folder, "--engine", engine, "--json", "run", monkeypatch=mp))
    mp.undo()
    return out


def fingerprints(warehouse: Path) -> dict[str, tuple[int, int]]:
    """Every table and view of a warehouse as its row count and the sum of its rows' hashes (a row multiset's
    fingerprint, computed by DuckDB; doubles to 12 significant digits, as engines may sum in another order)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        columns: dict[tuple[str, str], list[str]] = {}
        for s, n, c, t in con.execute(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns"
            " ORDER BY table_schema, table_name, ordinal_position"
        ).fetchall():
            columns.setdefault((s, n), []).append(
                f"format('{{:.12g}}', \"{c}\")" if t in ("DOUBLE", "FLOAT") else f'"{c}"'
            )
        return {
            f"{s}.{n}": con.execute(
                f'SELECT count(*), sum(hash(t)) FROM (SELECT {", ".join(cols)} FROM "{s}"."{n}") t'
            ).fetchall()[0]
            for (s, n), cols in columns.items()
        }
    finally:
        con.close()


def test_default_etl_toml_gives_the_same_rows_on_both_engines(runs):
    (local, lcode, _, lerr), (spark, scode, _, serr) = runs["local"], runs["spark"]
    assert lcode == 0, lerr
    assert scode == 0, serr
    ours = fingerprints(local / "data" / "warehouse.duckdb")
    assert fingerprints(spark / "data" / "warehouse.duckdb") == ours
    # every converted table, every view and every mart of the shipped SQL, none empty
    assert {"sih_rd.records", "nvd.cves", "nvd.metrics", "sih_rd.stg_internacoes", "nvd.cve_severity",
            "nvd.cves_per_product", "sim_csv.obitos_por_mes"} <= set(ours)  # fmt: skip
    assert ours["sih_rd.records"][0] > 0 and ours["nvd.cve_severity"][0] > 0


def test_marts_are_parquet_where_the_local_engine_writes_them(runs):
    (local, *_), (spark, *_) = runs["local"], runs["spark"]
    local_marts = sorted(
        p.relative_to(local / "data") for p in (local / "data" / "marts").glob("*/*.parquet")
    )
    spark_marts = sorted(
        p.relative_to(spark / "data") for p in (spark / "data" / "marts").glob("*/*.parquet")
    )
    assert local_marts == spark_marts and len(spark_marts) >= 5
    for mart in spark_marts:
        path = spark / "data" / mart
        if mart.parent.name == "sim_csv":  # a Polars transform's: written by the driver, a file as locally
            assert path.is_file()
            continue
        assert path.is_dir() and any(path.glob("part-*.parquet")), mart
        assert not list(path.parent.glob(f"{path.name}.*.tmp")), "a temporary folder was left"
        assert _count(f"{path}/*.parquet") == _count(local / "data" / mart)


def _count(parquet) -> int:
    """Rows in Parquet files, on a connection of its own (a result left unfinished on DuckDB's default
    connection fails the next statement any other test runs on it in this process)."""
    with duckdb.connect() as con:
        return con.execute(f"SELECT count(*) FROM read_parquet('{parquet}')").fetchall()[0][0]


def test_spark_run_reports_each_task_its_worker_and_peak_rss(runs):
    spark, code, out, err = runs["spark"]
    report = json.loads(out)
    assert report["engine"]["name"] == "spark" and report["engine"]["master"] == "local[2]"
    budget = report["engine"]["task_memory_limit_mb"]
    assert budget == 512  # spark.driver.memory 1g over local[2]'s two task slots
    tasks = [s for s in report["steps"] if s["step"] == "convert"]
    local = [s for s in json.loads(runs["local"][2])["steps"] if s["step"] == "convert"]
    assert sorted(s["file"] for s in tasks) == sorted(s["file"] for s in local) and len(tasks) >= 8
    for s in tasks:
        assert s["status"] == "ok" and s["worker"] and 0 < s["peak_rss_mb"] < budget, s
        assert f"{s['file']}: {s['rows']:,} rows" in err and f"({s['worker']})" in err
    assert "INFO spark: local[2], 2 task slots, 512 MB per task" in err
    assert [s["status"] for s in report["steps"] if s["step"] in ("transform", "warehouse")] == ["ok", "ok"]


def test_spark_rerun_skips_what_is_done_and_keeps_the_rows(runs, monkeypatch):
    spark, _, first, _ = runs["spark"]
    converted = sum(s["step"] == "convert" for s in json.loads(first)["steps"])
    before = fingerprints(spark / "data" / "warehouse.duckdb")
    code, out, err = etl(spark, "--engine", "spark", "run", monkeypatch=monkeypatch)
    assert code == 0, err
    assert f"{converted + 1:,} skipped, 0 failed" in err  # and the warehouse, its inputs unchanged
    assert "exceeded" not in err
    assert "spark: local[2], no conversion tasks" in err
    assert fingerprints(spark / "data" / "warehouse.duckdb") == before


def test_a_bad_file_fails_alone_and_is_retried_on_the_next_run(tmp_path, local_spark, monkeypatch):
    good = good_files_and_a_bad_one(tmp_path / "in", tmp_path, 2)
    (tmp_path / "etl.toml").write_text(
        '[etl]\nengine = "spark"\n[datasets.rd]\nkind = "datasus"\npaths = ["in/*.dbc"]\n'
    )
    code, out, err = etl(tmp_path, "--json", "run", monkeypatch=monkeypatch)
    assert code == 1
    report = json.loads(out)
    steps = {Path(s["file"]).name: s for s in report["steps"] if s["step"] == "convert"}
    assert steps["RDAC2301.dbc"]["status"] == "failed" and "RDAC2301.dbc" in steps["RDAC2301.dbc"]["error"]
    assert [steps[p.name]["status"] for p in good] == ["ok", "ok"]
    assert any(line.startswith("ERROR ") and "RDAC2301.dbc" in line for line in err.splitlines())
    state = StateStore(tmp_path / "data" / "state.sqlite")
    try:
        stages = {Path(r.path).name: r.stage for r in state.files("rd")}
    finally:
        state.close()
    assert stages == {"RDAC2301.dbc": "failed", good[0].name: "converted", good[1].name: "converted"}
    code, out, err = etl(tmp_path, "--json", "run", monkeypatch=monkeypatch)
    again = {Path(s["file"]).name: s["status"] for s in json.loads(out)["steps"] if s["step"] == "convert"}
    assert code == 1 and again == {"RDAC2301.dbc": "failed", good[0].name: "skipped", good[1].name: "skipped"}


def test_sql_spark_cannot_run_fails_before_any_mart_is_written(tmp_path, local_spark, monkeypatch):
    marts = tmp_path / "sql" / "tiny" / "010_marts.sql"
    marts.parent.mkdir(parents=True)
    view = "CREATE VIEW sem_acentos AS SELECT strip_accents(CAUSABAS) AS c FROM records;\n"
    mart = "CREATE TABLE rows_per_file AS SELECT _source_file, count(*) AS n FROM records GROUP BY ALL;\n"
    marts.write_text(
        view
        + mart
        + "-- a mart over a view Spark cannot build, on line 4:\nCREATE TABLE bad AS SELECT * FROM sem_acentos;\n"
    )
    (tmp_path / "etl.toml").write_text(
        '[etl]\nengine = "spark"\n[datasets.tiny]\nkind = "csv"\nsample = true\nsample_rows = 2000\n'
        'delimiter = ";"\nencoding = "latin-1"\n'
    )
    code, out, err = etl(tmp_path, "run", monkeypatch=monkeypatch)
    assert code == 1
    assert (
        f"sql/tiny/010_marts.sql, line 4: table sem_acentos is a view Spark cannot build ({marts}, line 1: "
        "function strip_accents(): DuckDB's, Spark has none of that name" in err
    )
    assert not (tmp_path / "data" / "marts" / "tiny").exists()  # the good mart was not written either
    assert not (tmp_path / "data" / "warehouse.duckdb").exists()

    # Without the mart that reads it, the view is DuckDB's alone, and works there.
    marts.write_text(view + mart)
    code, out, err = etl(tmp_path, "run", monkeypatch=monkeypatch)
    assert code == 0, err
    con = duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM tiny.sem_acentos").fetchone()[0] > 0
        assert (
            con.execute("SELECT sum(n) FROM tiny.rows_per_file").fetchone()[0]
            == con.execute("SELECT count(*) FROM tiny.records").fetchone()[0]
        )
    finally:
        con.close()
    assert (tmp_path / "data" / "marts" / "tiny" / "rows_per_file.parquet").is_dir()


def test_inputs_sharing_a_stem_get_distinct_outputs_on_spark_too(tmp_path, local_spark, monkeypatch):
    """The driver names the inputs; the executors write under those names (as the local engine does)."""
    for folder, rows in (("y2022", 3), ("y2023", 5)):
        (tmp_path / "in" / folder).mkdir(parents=True)
        (tmp_path / "in" / folder / "obitos.csv").write_text(
            "a,b\n" + "".join(f"{i},{folder}\n" for i in range(rows))
        )
    (tmp_path / "etl.toml").write_text(
        '[etl]\nengine = "spark"\n[datasets.d]\nkind = "csv"\npaths = ["in/*/*.csv"]\n'
    )
    code, out, err = etl(tmp_path, "run", monkeypatch=monkeypatch)
    assert code == 0, err
    parquet = tmp_path / "data" / "parquet" / "d"
    assert sorted(str(p.relative_to(parquet)) for p in parquet.rglob("*.parquet")) == [
        "y2022/obitos.parquet",
        "y2023/obitos.parquet",
    ]
    con = duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT _source_file, count(*) FROM d.records GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    assert rows == [("y2022/obitos.csv", 3), ("y2023/obitos.csv", 5)]
