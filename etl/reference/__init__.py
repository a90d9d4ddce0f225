"""Reference tables shipped with etl (municipalities, states, CID-10, CBO) and their loading as the `ref` schema.

The Parquet files under etl/reference/data/ are derived from the public tables in ../shared/reference/ by
`python -m etl.reference.build` (never edited by hand); every warehouse build exposes them as views
`ref.<table>`, before the SQL transforms run, so staging SQL can join them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

DATA_DIR = Path(__file__).parent / "data"
SCHEMA = "ref"

# table -> (the shared CSVs it is derived from, its key (the build's sort order), what it holds)
TABLES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "ufs": (("ibge_municipios_2024.csv",), "uf_codigo", "States: IBGE code, abbreviation, name, region"),
    "municipios": (
        ("datasus_municipios.csv", "ibge_municipios_2024.csv"),
        "municipio_cod6",
        "Municipalities by DATASUS 6-digit code (ignored codes included) joined to IBGE 2024 (7-digit code, "
        "state, region, intermediate and immediate regions)",
    ),
    "cid10_capitulos": (("cid10_capitulos.csv",), "capitulo", "CID-10 chapters and their code ranges"),
    "cid10_categorias": (("cid10_categorias.csv",), "cid3", "CID-10 3-character categories"),
    "cid10_subcategorias": (
        ("cid10_subcategorias.csv",),
        "cid4",
        "CID-10 subcategories (restr_sexo: F/M only; causa_obito N: not an underlying cause of death)",
    ),
    "cid10": (
        ("cid10_categorias.csv", "cid10_subcategorias.csv", "cid10_capitulos.csv"),
        "cid",
        "CID-10 lookup: one row per 3- or 4-character code with its description and chapter",
    ),
    "cbo": (("cbo2002.csv",), "cbo_cod", "CBO 2002 occupations (6-character codes)"),
}


def data_file(table: str) -> Path:
    return DATA_DIR / f"{table}.parquet"


def load_reference(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Create schema `ref` with a view per shipped table; return the views' names."""
    from etl.sinks.duckdb import quote_ident, quote_literal

    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for table, (_, _, description) in TABLES.items():
        name = f"{SCHEMA}.{quote_ident(table)}"
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({quote_literal(str(data_file(table)))})"
        )
        con.execute(f"COMMENT ON VIEW {name} IS {quote_literal(description)}")
    return list(TABLES)
