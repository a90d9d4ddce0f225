"""SIH RD-shaped `.dbc` files (hospital admissions), generated deterministically with etl's own DBF and DBC writers."""

from __future__ import annotations

import datetime as dt
import logging
import random
from pathlib import Path

from etl.sources.dbc import write_dbc
from etl.sources.dbf import write_dbf

logger = logging.getLogger(__name__)

# The columns (names, types, widths) of real RD files, a subset of their ~90.
FIELDS = [
    ("UF_ZI", "C", 6, 0),
    ("ANO_CMPT", "C", 4, 0),
    ("MES_CMPT", "C", 2, 0),
    ("ESPEC", "C", 2, 0),
    ("CGC_HOSP", "C", 14, 0),
    ("N_AIH", "C", 13, 0),
    ("IDENT", "C", 1, 0),
    ("CEP", "C", 8, 0),
    ("MUNIC_RES", "C", 6, 0),
    ("NASC", "C", 8, 0),
    ("SEXO", "C", 1, 0),
    ("UTI_MES_TO", "N", 3, 0),
    ("PROC_REA", "C", 10, 0),
    ("VAL_TOT", "N", 14, 2),
    ("DT_INTER", "C", 8, 0),
    ("DT_SAIDA", "C", 8, 0),
    ("DIAG_PRINC", "C", 4, 0),
    ("MUNIC_MOV", "C", 6, 0),
    ("COD_IDADE", "C", 1, 0),
    ("IDADE", "N", 2, 0),
    ("DIAS_PERM", "N", 5, 0),
    ("MORTE", "N", 1, 0),
    ("RACA_COR", "C", 2, 0),
    ("CNES", "C", 7, 0),
]
MUNICIPALITIES = {
    "SP": ["355030", "350950", "354870", "352590", "354780"],
    "RJ": ["330455", "330170", "330490", "330350"],
    "MG": ["310620", "317020", "313670"],
}
DIAGNOSES = ["J189", "I219", "O800", "K359", "N390", "I64", "A419", "S720", "C509", "E119", "J441", "O821"]
PROCEDURES = ["0303140151", "0411010034", "0310010039", "0407030026", "0303060212", "0415010012"]
FILES = [("SP", 2023, 1), ("SP", 2023, 2), ("SP", 2023, 3), ("RJ", 2023, 1), ("RJ", 2023, 2), ("MG", 2023, 1)]


def _record(rng: random.Random, state: str, year: int, month: int, i: int) -> tuple:
    admitted = dt.date(year, month, 1) - dt.timedelta(days=rng.randint(0, 20))
    stay = min(int(rng.expovariate(1 / 5)), 99)
    unit, age = rng.choices(
        [("2", rng.randint(0, 29)), ("3", rng.randint(1, 11)), ("4", rng.randint(1, 99))], [2, 3, 95]
    )[0]
    years = age if unit == "4" else 0
    born = admitted - dt.timedelta(days=int(years * 365.25) + rng.randint(0, 364))
    # Real files hold dates that do not parse now and then.
    leave = "15/05/20" if i % 9973 == 0 else (admitted + dt.timedelta(days=stay)).strftime("%Y%m%d")
    munic = rng.choice(MUNICIPALITIES[state])
    return (
        munic,
        str(year),
        f"{month:02d}",
        rng.choice(["01", "02", "03", "07", "10"]),
        f"{rng.randint(0, 9**13):014d}",
        f"{state_code(state)}{year % 100:02d}{i:09d}",
        "1",
        f"{rng.randint(1000000, 99999999):08d}",
        munic,
        born.strftime("%Y%m%d"),
        rng.choice("113"),
        rng.choice([0, 0, 0, 0, 2, 5]),
        rng.choice(PROCEDURES),
        round(rng.lognormvariate(7, 1), 2),
        admitted.strftime("%Y%m%d"),
        leave,
        rng.choice(DIAGNOSES),
        munic,
        unit,
        age,
        stay,
        int(rng.random() < 0.04),
        rng.choice(["01", "01", "02", "03", "03", "04", "05", "99"]),
        f"{rng.randint(2000000, 9999999)}",
    )


def state_code(state: str) -> str:
    return {"SP": "35", "RJ": "33", "MG": "31"}[state]


def write_sample(raw_dir: Path, tmp_dir: Path, rows: int = 30_000, seed: int = 2023) -> list[Path]:
    """Write the sample files that are missing into raw_dir (scratch .dbf files in tmp_dir); return them all."""
    paths = []
    for n, (state, year, month) in enumerate(FILES):
        path = Path(raw_dir) / f"RD{state}{year % 100:02d}{month:02d}.dbc"
        paths.append(path)
        if path.exists():
            continue
        logger.info("generating the sample %s (%s records, once)", path.name, f"{rows:,}")
        rng = random.Random(seed + n)
        dbf = Path(tmp_dir) / f"{path.stem}.sample.dbf"
        try:
            write_dbf(dbf, FIELDS, (_record(rng, state, year, month, i) for i in range(rows)))
            write_dbc(dbf, path)
        finally:
            dbf.unlink(missing_ok=True)
    return paths
