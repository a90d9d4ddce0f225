"""A CSV shaped like a DATASUS export (SIM deaths): `;`, latin-1, quoted text, CRLF, a few bad rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

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


# Rows generated at a time: the sample's size is a setting, the generator's memory is not.
CHUNK_ROWS = 100_000


def _digits(values: np.ndarray, width: int = 0) -> pl.Series:
    text = pl.Series(values).cast(pl.String)
    return text.str.zfill(width) if width else text


def _pick(rng: np.random.Generator, choices: list[str], n: int) -> pl.Series:
    return pl.Series(choices).gather(rng.integers(0, len(choices), n))


def _date(rng: np.random.Generator, year: np.ndarray) -> pl.Series:
    n = len(year)
    return _digits(rng.integers(1, 29, n), 2) + _digits(rng.integers(1, 13, n), 2) + _digits(year)


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ';" ') else value


def _lines(rng: np.random.Generator, first: int, n: int) -> list[str]:
    """Rows first..first+n-1, each column drawn for all of them at once, as `;`-joined lines."""
    year = rng.choice([2021, 2022, 2023], n)
    age = np.minimum(110, rng.exponential(55, n).astype(np.int64))
    town = rng.integers(0, len(MUNICIPALITIES), n)
    cents = rng.integers(0, 500_000, n)
    blank = pl.Series([""])
    columns = [
        _digits(np.arange(first, first + n)),
        _date(rng, year),
        _digits(rng.integers(0, 24, n), 2) + _digits(rng.integers(0, 60, n), 2),
        _date(rng, year - age),
        _digits(400 + age),
        _pick(rng, list("1211122210"), n),
        _pick(rng, ["1", "1", "2", "3", "4", "4", "5", "9"], n),
        _digits(rng.integers(1, 10, n)),
        _digits(rng.integers(1, 10, n)),
        pl.Series([code for code, _ in MUNICIPALITIES]).gather(town),
        pl.Series([_quote(name) for _, name in MUNICIPALITIES]).gather(town),
        _digits(rng.integers(1, 7, n)),
        _pick(rng, CAUSES, n),
        _digits(rng.integers(500, 4501, n)).zip_with(pl.Series(rng.random(n) < 0.05), blank),
        pl.Series(["2"] * n).zip_with(pl.Series(rng.random(n) >= 0.9), blank),
        _digits(cents // 100) + "." + _digits(cents % 100, 2),
    ]
    frame = pl.DataFrame({str(k): c for k, c in enumerate(columns)})
    return frame.select(pl.concat_str(pl.all(), separator=";")).to_series().to_list()


def _malformed(i: int, line: str) -> str:
    """Row i malformed: truncated, with a field too many, or a letter O typed for a zero in IDADE."""
    if i % 20_000 == 7:
        return ";".join(line.split(";")[:5])  # a truncated export line
    if i % 20_000 == 13:
        return line + ";EXTRA"
    if i % 50_000 == 17:
        fields = line.split(";")
        return ";".join([*fields[:4], "4O5", *fields[5:]])
    return line


def write_sample(path: Path, rows: int = 300_000, seed: int = 20240601) -> Path:
    """Write the sample deterministically, CHUNK_ROWS rows at a time (numpy draws, Polars joins the text); about
    one row in 20,000 is malformed (ragged or mistyped)."""
    rng = np.random.default_rng(seed)
    with atomic_path(path, durable=False) as tmp, open(tmp, "w", encoding="latin-1", newline="") as f:
        f.write(";".join(HEADER) + "\r\n")
        for first in range(1, rows + 1, CHUNK_ROWS):
            lines = _lines(rng, first, min(CHUNK_ROWS, rows + 1 - first))
            rows_here = np.arange(first, first + len(lines))
            for i in rows_here[
                (rows_here % 20_000 == 7) | (rows_here % 20_000 == 13) | (rows_here % 50_000 == 17)
            ]:
                lines[i - first] = _malformed(int(i), lines[i - first])
            f.write("\r\n".join(lines) + "\r\n")
    return path
