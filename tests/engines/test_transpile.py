"""sql/ in DuckDB's dialect as Spark SQL: every shipped file transpiles; what cannot is named by file, line, construct."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl.config import Settings
from etl.engines.transpile import TranspileError, Transpiler, duckdb_text, statements
from etl.pipeline import BUILTIN_SQL

pytestmark = pytest.mark.slow  # a Spark session (its function list and its parser)


@pytest.fixture(scope="module")
def spark(local_spark):
    return local_spark.session()


@pytest.fixture(scope="module")
def functions(spark) -> frozenset[str]:
    return frozenset(r.function.lower() for r in spark.sql("SHOW FUNCTIONS").collect())


def transpiler(functions, schema="ds", tables=None) -> Transpiler:
    """Every table resolves (to `<schema>__<name>`) unless `tables` lists the known ones."""

    def resolve(s: str, n: str) -> str | None:
        return f"{s}__{n}" if tables is None or n in tables else None

    return Transpiler(schema, resolve, spark_functions=functions)


def shipped_folders() -> dict[str, list[Path]]:
    """Each sql/ folder with its files as a dataset sees them: its parents' shared files (macros) first."""
    out = {}
    for folder in sorted({p.parent for p in BUILTIN_SQL.rglob("*.sql")}):
        rel = folder.relative_to(BUILTIN_SQL)
        dirs = [BUILTIN_SQL.joinpath(*rel.parts[:i]) for i in range(1, len(rel.parts) + 1)]
        out[str(rel)] = [f for d in dirs for f in sorted(d.glob("*.sql"))]
    return out


# Staging views in DuckDB-only syntax: they stay DuckDB views over the Parquet whatever the engine (Spark builds
# only marts and what marts read). A new one shows up here, with its construct, until it is listed.
DUCKDB_ONLY = {
    "stg_estabelecimentos": "UNION … BY NAME",
    "stg_producao_ambulatorial": "UNION … BY NAME",
    "stg_internacoes": "UNION … BY NAME",
    "stg_obitos": "UNION … BY NAME",
    "stg_notificacoes": "UNION … BY NAME",
    "stg_nascidos_vivos": "UNION … BY NAME",
    "datas_invalidas": "DuckDB-only syntax sqlglot cannot translate: UNPIVOT (",
}
# Views over those (a mart reading any of them would fail, naming the view and its construct).
OVER_DUCKDB_ONLY = {"internacoes_por_mes"}


def test_every_shipped_sql_file_transpiles_to_sql_spark_parses(spark, functions):
    """Every mart and every view it reads transpiles to SQL Spark parses; the DuckDB-only views are the known ones."""
    parser = spark._jsparkSession.sessionState().sqlParser()
    folders = shipped_folders()
    assert {"nvd", "datasus/sih_rd", "datasus/sim_do"} <= set(folders)
    problems, duckdb_only, checked = [], {}, 0
    for schema, files in folders.items():
        broken: dict[str, TranspileError] = {}

        def resolve(s: str, n: str, broken=broken) -> str:
            if n.lower() in broken:
                raise broken[n.lower()]
            return f"{s}__{n}"

        sql = Transpiler(schema.replace("/", "_"), resolve, spark_functions=functions)
        for stmt in (s for f in files for s in statements(f)):
            try:
                if stmt.kind == "macro":
                    sql.define_macro(stmt)
                elif stmt.kind == "schema":
                    continue
                elif stmt.kind == "other":
                    raise stmt.error("not a CREATE VIEW, CREATE TABLE … AS SELECT or CREATE MACRO")
                else:
                    parser.parsePlan(sql.query(stmt))
                    checked += 1
            except TranspileError as e:
                if stmt.kind != "view":
                    problems.append(str(e))
                else:
                    broken[stmt.name.lower()] = e
                    duckdb_only[stmt.name] = e.message
            except Exception as e:  # Spark's parser refusing sqlglot's output
                problems.append(
                    f"{stmt.file}:{stmt.line}: Spark cannot parse: {str(e).strip().splitlines()[0]}"
                )
    assert not problems, "\n".join(problems)
    unknown = {n: m for n, m in duckdb_only.items() if n not in DUCKDB_ONLY and n not in OVER_DUCKDB_ONLY}
    assert not unknown, "\n".join(f"{n}: {m}" for n, m in unknown.items())
    for name, construct in DUCKDB_ONLY.items():
        assert construct in duckdb_only.get(name, ""), (name, duckdb_only.get(name))
    assert checked >= 10


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "010_test.sql"
    path.write_text(text)
    return path


