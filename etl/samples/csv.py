"""A CSV shaped like a DATASUS export (SIM deaths): `;`, latin-1, quoted text, CRLF, a few bad rows."""

from __future__ import annotations

import random
from pathlib import Path

from etl.files import atomic_path

HEADER = [
    "CONTADOR",
    "DTOBITO",
    "HORAOBITO",
    "DTNASC",
    "IDADE",
    "SEXO",
    "RACACOR",
    "ESTCIV",
    "ESC",
    "CODMUNRES",
    "MUNRES",
    "LOCOCOR",
    "CAUSABAS",
    "PESO",
    "OBITOGRAV",
    "VALOR",
]
MUNICIPALITIES = [
    ("355030", "São Paulo"),
    ("330455", "Rio de Janeiro"),
    ("310620", "Belo Horizonte"),
    ("292740", "Salvador"),
    ("230440", "Fortaleza"),
    ("520870", "Goiânia"),
    ("261160", "Recife"),
    ("431490", "Porto Alegre"),
    ("150140", "Belém"),
    ("211130", "São Luís"),
    ("320530", "Vitória"),
    ("420540", "Florianópolis"),
    ("510340", "Cuiabá"),
    ("280030", "Aracaju"),
    ("170210", 'Araguaína; "Norte"'),
]
CAUSES = ["I219", "J189", "C349", "E149", "I64", "X599", "A419", "J449", "I10", "K746", "C509", "V892"]


def _row(rng: random.Random, i: int) -> list[str]:
    year = rng.choice((2021, 2022, 2023))
    death = f"{rng.randint(1, 28):02d}{rng.randint(1, 12):02d}{year}"
    age_years = min(110, int(rng.expovariate(1 / 55)))
    birth = f"{rng.randint(1, 28):02d}{rng.randint(1, 12):02d}{year - age_years}"
    code, name = rng.choice(MUNICIPALITIES)
    return [
        str(i),
        death,
        f"{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}",
        birth,
        str(400 + age_years),
        rng.choice("1211122210"),
        str(rng.choice((1, 1, 2, 3, 4, 4, 5, 9))),
        str(rng.randint(1, 9)),
        str(rng.randint(1, 9)),
        code,
        name,
        str(rng.randint(1, 6)),
        rng.choice(CAUSES),
        str(rng.randint(500, 4500)) if rng.random() < 0.05 else "",
        "" if rng.random() < 0.9 else "2",
        f"{rng.uniform(0, 5000):.2f}",
    ]


def _quote(value: str) -> str:
    return (
        '"' + value.replace('"', '""') + '"' if any(c in value for c in ';"\r\n') or " " in value else value
    )


def write_sample(path: Path, rows: int = 300_000, seed: int = 20240601) -> Path:
    """Write the sample deterministically; about one row in 20,000 is malformed (ragged or mistyped)."""
    rng = random.Random(seed)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="latin-1", newline="") as f:
        f.write(";".join(HEADER) + "\r\n")
        for i in range(1, rows + 1):
            row = _row(rng, i)
            if i % 20_000 == 7:
                row = row[:5]  # a truncated export line
            elif i % 20_000 == 13:
                row = [*row, "EXTRA"]
            elif i % 50_000 == 17:
                row[4] = "4O5"  # letter O typed for a zero
            f.write(";".join(_quote(v) for v in row) + "\r\n")
    return path
