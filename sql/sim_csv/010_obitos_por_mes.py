"""Deaths per month, sex and age group from the SIM-shaped CSV sample: a Polars transform on the streaming engine.

DTOBITO is text DDMMYYYY; IDADE's first digit is the unit (4 = years, 5 = 100 + years, below 4: under a year).
"""

import polars as pl

AGE_GROUPS = [0, 1, 15, 30, 45, 60, 75]


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
            faixa_etaria=years.cut(AGE_GROUPS, left_closed=True).cast(pl.String),
        )
        .group_by("month", "sexo", "faixa_etaria")
        .agg(obitos=pl.len())
        .sort("month", "sexo", "faixa_etaria")
    )