def test_statements_know_their_line_and_what_they_create(tmp_path):
    path = write(
        tmp_path,
        "-- a comment; with a semicolon\nCREATE MACRO m(x) AS x + 1;\n\nCREATE OR REPLACE VIEW v AS SELECT ';' AS s;\n"
        "CREATE TABLE t AS\n  SELECT 1 AS a;\nINSERT INTO t VALUES (2);\nCREATE SCHEMA IF NOT EXISTS kev;\n"
        "CREATE VIEW IF NOT EXISTS kev.records AS SELECT NULL::VARCHAR AS cve_id;\n",
    )
    got = [(s.line, s.kind, s.schema, s.name, s.if_not_exists) for s in statements(path)]
    assert got == [
        (2, "macro", None, "m", False),
        (4, "view", None, "v", False),
        (5, "table", None, "t", False),
        (7, "other", None, None, False),
        (8, "schema", None, None, False),
        (9, "view", "kev", "records", True),
    ]


def test_macros_are_inlined_and_run_on_spark(tmp_path, spark, functions):
    path = write(
        tmp_path,
        "CREATE MACRO idade_anos(cod, idade) AS CASE cod WHEN '4' THEN idade WHEN '5' THEN idade + 100 ELSE 0 END;\n"
        "CREATE MACRO dobro(x) AS x * 2;\n"
        "CREATE MACRO anos_dobro(cod, idade) AS dobro(idade_anos(cod, idade));\n"
        "CREATE TABLE t AS SELECT anos_dobro(c, i + 1) AS a FROM records ORDER BY a;\n",
    )
    spark.sql("SELECT * FROM VALUES ('4', 29), ('5', 1), ('3', 7) AS v(c, i)").createOrReplaceTempView(
        "ds__records"
    )
    sql = transpiler(functions)
    *macros, table = statements(path)
    for m in macros:
        sql.define_macro(m)
    query = sql.query(table)
    assert "IDADE_ANOS" not in query.upper() and "DOBRO" not in query.upper()
    assert [r.a for r in spark.sql(query).collect()] == [0, 60, 204]


def test_try_strptime_becomes_try_to_timestamp(tmp_path, spark, functions):
    path = write(
        tmp_path, "CREATE VIEW v AS SELECT CAST(try_strptime(d, '%Y%m%d') AS DATE) AS dt FROM records;"
    )
    spark.sql("SELECT * FROM VALUES ('20230131'), ('20231399'), (NULL) AS v(d)").createOrReplaceTempView(
        "ds__records"
    )
    query = transpiler(functions).query(statements(path)[0])
    assert "TRY_TO_TIMESTAMP" in query and "yyyyMMdd" in query
    assert [str(r.dt) for r in spark.sql(query).collect()] == ["2023-01-31", "None", "None"]


@pytest.mark.parametrize(
    ("sql", "line", "construct"),
    [
        ("CREATE TABLE t AS SELECT strip_accents(x) AS y FROM records", 3, "function strip_accents()"),
        ("CREATE VIEW v AS\nSELECT * FROM nowhere", 3, "table nowhere"),
        ("CREATE MACRO tm(x) AS TABLE SELECT x", 3, "table macro tm"),
        ("CREATE TABLE t AS SELECT * FROM read_csv('x.csv')", 3, "table function"),
    ],
)
def test_what_does_not_transpile_is_named_by_file_line_and_construct(
    tmp_path, functions, sql, line, construct
):
    path = write(tmp_path, f"-- header\n-- more\n{sql};\n")
    sql_ = transpiler(functions, tables={"records"})
    with pytest.raises(TranspileError) as err:
        for stmt in statements(path):
            sql_.define_macro(stmt) if stmt.kind == "macro" else sql_.query(stmt)
    assert err.value.file == str(path) and f"line {line}" in str(err.value) and construct in str(err.value)


def test_duckdb_text_puts_a_view_over_the_mart_where_the_table_was(tmp_path):
    path = write(
        tmp_path,
        "CREATE VIEW v AS SELECT 1 AS a;\nCREATE OR REPLACE TABLE t AS\n  SELECT * FROM v;\nSELECT 1;\n",
    )
    settings = Settings(data_dir=tmp_path)
    mart = tmp_path / "marts" / "t.parquet"
    text = duckdb_text(path, {"t": mart}, settings)
    assert text.count("\n") == path.read_text().count("\n")
    assert "CREATE VIEW v AS SELECT 1 AS a;" in text and text.endswith("SELECT 1;\n")
    assert (
        'CREATE OR REPLACE VIEW "t" AS SELECT * FROM '
        "read_parquet([main.etl_data_path('marts/t.parquet/*.parquet')], union_by_name = true)" in text
    )
    assert duckdb_text(path, {}, settings) == path.read_text()


def test_typeof_compares_as_in_duckdb(tmp_path, spark, functions):
    path = write(
        tmp_path, "CREATE VIEW v AS SELECT typeof(d) = 'DATE' AS is_date, typeof(n) AS t FROM records;"
    )
    spark.sql("SELECT DATE'2023-01-31' AS d, 1L AS n").createOrReplaceTempView("ds__records")
    row = spark.sql(transpiler(functions).query(statements(path)[0])).collect()[0]
    assert row.is_date is True and row.t == "BIGINT"
