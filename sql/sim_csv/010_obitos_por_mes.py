"""Deaths per month, sex and age group from the SIM-shaped CSV sample: a Polars transform on the streaming engine.

DTOBITO is text DDMMYYYY; IDADE's first digit is the unit (4 = years, 5 = 100 + years, below 4: under a year).
"""

import polars as pl

AGE_GROUPS = [(1, "<1"), (15, "1-14"), (30, "15-29"), (45, "30-44"), (60, "45-59"), (75, "60-74")]


def _age_group(years: pl.Expr) -> pl.Expr:
    expr = pl.when(years.is_null()).then(None)
    for upper, label in AGE_GROUPS:
        expr = expr.when(years < upper).then(pl.lit(label))
    return expr.otherwise(pl.lit("75+"))


def transform(tables: dict[str, pl.LazyFrame]) -> pl.LazyFrame:
    deaths = tables["records"]
    idade = pl.col("IDADE").cast(pl.Int64)
    years = (pl.when(idade // 100 == 4).then(idade % 100).when(idade // 100 == 5).then(100 + idade % 100)
             .when(idade // 100 < 4).then(0))
    return (
        deaths.with_columns(
            month=pl.col("DTOBITO").str.strptime(pl.Date, "%d%m%Y", strict=False).dt.truncate("1mo"),
            sexo=pl.col("SEXO").cast(pl.Int64).replace_strict({1: "Masculino", 2: "Feminino"}, default=None,
                                                              return_dtype=pl.String),
            faixa_etaria=_age_group(years),
        )
        .group_by("month", "sexo", "faixa_etaria")
        .agg(obitos=pl.len())
        .sort("month", "sexo", "faixa_etaria")
    )
