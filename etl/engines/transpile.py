"""sql/ files, written in DuckDB's dialect, as Spark SQL: statements split with their lines, macros inlined,
table names mapped to Spark temporary views, and every construct Spark lacks reported before anything runs.

Spark runs what must be computed: `CREATE TABLE … AS SELECT` (a mart) and the views and macros those depend on.
The warehouse keeps running every file in DuckDB as written, except that a mart Spark computed becomes a view
over its Parquet (`duckdb_text`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.tokens import TokenType

from etl.config import Settings
from etl.errors import LoadError
from etl.sinks.duckdb import parquet_scan, quote_ident


class SparkSQL(Spark):
    """Spark's dialect, with DuckDB's try_strptime (NULL on a bad date) as Spark's try_to_timestamp."""

    class Generator(Spark.Generator):
        TRANSFORMS = {
            **Spark.Generator.TRANSFORMS,
            exp.StrToTime: lambda self, e: self.func(
                "TRY_TO_TIMESTAMP" if e.args.get("safe") else "TO_TIMESTAMP",
                e.this,
                self.format_time(e),
            ),
        }


class TranspileError(LoadError):
    """A statement of a sql/ file that Spark cannot run (named by file, line and construct)."""


@dataclass
class Statement:
    """One statement of a sql/ file: where it is, what it creates, its text and its DuckDB syntax tree."""

    file: Path
    line: int
    start: int  # character offsets of the statement in its file
    end: int
    text: str
    tree: exp.Expression | None
    kind: str  # view | table | macro | schema | other
    name: str | None = None
    schema: str | None = None  # a view's or table's own schema (`CREATE VIEW kev.records`), else None
    if_not_exists: bool = False

    def error(self, message: str) -> TranspileError:
        return TranspileError(
            message,
            file=str(self.file),
            position=f"line {self.line}",
            hint='Rewrite it in SQL both DuckDB and Spark accept, or run with engine = "local"',
        )


def statements(path: Path) -> list[Statement]:
    """A file's statements in order, split on the tokenizer's semicolons (so `;` inside strings is safe)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        tokens = SparkSQL.get_or_raise("duckdb").tokenize(text)
    except SqlglotError as e:
        raise LoadError(f"cannot read the SQL: {e}", file=str(path)) from None
    out, chunk = [], []
    for token in [*tokens, None]:
        if token is not None and token.token_type != TokenType.SEMICOLON:
            chunk.append(token)
            continue
        if chunk:
            start, end = chunk[0].start, chunk[-1].end + 1
            out.append(_statement(Path(path), text, start, end, chunk[0].line))
        chunk = []
    return out


def _statement(path: Path, text: str, start: int, end: int, line: int) -> Statement:
    body = text[start:end]
    quiet = logging.getLogger("sqlglot")  # it warns when it keeps a statement as text: reported below instead
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        tree = sqlglot.parse_one(body, read="duckdb")
    except SqlglotError as e:
        stmt = Statement(path, line, start, end, body, None, "other")
        raise stmt.error(f"sqlglot cannot parse this statement: {str(e).splitlines()[0]}") from None
    finally:
        quiet.setLevel(level)
    stmt = Statement(path, line, start, end, body, tree, "other")
    created = re.match(
        r"\s*(?:--[^\n]*\n\s*)*CREATE\s+(?:OR\s+REPLACE\s+)?(VIEW|TABLE)\s+([\w.\"]+)\s+AS\b", body, re.I
    )
    if (
        isinstance(tree, exp.Command) and created
    ):  # syntax sqlglot keeps as text (DuckDB's UNPIVOT … COLUMNS(*))
        schema, _, name = created.group(2).replace('"', "").rpartition(".")
        stmt.kind, stmt.name, stmt.schema = created.group(1).lower(), name, schema or None
    elif isinstance(tree, exp.Create):
        created = str(tree.args.get("kind") or "").upper()
        if created in ("MACRO", "FUNCTION"):
            stmt.kind, stmt.name = "macro", tree.this.this.name
        elif created == "SCHEMA":
            stmt.kind = "schema"
        elif created in ("VIEW", "TABLE") and isinstance(tree.expression, exp.Query):
            stmt.kind, stmt.name, stmt.schema = created.lower(), tree.this.name, tree.this.db or None
            stmt.if_not_exists = bool(tree.args.get("exists"))
    return stmt


@dataclass
class Macro:
    params: list[str]
    body: exp.Expression


@dataclass
class Transpiler:
    """DuckDB → Spark for one schema's files; `resolve(schema, name)` gives the Spark view of a table or None."""

    schema: str
    resolve: Callable[[str, str], str | None]
    macros: dict[str, Macro] = field(default_factory=dict)
    spark_functions: frozenset[str] = frozenset()

    def define_macro(self, stmt: Statement) -> None:
        if stmt.tree.args.get("properties") or isinstance(stmt.tree.expression, exp.Query):
            raise stmt.error(f"table macro {stmt.name}: Spark has no counterpart")
        params = [p.name for p in stmt.tree.this.expressions]
        self.macros[stmt.name.lower()] = Macro(params, self._inline(stmt, stmt.tree.expression.copy()))

    def query(self, stmt: Statement) -> str:
        """The Spark SQL of a view's or table's SELECT, table names resolved; raises TranspileError."""
        if isinstance(stmt.tree, exp.Command):
            construct = " ".join(re.split(r"\sAS\s", stmt.text, maxsplit=1, flags=re.I)[-1].split())[:70]
            raise stmt.error(f"DuckDB-only syntax sqlglot cannot translate: {construct}…")
        if any(u.args.get("by_name") for u in stmt.tree.find_all(exp.Union)):
            raise stmt.error(
                "UNION … BY NAME: Spark SQL has none (only DataFrame.unionByName); list the columns"
            )
        tree = self._inline(stmt, stmt.tree.expression.copy()).transform(_duckdb_only)
        tree = self._tables(stmt, tree)
        try:
            sql = tree.sql(dialect=SparkSQL, unsupported_level=ErrorLevel.RAISE)
        except SqlglotError as e:
            raise stmt.error(f"no Spark SQL for {str(e).splitlines()[0]}") from None
        self._check_functions(stmt, sqlglot.parse_one(sql, read=SparkSQL))
        return sql

    def _inline(self, stmt: Statement, tree: exp.Expression) -> exp.Expression:
        """Calls of the file's macros replaced by their bodies (arguments in parentheses), Spark having none."""

        def inline(node: exp.Expression) -> exp.Expression:
            if not isinstance(node, exp.Anonymous) or node.name.lower() not in self.macros:
                return node
            macro = self.macros[node.name.lower()]
            if len(node.expressions) != len(macro.params):
                raise stmt.error(
                    f"macro {node.name} takes {len(macro.params)} arguments, called with {len(node.expressions)}"
                )
            args = dict(zip(macro.params, node.expressions, strict=True))

            def substitute(n: exp.Expression) -> exp.Expression:
                if isinstance(n, exp.Column) and not n.table and n.name in args:
                    return exp.paren(args[n.name].copy(), copy=False)
                return n

            # the arguments may call macros too: they are inside the new node, which transform does not revisit
            return self._inline(stmt, macro.body.copy().transform(substitute))

        return tree.transform(inline)

    def _tables(self, stmt: Statement, tree: exp.Expression) -> exp.Expression:
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}

        def table(node: exp.Expression) -> exp.Expression:
            if not isinstance(node, exp.Table) or not node.name or isinstance(node.this, exp.Func):
                if isinstance(node, exp.Table) and isinstance(node.this, exp.Func):
                    raise stmt.error(
                        f"table function {node.this.sql('duckdb')[:60]}: Spark has no counterpart"
                    )
                return node
            if not node.db and node.name.lower() in ctes:
                return node
            try:
                view = self.resolve(node.db or self.schema, node.name)
            except TranspileError as e:  # a view Spark could not build, needed here
                raise stmt.error(
                    f"table {node.sql('duckdb')} is a view Spark cannot build ({e.file}, {e.position}: {e.message})"
                ) from None
            if view is None and not node.db:
                view = self.resolve("main", node.name)
            if view is None:
                raise stmt.error(f"table {node.sql('duckdb')}: no such table or view for Spark")
            alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(node.name))
            return exp.Table(this=exp.to_identifier(view, quoted=True), alias=alias)

        return tree.transform(table)

    def _check_functions(self, stmt: Statement, spark_tree: exp.Expression) -> None:
        """Functions sqlglot did not recognise pass through by name: each must exist in Spark."""
        if not self.spark_functions:
            return
        for func in spark_tree.find_all(exp.Anonymous):
            if func.name.lower() not in self.spark_functions:
                raise stmt.error(f"function {func.name.lower()}(): DuckDB's, Spark has none of that name")


def _duckdb_only(node: exp.Expression) -> exp.Expression:
    """DuckDB functions sqlglot's DuckDB reader leaves unparsed, as the expressions Spark's writer knows."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "try_strptime" and len(node.expressions) == 2:
        return exp.StrToTime(this=node.expressions[0], format=node.expressions[1], safe=True)
    if isinstance(node, exp.Typeof):  # DuckDB names types in capitals ('DATE'), Spark in lower case
        return exp.Upper(this=node.copy())
    return node


def duckdb_text(path: Path, marts: dict[str, Path], settings: Settings) -> str:
    """A file's text for the warehouse with each mart Spark computed (name -> its Parquet folder) as a view over
    that Parquet (named from the data directory, as the warehouse's other views); lines stay where they were, so
    DuckDB's errors still point into the file."""
    text = Path(path).read_text(encoding="utf-8")
    out, pos = [], 0
    for stmt in statements(path):
        if stmt.kind == "table" and stmt.name in marts:
            scan = parquet_scan(settings, [Path(marts[stmt.name]) / "*.parquet"])
            view = f"CREATE OR REPLACE VIEW {quote_ident(stmt.name)} AS SELECT * FROM {scan}"
            out += [text[pos : stmt.start], view, "\n" * stmt.text.count("\n")]
            pos = stmt.end
    return "".join(out) + text[pos:]
