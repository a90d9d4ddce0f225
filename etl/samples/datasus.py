"""DATASUS-shaped `.dbc` samples, one per main system, generated deterministically with etl's own DBF and DBC writers.

SIH RD (admissions), SIA PA (outpatient production), SIM DO (deaths), SINASC DN (live births), SINAN DENG (dengue
notifications, one national file) and CNES ST (establishments). Each uses its system's real field names, widths and
code formats (SIM dates DDMMYYYY, SIH YYYYMMDD, SINAN `D` fields; SIM `IDADE` unit-coded, SINAN `NU_IDADE_N` four
digits; each system's own race code table), real municipality codes of four states of different sizes (from the
shipped reference table), real CID-10 codes with a skewed distribution and a long tail, plausible proportions of
ages, sexes and races, months with seasonality, and a share of ignored or invalid codes as real files have.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import itertools
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from etl.sources import map_here
from etl.sources.dbc import write_dbc
from etl.sources.dbf import write_dbf

logger = logging.getLogger(__name__)

Field = tuple[str, str, int, int]

# Relative sizes (about the states' populations) and a year of monthly weights per system.
STATE_SIZE = {"SP": 1.0, "MG": 0.46, "BA": 0.31, "AM": 0.085}
STATES = tuple(STATE_SIZE)
CAPITALS = {
    "SP": "355030", "MG": "310620", "BA": "292740", "AM": "130260", "RJ": "330455", "PE": "261160",
    "PR": "410690", "GO": "520870", "DF": "530010", "SC": "420540", "CE": "230440", "RS": "431490",
}  # fmt: skip
YEAR = 2023


def _fields(spec: str) -> list[Field]:
    """`NAME:C6 VAL:N14.2 …` as DBF field tuples."""
    out = []
    for item in spec.split():
        name, kind = item.split(":")
        length, _, decimals = kind[1:].partition(".")
        out.append((name, kind[0], int(length), int(decimals or 0)))
    return out


class Choice:
    """A weighted choice with precomputed cumulative weights (rng.choices recomputes them per call)."""

    def __init__(self, weighted: dict | Iterable[tuple[object, float]]):
        pairs = list(weighted.items() if isinstance(weighted, dict) else weighted)
        self.values = [v for v, _ in pairs]
        self.cum = list(itertools.accumulate(w for _, w in pairs))

    def __call__(self, rng: random.Random):
        return self.values[bisect.bisect(self.cum, rng.random() * self.cum[-1])]


@functools.cache
def _reference(table: str, columns: tuple[str, ...]) -> list[tuple]:
    import pyarrow.parquet as pq

    from etl.reference import data_file

    # ParquetFile rather than read_table, which imports pyarrow.dataset and with it pandas (0.7 s and more).
    t = pq.ParquetFile(data_file(table)).read(columns=list(columns))
    return list(zip(*(t.column(c).to_pylist() for c in columns), strict=True))


@functools.cache
def _places(state: str) -> Choice:
    """A state's municipalities, Zipf-weighted with the capital first: most records come from a few places."""
    codes = [c for c, uf, status, tipo in _reference("municipios", ("municipio_cod6", "uf", "status", "tipo"))
             if uf == state and status == "ATIVO" and tipo != "DISEST"]  # fmt: skip
    capital = CAPITALS.get(state, codes[0])
    rest = sorted(c for c in codes if c != capital)
    random.Random(state).shuffle(rest)
    ranked = [capital, *rest]
    return Choice((c, 1 / (k + 1) ** 1.1) for k, c in enumerate(ranked))


def _place(rng: random.Random, state: str, ignored: float = 0.004) -> str:
    """A municipality of residence; now and then the state's "ignored municipality" code or 000000."""
    r = rng.random()
    if r < ignored:
        return f"{STATE_CODE[state]}0000" if r < ignored * 0.7 else "000000"
    return _places(state)(rng)


@functools.cache
def _long_tail(exclude: str = "") -> list[str]:
    """Every 4-character CID-10 subcategory outside the given initial letters (the rare diagnoses)."""
    return [c for (c,) in _reference("cid10", ("cid",)) if len(c) == 4 and c[0] not in exclude]


@functools.cache
def _occupations() -> list[str]:
    return [c for (c,) in _reference("cbo", ("cbo_cod",))]


STATE_CODE = {
    "RO": "11", "AC": "12", "AM": "13", "RR": "14", "PA": "15", "AP": "16", "TO": "17", "MA": "21", "PI": "22",
    "CE": "23", "RN": "24", "PB": "25", "PE": "26", "AL": "27", "SE": "28", "BA": "29", "MG": "31", "ES": "32",
    "RJ": "33", "SP": "35", "PR": "41", "SC": "42", "RS": "43", "MS": "50", "MT": "51", "GO": "52", "DF": "53",
}  # fmt: skip


def state_code(state: str) -> str:
    return STATE_CODE[state]


# Race/colour shares by state (Branca, Preta, Amarela, Parda, Indígena), close to the 2022 census.
RACE_SHARES = {
    "SP": (57, 8, 1.2, 33, 0.2), "MG": (41, 11, 0.6, 47, 0.2), "BA": (19, 23, 0.5, 57, 0.4),
    "AM": (19, 5, 0.4, 69, 6.5), "RJ": (43, 16, 0.4, 40, 0.1),
}  # fmt: skip
RACES = ("Branca", "Preta", "Amarela", "Parda", "Indígena")
# SIM, SINASC and SINAN code race 1 Branca 2 Preta 3 Amarela 4 Parda 5 Indígena 9 Ignorado;
# SIH and SIA use two digits with Parda and Amarela swapped: 01 02 03 Parda 04 Amarela 05, 99 Sem informação.
RACE_CODE = {"Branca": "1", "Preta": "2", "Amarela": "3", "Parda": "4", "Indígena": "5"}
RACE_CODE_SIH = {"Branca": "01", "Preta": "02", "Parda": "03", "Amarela": "04", "Indígena": "05"}


@functools.cache
def _race(state: str, codes: tuple[tuple[str, str], ...], unknown: str, unknown_share: float) -> Choice:
    shares = RACE_SHARES.get(state, RACE_SHARES["SP"])
    known = 100 - unknown_share
    return Choice([(dict(codes)[r], s * known / sum(shares)) for r, s in zip(RACES, shares, strict=True)]
                  + [(unknown, unknown_share)])  # fmt: skip


def race(rng: random.Random, state: str, sih: bool = False, unknown_share: float = 4.0) -> str:
    table = RACE_CODE_SIH if sih else RACE_CODE
    return _race(state, tuple(table.items()), "99" if sih else "9", unknown_share)(rng)


def _age(rng: random.Random, lo: float, hi: float, mode: float) -> float:
    return rng.triangular(lo, hi, mode)


def _ymd(day: dt.date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"  # as strftime("%Y%m%d"), six times faster


def _dmy(day: dt.date) -> str:
    return f"{day.day:02d}{day.month:02d}{day.year:04d}"


def _date_in(rng: random.Random, year: int, month: int) -> dt.date:
    start = dt.date(year, month, 1)
    end = dt.date(year + month // 12, month % 12 + 1, 1)
    return start + dt.timedelta(days=rng.randrange((end - start).days))


def _cnes(rng: random.Random, state: str) -> str:
    """A CNES establishment code: a pool of a few hundred per state, so establishments repeat."""
    return f"{int(STATE_CODE[state]) * 71_000 + rng.randrange(300) * 17 + 2_000_000:07d}"


# --------------------------------------------------------------------------------------------------- SIH RD
SIH_FIELDS = _fields(
    "UF_ZI:C6 ANO_CMPT:C4 MES_CMPT:C2 ESPEC:C2 CGC_HOSP:C14 N_AIH:C13 IDENT:C1 CEP:C8 MUNIC_RES:C6 NASC:C8 SEXO:C1 "
    "UTI_MES_TO:N3 MARCA_UTI:C2 UTI_INT_TO:N3 DIAR_ACOM:N3 QT_DIARIAS:N3 PROC_SOLIC:C10 PROC_REA:C10 "
    "VAL_SH:N13.2 VAL_SP:N13.2 VAL_TOT:N14.2 VAL_UTI:N8.2 US_TOT:N8.2 DT_INTER:C8 DT_SAIDA:C8 DIAG_PRINC:C4 "
    "DIAG_SECUN:C4 COBRANCA:C2 NATUREZA:C2 NAT_JUR:C4 GESTAO:C1 MUNIC_MOV:C6 COD_IDADE:C1 IDADE:N2 DIAS_PERM:N5 "
    "MORTE:N1 NACIONAL:C3 CAR_INT:C2 INSTRU:C1 CBOR:C6 CNES:C7 CID_MORTE:C4 COMPLEX:C2 FINANC:C2 RACA_COR:C2 "
    "ETNIA:C4"
)
FIELDS = SIH_FIELDS  # the SIH RD layout, as tests and fixtures build RD files from it
# Principal diagnosis: (CID-10, weight, share of men, age (min, max, mode) in years, SIGTAP procedure, ESPEC,
# CAR_INT, mean stay in days, mean amount paid).
SIH_DIAGNOSES = [
    ("O800", 9.0, 0.0, (13, 46, 24), "0310010039", "02", "02", 2, 620),
    ("O821", 7.0, 0.0, (14, 47, 28), "0411010034", "02", "02", 2, 850),
    ("O820", 3.0, 0.0, (16, 47, 31), "0411010034", "02", "01", 2, 850),
    ("J189", 7.5, 0.52, (0, 100, 78), "0303140151", "03", "02", 7, 1300),
    ("I500", 4.0, 0.5, (30, 100, 74), "0303060212", "03", "02", 7, 1500),
    ("N390", 3.5, 0.3, (0, 100, 62), "0303150050", "03", "02", 5, 550),
    ("K802", 3.5, 0.25, (16, 90, 47), "0407030026", "01", "01", 2, 1100),
    ("K409", 3.0, 0.88, (0, 90, 55), "0407040102", "01", "01", 1, 650),
    ("I219", 2.5, 0.63, (32, 100, 64), "0303060190", "03", "02", 6, 2600),
    ("I64", 2.5, 0.52, (35, 100, 71), "0303040149", "03", "02", 8, 1400),
    ("A419", 2.0, 0.52, (0, 100, 66), "0303010037", "03", "02", 10, 2300),
    ("J441", 1.8, 0.55, (40, 100, 70), "0303140046", "03", "02", 6, 950),
    ("E149", 1.5, 0.45, (10, 100, 62), "0303030038", "03", "02", 6, 700),
    ("A09", 1.5, 0.48, (0, 95, 4), "0303010061", "07", "02", 3, 350),
    ("J219", 1.5, 0.56, (0, 2, 0.3), "0303140151", "07", "02", 5, 900),
    ("C509", 1.2, 0.01, (25, 95, 56), "0304100021", "03", "01", 4, 1800),
    ("F200", 1.0, 0.65, (16, 80, 35), "0303170093", "05", "02", 25, 1900),
    ("S720", 1.0, 0.3, (45, 100, 81), "0415010012", "01", "02", 8, 3200),
    ("P073", 0.8, 0.52, (0, 0.08, 0), "0303010037", "07", "02", 14, 4100),
]
SIH_DIAGNOSIS = Choice((d, d[1]) for d in SIH_DIAGNOSES)
SIH_SECONDARY = Choice({"": 70, "I10": 10, "E119": 5, "Z038": 3, "N189": 2, "J969": 2, "R688": 1})
SIH_EXIT = Choice({"12": 62, "11": 12, "14": 4, "15": 3, "16": 1, "18": 2, "31": 4, "21": 1, "51": 0.5})
SIH_DEATH_EXIT = Choice({"41": 85, "43": 10, "42": 5})
SIH_NATUREZA = Choice({"00": 70, "50": 8, "40": 6, "60": 6, "20": 5, "30": 2, "61": 2, "90": 1})
SIH_NAT_JUR = Choice({"1031": 30, "1023": 22, "3999": 22, "2062": 12, "1015": 4, "3069": 6, "1244": 4})
SIH_MONTHS = (0.95, 0.9, 1.0, 1.02, 1.08, 1.1, 1.08, 1.05, 1.0, 1.0, 0.97, 0.92)


def _sih_age(years: float) -> tuple[str, int]:
    """SIH's COD_IDADE/IDADE: 2 days, 3 months, 4 years, 5 years over 100 (IDADE holds what is over 100)."""
    if years < 1 / 12:
        return "2", int(years * 365.25)
    if years < 1:
        return "3", max(1, int(years * 12))
    if years >= 100:
        return "5", int(years) - 100
    return "4", int(years)


def _record(rng: random.Random, state: str, year: int, month: int, i: int) -> tuple:
    """One SIH RD admission of a file of `state`, `year`, `month` (its competence); `i` its position."""
    cid, _, men, ages, proc, espec, car_int, stay_mean, value_mean = SIH_DIAGNOSIS(rng)
    if rng.random() < 0.1:  # the long tail: any subcategory outside external causes and special codes
        cid, proc, espec, car_int = rng.choice(_long_tail("UVWXY")), "0303010037", "03", "02"
    years = _age(rng, *ages)
    cod_idade, idade = _sih_age(years)
    male = rng.random() < men
    # Admitted in the month of competence or up to two before, as AIHs are billed when the patient leaves.
    stay = min(int(rng.expovariate(1 / stay_mean)), 120)
    left = _date_in(rng, year, month)
    admitted = left - dt.timedelta(days=stay)
    born = admitted - dt.timedelta(days=int(years * 365.25))
    died = rng.random() < (0.12 if years > 70 and proc.startswith("0303") else 0.025)
    uti = rng.choice((0, 0, 0, 0, 0, 0, 0, 2, 4, 9)) if espec != "02" else 0
    total = round(rng.lognormvariate(0, 0.45) * value_mean + uti * 480, 2)
    munic_res = _place(rng, state)
    munic_mov = munic_res if rng.random() < 0.55 else CAPITALS.get(state, munic_res)
    cnes = _cnes(rng, state)
    return (
        f"{STATE_CODE[state]}0000" if rng.random() < 0.4 else munic_mov,
        str(year),
        f"{month:02d}",
        espec,
        f"{int(cnes) * 1_000_000 + 1:014d}",
        f"{STATE_CODE[state]}{year % 100:02d}1{i:08d}",
        "1" if rng.random() < 0.97 else "5",
        f"{rng.randint(1_000_000, 99_999_999):08d}",
        munic_res,
        _ymd(born),
        "0" if rng.random() < 0.001 else ("1" if male else "3"),
        uti,
        "00" if not uti else rng.choice(("74", "75", "76", "81")),
        uti,
        0,
        stay,
        proc,
        proc,
        round(total * 0.8, 2),
        round(total * 0.2, 2),
        total,
        float(uti * 480),
        round(total / 10, 2),
        _ymd(admitted),
        # Real files hold dates that do not parse now and then.
        "15/05/20" if i % 9973 == 9972 else _ymd(left),
        cid,
        SIH_SECONDARY(rng),
        SIH_DEATH_EXIT(rng) if died else SIH_EXIT(rng),
        SIH_NATUREZA(rng),
        SIH_NAT_JUR(rng),
        rng.choice("12"),
        munic_mov,
        cod_idade,
        idade,
        stay,
        int(died),
        "010",
        car_int,
        "0",
        "" if rng.random() < 0.9 else rng.choice(_occupations()),
        cnes,
        cid if died else "",
        "03" if proc.startswith("04") and rng.random() < 0.3 else "02",
        "04" if rng.random() < 0.08 else "06",
        race(rng, state, sih=True, unknown_share=14),
        "0001" if rng.random() < 0.002 else "",
    )


# --------------------------------------------------------------------------------------------------- SIA PA
SIA_FIELDS = _fields(
    "PA_CODUNI:C7 PA_GESTAO:C6 PA_CONDIC:C2 PA_UFMUN:C6 PA_REGCT:C4 PA_INCOUT:C4 PA_INCURG:C4 PA_TPUPS:C2 "
    "PA_TIPPRE:C2 PA_MN_IND:C1 PA_CNPJCPF:C14 PA_CNPJMNT:C14 PA_CNPJ_CC:C14 PA_MVM:C6 PA_CMP:C6 PA_PROC_ID:C10 "
    "PA_TPFIN:C2 PA_SUBFIN:C4 PA_NIVCPL:C1 PA_DOCORIG:C1 PA_AUTORIZ:C13 PA_CNSMED:C15 PA_CBOCOD:C6 PA_MOTSAI:C2 "
    "PA_OBITO:C1 PA_ENCERR:C1 PA_PERMAN:C1 PA_ALTA:C1 PA_TRANSF:C1 PA_CIDPRI:C4 PA_CIDSEC:C4 PA_CIDCAS:C4 "
    "PA_CATEND:C2 PA_IDADE:C3 IDADEMIN:C3 IDADEMAX:C3 PA_FLIDADE:C1 PA_SEXO:C1 PA_RACACOR:C2 PA_MUNPCN:C6 "
    "PA_QTDPRO:N11 PA_QTDAPR:N11 PA_VALPRO:N20.2 PA_VALAPR:N20.2 PA_UFDIF:C1 PA_MNDIF:C1 PA_DIF_VAL:N20.2 "
    "NU_VPA_TOT:N20.2 NU_PA_TOT:N20.2 PA_INDICA:C1 PA_CODOCO:C1 PA_FLQT:C1 PA_FLER:C1 PA_ETNIA:C4 PA_VL_CF:N20.2 "
    "PA_VL_CL:N20.2 PA_VL_INC:N20.2 PA_SRV_C:C6 PA_INE:C10 PA_NAT_JUR:C4"
)
# Procedures: (SIGTAP code, weight, unit value, financing PA_TPFIN, CBO of who performs it, CID usually given)
SIA_PROCEDURES = [
    ("0301010072", 14, 10.0, "06", "225125", ""),  # consulta médica em atenção especializada
    ("0202020380", 12, 4.11, "06", "221205", ""),  # hemograma completo
    ("0202010473", 10, 1.85, "06", "221205", ""),  # dosagem de glicose
    ("0202010317", 7, 1.85, "06", "221205", ""),  # dosagem de creatinina
    ("0214010015", 7, 0.0, "01", "322205", ""),  # glicemia capilar
    ("0301100039", 9, 0.0, "01", "322205", ""),  # aferição de pressão arterial
    ("0301010064", 8, 0.0, "01", "225142", ""),  # consulta médica em atenção primária
    ("0205020046", 4, 37.95, "06", "225320", ""),  # ultrassonografia de abdômen total
    ("0204030153", 2, 45.0, "06", "225320", "Z123"),  # mamografia bilateral para rastreamento
    ("0305010107", 2, 218.47, "04", "225109", "N180"),  # hemodiálise
    ("0303010037", 1, 8.5, "06", "225125", "A419"),
]
SIA_PROCEDURE = Choice((p, p[1]) for p in SIA_PROCEDURES)
SIA_MONTHS = (0.88, 0.95, 1.08, 1.0, 1.05, 1.02, 1.04, 1.06, 1.03, 1.02, 1.0, 0.87)


def _sia_record(rng: random.Random, state: str, year: int, month: int, i: int) -> tuple:
    proc, _, value, tpfin, cbo, cid = SIA_PROCEDURE(rng)
    docorig = "C" if rng.random() < 0.35 else ("A" if proc == "0305010107" else "I")
    consolidated = docorig == "C"  # BPA consolidado: counts per establishment, no patient data
    years = rng.triangular(0, 95, 50)
    qty = rng.choice((1, 1, 1, 1, 2, 3)) if not consolidated else rng.randint(5, 400)
    shortfall = 0 if rng.random() < 0.93 else rng.randint(1, qty)
    cnes = _cnes(rng, state)
    munic = _place(rng, state)
    male = rng.random() < (0.0 if cid == "Z123" else 0.42)
    cmp = dt.date(year, month, 1) - dt.timedelta(days=31 * (rng.random() < 0.08))
    return (
        cnes,
        f"{STATE_CODE[state]}0000" if rng.random() < 0.3 else munic,
        rng.choice(("EP", "PG", "MN")),
        CAPITALS.get(state, munic) if rng.random() < 0.5 else munic,
        "0000",
        "0000",
        "0000",
        rng.choice(("02", "05", "36", "39", "22", "70")),
        rng.choice(("20", "30", "40", "50", "60")),
        rng.choice("MI"),
        f"{int(cnes) * 1_000_000 + 1:014d}",
        "",
        "",
        f"{year}{month:02d}",
        _ymd(cmp)[:6],
        proc,
        tpfin,
        "0000",
        rng.choice("123"),
        docorig,
        f"{STATE_CODE[state]}{year % 100:02d}{i:09d}" if docorig == "A" else "",
        "" if consolidated else f"{rng.randrange(10**15):015d}",
        cbo,
        "00" if docorig != "A" else "21",
        "0",
        "0",
        "0",
        "0",
        "0",
        cid or "0000",
        "0000",
        "0000",
        "01" if docorig != "C" else "00",
        "999" if consolidated else f"{int(years):03d}",
        "0",
        "130",
        "0" if consolidated else "1",
        "0" if consolidated else ("M" if male else "F"),
        "99" if consolidated else race(rng, state, sih=True, unknown_share=20),
        "999999" if consolidated else munic,
        qty,
        qty - shortfall,
        round(qty * value, 2),
        round((qty - shortfall) * value, 2),
        "0",
        "0",
        0.0,
        0.0,
        0.0,
        "0",
        "1",
        "",
        "",
        "",
        0.0,
        0.0,
        0.0,
        "",
        "",
        rng.choice(("1031", "1023", "3999", "2062")),
    )


# --------------------------------------------------------------------------------------------------- SIM DO
SIM_FIELDS = _fields(
    "ORIGEM:C1 TIPOBITO:C1 DTOBITO:C8 HORAOBITO:C4 NATURAL:C3 CODMUNNATU:C6 DTNASC:C8 IDADE:C3 SEXO:C1 RACACOR:C1 "
    "ESTCIV:C1 ESC:C1 ESC2010:C1 SERIESCFAL:C2 OCUP:C6 CODMUNRES:C6 LOCOCOR:C1 CODESTAB:C7 CODMUNOCOR:C6 "
    "IDADEMAE:C2 ESCMAE:C1 OCUPMAE:C6 QTDFILVIVO:C2 QTDFILMORT:C2 GRAVIDEZ:C1 SEMAGESTAC:C2 GESTACAO:C1 PARTO:C1 "
    "OBITOPARTO:C1 PESO:C4 OBITOGRAV:C1 OBITOPUERP:C1 ASSISTMED:C1 NECROPSIA:C1 LINHAA:C20 LINHAB:C20 LINHAC:C20 "
    "LINHAD:C20 LINHAII:C20 CAUSABAS:C4 CAUSABAS_O:C4 DTATESTADO:C8 CIRCOBITO:C1 ACIDTRAB:C1 FONTE:C1 TPPOS:C1 "
    "DTINVESTIG:C8 DTCADASTRO:C8 ATESTANTE:C1 DTRECEBIM:C8"
)
# Underlying causes: (CID-10, weight, share of men, age (min, max, mode) in years, CIRCOBITO of an external cause)
SIM_CAUSES = [
    ("I219", 7.0, 0.6, (30, 100, 70), ""),
    ("J189", 4.5, 0.5, (0, 105, 82), ""),
    ("I64", 3.0, 0.48, (35, 105, 77), ""),
    ("E149", 3.0, 0.45, (20, 100, 72), ""),
    ("I10", 2.5, 0.45, (30, 105, 78), ""),
    ("U071", 2.5, 0.55, (10, 100, 70), ""),
    ("R99", 2.5, 0.6, (0, 105, 70), ""),
    ("C349", 2.2, 0.57, (35, 95, 67), ""),
    ("J449", 2.0, 0.55, (40, 100, 76), ""),
    ("X954", 2.0, 0.92, (13, 80, 24), "3"),
    ("A419", 1.8, 0.5, (0, 100, 72), ""),
    ("V892", 1.5, 0.82, (5, 90, 30), "1"),
    ("N189", 1.5, 0.55, (20, 100, 70), ""),
    ("G309", 1.5, 0.35, (60, 105, 85), ""),
    ("I119", 1.5, 0.47, (30, 105, 78), ""),
    ("C509", 1.2, 0.01, (28, 98, 60), ""),
    ("C61", 1.2, 1.0, (45, 100, 76), ""),
    ("K746", 1.0, 0.75, (30, 90, 58), ""),
    ("X700", 0.8, 0.8, (12, 90, 35), "2"),
    ("W199", 0.7, 0.5, (1, 105, 82), "1"),
    ("C169", 0.8, 0.64, (30, 95, 66), ""),
    ("P369", 0.5, 0.55, (0, 0.08, 0.003), ""),
    ("P220", 0.5, 0.56, (0, 0.03, 0.0005), ""),
    ("P071", 0.4, 0.52, (0, 0.0004, 0), ""),  # within hours of birth, some within minutes
    ("Q249", 0.2, 0.5, (0, 1, 0.1), ""),
]
SIM_CAUSE = Choice((c, c[1]) for c in SIM_CAUSES)
SIM_MONTHS = (0.93, 0.86, 0.95, 0.96, 1.03, 1.1, 1.14, 1.08, 0.99, 0.98, 0.95, 1.0)
SIM_MONTH = Choice(enumerate(SIM_MONTHS, 1))
SIM_ESTCIV = Choice({"1": 30, "2": 33, "3": 22, "4": 5, "5": 5, "9": 5})
SIM_ESC = Choice({"1": 14, "2": 24, "3": 24, "4": 18, "5": 8, "9": 12})


def sim_age(years: float) -> str:
    """SIM's IDADE: the unit (0 minutes, 1 hours, 2 days, 3 months, 4 years, 5 years over 100), then two digits."""
    minutes = years * 365.25 * 24 * 60
    if minutes < 60:
        return f"0{int(minutes):02d}"
    if minutes < 24 * 60:
        return f"1{int(minutes // 60):02d}"
    if years < 1 / 12:
        return f"2{int(years * 365.25):02d}"
    if years < 1:
        return f"3{max(1, int(years * 12)):02d}"
    if years >= 100:
        return f"5{int(years) - 100:02d}"
    return f"4{int(years):02d}"


def _sim_record(rng: random.Random, state: str, year: int, month: int | None, i: int) -> tuple:
    cid, _, men, ages, circ = SIM_CAUSE(rng)
    if rng.random() < 0.2:  # the long tail of natural causes
        cid, circ = rng.choice(_long_tail("PQUVWXYZ")), ""
    years = _age(rng, *ages)
    died = _date_in(rng, year, SIM_MONTH(rng))
    born = died - dt.timedelta(days=int(years * 365.25))
    infant = years < 1
    external = bool(circ)
    munic = _place(rng, state, ignored=0.006)
    adult = years >= 15
    r = rng.random()
    idade = "999" if r < 0.003 else sim_age(years)
    dtobito = _dmy(died) if i % 997 != 996 else f"3102{year}"  # an impossible date now and then
    return (
        "1",
        "2",
        dtobito,
        f"{rng.randrange(24):02d}{rng.randrange(60):02d}" if rng.random() < 0.93 else "",
        f"8{STATE_CODE[state]}",
        munic,
        "" if idade == "999" else _dmy(born),
        idade,
        "0" if r > 0.999 else ("1" if rng.random() < men else "2"),
        race(rng, state, unknown_share=5),
        SIM_ESTCIV(rng) if adult else "1",
        SIM_ESC(rng) if adult else "9",
        "9",
        "",
        rng.choice(_occupations()) if adult and rng.random() < 0.6 else "",
        munic,
        "4" if external and rng.random() < 0.5 else rng.choice("1111111233"),
        _cnes(rng, state),
        munic if rng.random() < 0.7 else CAPITALS.get(state, munic),
        f"{int(rng.triangular(14, 45, 26)):02d}" if infant else "",
        rng.choice("12345") if infant else "",
        "",
        f"{rng.randrange(4):02d}" if infant else "",
        f"{rng.randrange(2):02d}" if infant else "",
        "1" if infant else "",
        f"{rng.randint(24, 41):02d}" if infant else "",
        rng.choice("2345") if infant else "",
        rng.choice("12") if infant else "",
        "3" if infant else "",
        f"{int(rng.triangular(500, 4000, 2200)):04d}" if infant else "",
        "",
        "",
        rng.choice("1112") if not external else "9",
        "1" if external else rng.choice("2222229"),
        f"*{cid}",
        f"*{SIM_SECOND(rng)}" if rng.random() < 0.6 else "",
        "",
        "",
        f"*{rng.choice(('I10', 'E119', 'E669', 'F179'))}" if rng.random() < 0.3 else "",
        cid,
        cid,
        _dmy(died),
        circ if external else "",
        ("2" if rng.random() < 0.8 else "1") if external else "",
        rng.choice("1234") if external else "",
        "N" if not infant else rng.choice("NS"),
        "",
        _dmy(died + dt.timedelta(days=rng.randint(1, 30))),
        rng.choice("11111235") if not external else "3",
        _dmy(died + dt.timedelta(days=rng.randint(20, 90))),
    )


SIM_SECOND = Choice({"J960": 4, "R570": 3, "A419": 3, "I469": 2, "R092": 2, "J189": 2, "N179": 1})


# ------------------------------------------------------------------------------------------------ SINASC DN
SINASC_FIELDS = _fields(
    "ORIGEM:C1 CODESTAB:C7 CODMUNNASC:C6 LOCNASC:C1 IDADEMAE:C2 ESTCIVMAE:C1 ESCMAE:C1 CODOCUPMAE:C6 "
    "QTDFILVIVO:C2 QTDFILMORT:C2 CODMUNRES:C6 GESTACAO:C1 GRAVIDEZ:C1 PARTO:C1 CONSULTAS:C1 DTNASC:C8 HORANASC:C4 "
    "SEXO:C1 APGAR1:C2 APGAR5:C2 RACACOR:C1 PESO:C4 IDANOMAL:C1 DTCADASTRO:C8 CODANOMAL:C4 DTRECEBIM:C8 "
    "NATURALMAE:C3 CODMUNNATU:C7 ESCMAE2010:C1 DTNASCMAE:C8 RACACORMAE:C1 QTDGESTANT:C2 QTDPARTNOR:C2 "
    "QTDPARTCES:C2 IDADEPAI:C2 SEMAGESTAC:C2 TPMETESTIM:C1 CONSPRENAT:C2 MESPRENAT:C2 TPAPRESENT:C1 STTRABPART:C1 "
    "STCESPARTO:C1 TPNASCASSI:C1 TPROBSON:C2 PARIDADE:C1"
)
SINASC_MONTHS = (1.0, 0.95, 1.06, 1.05, 1.07, 1.02, 1.0, 0.98, 0.99, 0.97, 0.94, 0.97)
SINASC_MONTH = Choice(enumerate(SINASC_MONTHS, 1))
CESAREAN = {"SP": 0.57, "MG": 0.58, "BA": 0.47, "AM": 0.43}


def _gestation_code(weeks: int) -> str:
    """SINASC GESTACAO: 1 under 22 weeks, 2 22-27, 3 28-31, 4 32-36, 5 37-41, 6 42 and more."""
    return "1" if weeks < 22 else "2" if weeks < 28 else "3" if weeks < 32 else "4" if weeks < 37 else (
        "5" if weeks < 42 else "6")  # fmt: skip


def _sinasc_record(rng: random.Random, state: str, year: int, month: int | None, i: int) -> tuple:
    born = _date_in(rng, year, SINASC_MONTH(rng))
    mother = int(min(max(rng.gauss(27.5, 6.6), 12), 52))
    weeks = int(min(max(rng.gauss(38.6, 1.9), 22), 43)) if rng.random() > 0.01 else rng.randint(22, 30)
    weight = int(min(max(rng.gauss(3250 - (39 - weeks) * 210, 430), 400), 5600))
    twins = rng.random() < 0.02
    cesarean = rng.random() < CESAREAN.get(state, 0.55) + (0.2 if twins else 0)
    visits = min(int(rng.gauss(8.5, 3)), 20) if rng.random() > 0.02 else 0
    previous = min(int(rng.expovariate(0.9)), 9)
    apgar1 = min(10, max(0, int(rng.gauss(8.3, 1.3)) - (3 if weeks < 32 else 0)))
    munic = _place(rng, state)
    anomaly = rng.random() < 0.008
    r = rng.random()
    return (
        "1",
        _cnes(rng, state),
        munic if rng.random() < 0.7 else CAPITALS.get(state, munic),
        "1" if rng.random() < 0.985 else rng.choice("2349"),
        f"{mother:02d}",
        rng.choice("1111225559"),
        rng.choice("1234445559") if mother > 17 else rng.choice("2334"),
        rng.choice(("999992", "999992", "999992")) if rng.random() < 0.35 else rng.choice(_occupations()),
        f"{previous:02d}",
        f"{int(rng.random() < 0.1):02d}",
        munic,
        "9" if r < 0.01 else _gestation_code(weeks),
        "2" if twins else "1",
        "2" if cesarean else "1",
        "9" if r < 0.005 else ("1" if visits == 0 else "2" if visits < 4 else "3" if visits < 7 else "4"),
        _dmy(born),
        f"{rng.randrange(24):02d}{rng.randrange(60):02d}",
        "0" if r > 0.9995 else ("1" if rng.random() < 0.512 else "2"),
        f"{apgar1:02d}",
        f"{min(10, apgar1 + rng.choice((0, 1, 1, 2))):02d}",
        race(rng, state, unknown_share=3),
        f"{weight:04d}" if r < 0.998 else "9999",
        "1" if anomaly else ("2" if rng.random() < 0.99 else "9"),
        _dmy(born + dt.timedelta(days=rng.randint(1, 20))),
        rng.choice(("Q699", "Q660", "Q539", "Q038", "Q909")) if anomaly else "",
        _dmy(born + dt.timedelta(days=rng.randint(20, 60))),
        f"8{STATE_CODE[state]}",
        "",
        rng.choice("12334455"),
        _dmy(born - dt.timedelta(days=int(mother * 365.25) + rng.randrange(365))),
        race(rng, state, unknown_share=3),
        f"{previous + rng.choice((0, 0, 1)):02d}",
        f"{previous // 2:02d}",
        f"{previous - previous // 2:02d}",
        f"{min(mother + int(rng.gauss(3, 4)), 80):02d}" if rng.random() < 0.5 else "",
        f"{weeks:02d}",
        rng.choice("1228"),
        f"{visits:02d}",
        f"{rng.choice((1, 1, 2, 2, 3, 4)):02d}",
        "1" if rng.random() < 0.95 else rng.choice("239"),
        rng.choice("123"),
        rng.choice("123") if cesarean else "3",
        "1" if rng.random() < 0.9 else "2",
        f"{rng.randint(1, 10):02d}",
        "1" if previous else "0",
    )


# -------------------------------------------------------------------------------------------- SINAN (DENG)
# The individual-notification block as in the real ZIKABR21.dbc, then the dengue form's own fields.
SINAN_FIELDS = _fields(
    "TP_NOT:C1 ID_AGRAVO:C4 DT_NOTIFIC:D8 SEM_NOT:C6 NU_ANO:C4 SG_UF_NOT:C2 ID_MUNICIP:C6 ID_REGIONA:C8 "
    "ID_UNIDADE:C7 DT_SIN_PRI:D8 SEM_PRI:C6 ANO_NASC:C4 NU_IDADE_N:N4 CS_SEXO:C1 CS_GESTANT:C1 CS_RACA:C1 "
    "CS_ESCOL_N:C2 SG_UF:C2 ID_MN_RESI:C6 ID_RG_RESI:C8 ID_PAIS:C4 NDUPLIC_N:C1 IN_VINCULA:C1 DT_INVEST:D8 "
    "ID_OCUPA_N:C6 CLASSI_FIN:C2 CRITERIO:C2 TPAUTOCTO:C1 COUFINF:C2 COPAISINF:C4 COMUNINF:C6 DOENCA_TRA:C1 "
    "EVOLUCAO:C1 DT_OBITO:D8 DT_ENCERRA:D8 DT_DIGITA:D8 TP_SISTEMA:C1 TPUNINOT:C2 "
    "FEBRE:C1 MIALGIA:C1 CEFALEIA:C1 EXANTEMA:C1 VOMITO:C1 NAUSEA:C1 DOR_COSTAS:C1 ARTRALGIA:C1 PETEQUIA_N:C1 "
    "DOR_RETRO:C1 DIABETES:C1 HIPERTENSA:C1 DT_SORO:D8 RESUL_SORO:C1 DT_NS1:D8 RESUL_NS1:C1 DT_PCR:D8 "
    "RESUL_PCR_:C1 SOROTIPO:C1 HOSPITALIZ:C1 DT_INTERNA:D8 UF:C2 MUNICIPIO:C6"
)
# Dengue notified by state of residence (2023's shape: the south-east and south hit hardest).
DENGUE_STATES = Choice({"SP": 30, "MG": 34, "PR": 11, "GO": 7, "SC": 4, "DF": 3, "BA": 4, "RJ": 3, "AM": 1,
                        "PE": 1.5, "CE": 1.5})  # fmt: skip
DENGUE_MONTHS = (0.55, 1.05, 2.1, 2.6, 2.05, 0.95, 0.38, 0.2, 0.15, 0.15, 0.2, 0.32)
DENGUE_MONTH = Choice(enumerate(DENGUE_MONTHS, 1))
DENGUE_CLASS = Choice({"10": 62, "5": 25, "11": 1.6, "12": 0.15, "8": 3, "": 8.25})
SINAN_SCHOOLING = Choice(
    {f"{k:02d}": w for k, w in zip(range(11), (2, 7, 4, 9, 8, 7, 22, 4, 8, 25, 4), strict=True)}
)


def sinan_age(years: float) -> int:
    """SINAN's NU_IDADE_N: unit digit (1 hours, 2 days, 3 months, 4 years), then the value in three digits."""
    if years < 1 / 365.25:
        return 1000 + int(years * 365.25 * 24)
    if years < 1 / 12:
        return 2000 + int(years * 365.25)
    if years < 1:
        return 3000 + max(1, int(years * 12))
    return 4000 + int(years)


def _yes_no(rng: random.Random, p: float) -> str:
    """SINAN's 1 Sim / 2 Não, yes with probability p."""
    return "1" if rng.random() < p else "2"


def _epi_week(day: dt.date) -> str:
    """The epidemiological week as SINAN writes it, YYYYWW (weeks start on Sunday)."""
    year, week, weekday = (day + dt.timedelta(days=1)).isocalendar()
    return f"{year}{week:02d}"


def _sinan_record(rng: random.Random, state: str, year: int, month: int | None, i: int) -> tuple:
    home = DENGUE_STATES(rng)
    onset = _date_in(rng, year, DENGUE_MONTH(rng))
    notified = onset + dt.timedelta(days=min(int(rng.expovariate(1 / 3)), 30))
    years = (
        rng.triangular(0, 90, 28) if rng.random() > 0.04 else rng.random() ** 3
    )  # infants: hours to months
    male = rng.random() < 0.45
    cls = DENGUE_CLASS(rng)
    lab = rng.random() < 0.35
    munic = _place(rng, home, ignored=0.002)
    died = cls in ("11", "12") and rng.random() < 0.08
    closed = notified + dt.timedelta(days=rng.randint(5, 60)) if cls else None
    sex = "I" if rng.random() < 0.001 else ("M" if male else "F")
    pregnant = (
        (rng.choice("1234555559") if 14 < years < 45 and rng.random() < 0.05 else "5") if sex == "F" else "6"
    )
    hospital = rng.random() < (0.6 if cls in ("11", "12") else 0.03)
    sample = notified + dt.timedelta(days=rng.randint(1, 10))
    typed = _ymd(notified) if i % 1999 != 1998 else f"{year}0230"  # an invalid date now and then
    return (
        "2",
        "A90",
        typed,
        _epi_week(notified),
        str(year),
        STATE_CODE[home],
        munic if rng.random() < 0.85 else CAPITALS.get(home, munic),
        f"{int(STATE_CODE[home]) * 100 + rng.randrange(30):04d}",
        _cnes(rng, home),
        onset,
        _epi_week(onset),
        str(int(year - years)),
        9999 if rng.random() < 0.001 else sinan_age(years),
        sex,
        pregnant,
        race(rng, home, unknown_share=18),
        SINAN_SCHOOLING(rng) if years > 6 else "10",
        STATE_CODE[home],
        munic,
        f"{int(STATE_CODE[home]) * 100 + rng.randrange(30):04d}",
        "1",
        "",
        "",
        notified if rng.random() < 0.8 else None,
        "",
        cls,
        ("1" if lab else "2") if cls else "3",
        rng.choice("1111113") if cls == "10" else "",
        STATE_CODE[home] if cls == "10" else "",
        "1" if cls == "10" else "",
        munic if cls == "10" else "",
        "2" if cls else "",
        ("2" if died else "1" if rng.random() < 0.95 else "9") if cls else "",
        closed if died else None,
        closed,
        notified + dt.timedelta(days=rng.randint(0, 15)),
        "1",
        "",
        _yes_no(rng, 0.93),
        _yes_no(rng, 0.8),
        _yes_no(rng, 0.78),
        _yes_no(rng, 0.2),
        _yes_no(rng, 0.25),
        _yes_no(rng, 0.35),
        _yes_no(rng, 0.3),
        _yes_no(rng, 0.4),
        _yes_no(rng, 0.06),
        _yes_no(rng, 0.3),
        _yes_no(rng, 0.04),
        _yes_no(rng, 0.12),
        sample if lab and rng.random() < 0.6 else None,
        (rng.choice("1112") if cls in ("10", "11", "12") else "2") if lab else "4",
        sample if lab and rng.random() < 0.4 else None,
        (rng.choice("12") if lab else "3"),
        sample if lab and rng.random() < 0.05 else None,
        "1" if lab and rng.random() < 0.05 else "",
        rng.choice("1122") if lab and rng.random() < 0.05 else "",
        "1" if hospital else "2",
        notified if hospital else None,
        STATE_CODE[home] if hospital else "",
        CAPITALS.get(home, munic) if hospital else "",
    )


# ----------------------------------------------------------------------------------------------- CNES ST
# The layout of the real STPI2206.dbc (208 fields, in its order).
CNES_FIELDS = _fields(
    "CNES:C7 CODUFMUN:C6 COD_CEP:C8 CPF_CNPJ:C14 PF_PJ:C1 NIV_DEP:C1 CNPJ_MAN:C14 COD_IR:C2 REGSAUDE:C4 "
    "MICR_REG:C6 DISTRSAN:C4 DISTRADM:C4 VINC_SUS:C1 TPGESTAO:C1 ESFERA_A:C2 RETENCAO:C2 ATIVIDAD:C2 NATUREZA:C2 "
    "CLIENTEL:C2 TP_UNID:C2 TURNO_AT:C2 NIV_HIER:C2 TP_PREST:C2 CO_BANCO:C4 CO_AGENC:C5 C_CORREN:C14 CONTRATM:C11 "
    "DT_PUBLM:C8 CONTRATE:C11 DT_PUBLE:C8 ALVARA:C25 DT_EXPED:C8 ORGEXPED:C2 AV_ACRED:C1 CLASAVAL:C1 DT_ACRED:C6 "
    "AV_PNASS:C1 DT_PNASS:C6 GESPRG1E:C1 GESPRG1M:C1 GESPRG2E:C1 GESPRG2M:C1 GESPRG4E:C1 GESPRG4M:C1 NIVATE_A:C1 "
    "GESPRG3E:C1 GESPRG3M:C1 GESPRG5E:C1 GESPRG5M:C1 GESPRG6E:C1 GESPRG6M:C1 NIVATE_H:C1 QTLEITP1:N4 QTLEITP2:N4 "
    "QTLEITP3:N4 LEITHOSP:C1 "
    + " ".join(f"QTINST{k:02d}:N3" for k in range(1, 15))
    + " URGEMERG:C1 "
    + " ".join(f"QTINST{k:02d}:N3" for k in range(15, 31))
    + " ATENDAMB:C1 "
    + " ".join(f"QTINST{k:02d}:N3" for k in range(31, 34))
    + " CENTRCIR:C1 "
    + " ".join(f"QTINST{k:02d}:N3" for k in range(34, 38))
    + " CENTROBS:C1 "
    + " ".join(f"QTLEIT{k:02d}:N3" for k in (5, 6, 7, 8, 9, 19, 20, 21, 22, 23, 32, 34, 38, 39, 40))
    + " CENTRNEO:C1 ATENDHOS:C1 "
    + " ".join(f"SERAP{k:02d}{s}:C1" for k in range(1, 12) for s in "PT")
    + " SERAPOIO:C1 RES_BIOL:C1 RES_QUIM:C1 RES_RADI:C1 RES_COMU:C1 COLETRES:C1 "
    + " ".join(f"COMISS{k:02d}:C1" for k in range(1, 13))
    + " COMISSAO:C1 "
    + " ".join(f"AP{a:02d}CV{c:02d}:C1" for a in range(1, 8) for c in range(1, 8))
    + " ATEND_PR:C1 DT_ATUAL:C6 COMPETEN:C6 NAT_JUR:C4"
)
# Establishment types (TP_UNID): (code, weight, legal nature NAT_JUR, SUS share, beds)
CNES_TYPES = [
    ("22", 38, "2135", 0.08, 0),  # consultório isolado
    ("36", 16, "2062", 0.25, 0),  # clínica/centro de especialidade
    ("02", 13, "1244", 1.0, 0),  # centro de saúde/unidade básica
    ("39", 10, "2062", 0.35, 0),  # unidade de apoio diagnose e terapia (SADT isolado)
    ("01", 3, "1244", 1.0, 0),  # posto de saúde
    ("05", 3, "3999", 0.7, 120),  # hospital geral
    ("07", 1, "3069", 0.5, 60),  # hospital especializado
    ("70", 1.5, "1244", 1.0, 0),  # centro de atenção psicossocial
    ("73", 1, "1244", 1.0, 10),  # pronto atendimento
    ("43", 4, "2062", 0.1, 0),  # farmácia
    ("68", 1.5, "1244", 1.0, 0),  # central de gestão em saúde
]
CNES_TYPE = Choice((t, t[1]) for t in CNES_TYPES)
CNES_LAYOUT = {name: k for k, (name, *_) in enumerate(CNES_FIELDS)}


def _cnes_record(rng: random.Random, state: str, year: int, month: int, i: int) -> tuple:
    tp, _, nat_jur, sus, beds = CNES_TYPE(rng)
    public = nat_jur.startswith("1")
    values = ["0" if t == "C" and n == 1 else 0 if t == "N" else "" for _, t, n, _ in CNES_FIELDS]
    munic = _place(rng, state, ignored=0)
    hospital = beds > 0
    put = {
        "CNES": f"{int(STATE_CODE[state]) * 71_000 + i * 17 + 2_000_000:07d}",
        "CODUFMUN": munic,
        "COD_CEP": f"{rng.randint(1_000_000, 99_999_999):08d}",
        "CPF_CNPJ": "00000000000000" if public else f"{rng.randrange(10**14):014d}",
        "PF_PJ": "1" if tp == "22" and rng.random() < 0.7 else "3",
        "NIV_DEP": "3" if public else "1",
        "CNPJ_MAN": f"{rng.randrange(10**14):014d}" if public else "",
        "REGSAUDE": f"{rng.randrange(1, 30):04d}",
        "VINC_SUS": "1" if rng.random() < sus else "0",
        "TPGESTAO": rng.choice("MMMED") if public else rng.choice("MMDE"),
        "TP_UNID": tp,
        "TURNO_AT": rng.choice(("03", "03", "06", "01", "04")),
        "NIV_HIER": "99" if rng.random() < 0.6 else rng.choice(("01", "02", "04", "05", "06", "07")),
        "TP_PREST": "99",
        "ATIVIDAD": "04",
        "CLIENTEL": rng.choice(("01", "02", "03")),
        "LEITHOSP": "1" if hospital else "0",
        "QTLEITP1": int(beds * rng.uniform(0.5, 1.5)) if hospital else 0,
        "URGEMERG": "1" if hospital or tp == "73" else "0",
        "ATENDAMB": "1" if not hospital or rng.random() < 0.8 else "0",
        "CENTRCIR": "1" if hospital and rng.random() < 0.8 else "0",
        "CENTROBS": "1" if hospital and rng.random() < 0.5 else "0",
        "ATENDHOS": "1" if hospital else "0",
        "QTLEIT05": int(beds * rng.uniform(0, 0.1)) if hospital else 0,
        "QTINST01": rng.randint(1, 8) if not hospital else rng.randint(5, 30),
        "DT_ATUAL": f"{year}{month:02d}",
        "COMPETEN": f"{year}{month:02d}",
        "NAT_JUR": nat_jur if rng.random() < 0.98 else "",
    }
    for name, value in put.items():
        values[CNES_LAYOUT[name]] = value
    return tuple(values)


# --------------------------------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class Sample:
    """One system's sample: its layout, a record maker, its files and their size."""

    fields: list[Field]
    record: Callable[[random.Random, str, int, int | None, int], tuple]
    files: tuple[tuple[str, int, int | None], ...]  # (state or BR, year, month or None for yearly files)
    name: Callable[[str, int, int | None], str]
    rows: int  # records in all files together, by default
    months: tuple[float, ...] = (1.0,) * 12  # monthly files' weights (yearly files draw the month per record)


def _monthly(states: Iterable[str], months: Iterable[int]) -> tuple[tuple[str, int, int], ...]:
    return tuple((s, YEAR, m) for s in states for m in months)


SAMPLES = {
    ("SIH", "RD"): Sample(
        SIH_FIELDS, _record, _monthly(STATES, range(1, 7)), lambda s, y, m: f"RD{s}{y % 100:02d}{m:02d}",
        30_000, SIH_MONTHS,
    ),
    ("SIA", "PA"): Sample(
        SIA_FIELDS, _sia_record, _monthly(STATES, range(1, 3)), lambda s, y, m: f"PA{s}{y % 100:02d}{m:02d}",
        24_000, SIA_MONTHS,
    ),
    ("SIM", "DO"): Sample(
        SIM_FIELDS, _sim_record, tuple((s, YEAR, None) for s in STATES), lambda s, y, m: f"DO{s}{y}", 20_000
    ),
    ("SINASC", "DN"): Sample(
        SINASC_FIELDS, _sinasc_record, tuple((s, YEAR, None) for s in STATES), lambda s, y, m: f"DN{s}{y}", 16_000
    ),
    ("SINAN", "DENG"): Sample(
        SINAN_FIELDS, _sinan_record, (("BR", YEAR, None),), lambda s, y, m: f"DENGBR{y % 100:02d}", 20_000
    ),
    ("CNES", "ST"): Sample(
        CNES_FIELDS, _cnes_record, _monthly(STATES, (6,)), lambda s, y, m: f"ST{s}{y % 100:02d}{m:02d}", 3_000
    ),
}  # fmt: skip


def file_rows(sample: Sample, rows: int) -> list[int]:
    """How many records each file gets: its share of `rows` by state size and month weight, summing to `rows`."""
    weights = [STATE_SIZE.get(s, 1.0) * (sample.months[m - 1] if m else 1.0) for s, _, m in sample.files]
    shares = [rows * w / sum(weights) for w in weights]
    counts = [int(x) for x in shares]
    by_remainder = sorted(range(len(shares)), key=lambda k: counts[k] - shares[k])
    for k in by_remainder[: rows - sum(counts)]:  # the largest remainders round up
        counts[k] += 1
    return counts


def write_sample(
    raw_dir: Path,
    tmp_dir: Path,
    system: str = "SIH",
    group: str = "RD",
    rows: int | None = None,
    seed: int = 2023,
    parallel_map: Callable[[Callable, list], list] = map_here,
) -> list[Path]:
    """Write the missing sample files of a system's group into raw_dir (scratch .dbf in tmp_dir); return them all.

    Each file draws from a generator of its own, so `parallel_map` (a Context's, to write them on the engine's
    worker processes) may write them in any order: the files are the same."""
    sample = SAMPLES.get((system, group))
    if sample is None:
        from etl.errors import ConfigError

        raise ConfigError(
            f"no sample for {system} {group}",
            hint="Samples exist for " + ", ".join(f"{s} {g}" for s, g in SAMPLES),
        )
    paths, missing = [], []
    for n, ((state, year, month), count) in enumerate(
        zip(sample.files, file_rows(sample, rows or sample.rows), strict=True)
    ):
        path = Path(raw_dir) / f"{sample.name(state, year, month)}.dbc"
        paths.append(path)
        if not path.exists():
            logger.info("generating the sample %s (%s records, once)", path.name, f"{count:,}")
            missing.append(SampleFile(system, group, f"{system}{group}{seed + n}", state, year, month, count, path,
                                      Path(tmp_dir)))  # fmt: skip
    parallel_map(write_file, missing)
    return paths


@dataclass(frozen=True)
class SampleFile:
    """One sample file to write: its system's group, its generator's seed, what it holds and where it goes."""

    system: str
    group: str
    seed: str
    state: str
    year: int
    month: int | None
    count: int
    path: Path
    tmp_dir: Path


def write_file(f: SampleFile) -> Path:
    """Write one sample file: its records into a scratch .dbf, compressed into the .dbc."""
    sample = SAMPLES[(f.system, f.group)]
    rng = random.Random(f.seed)
    dbf = f.tmp_dir / f"{f.path.stem}.sample.dbf"
    try:
        write_dbf(
            dbf, sample.fields, (sample.record(rng, f.state, f.year, f.month, i) for i in range(f.count))
        )
        write_dbc(dbf, f.path)
    finally:
        dbf.unlink(missing_ok=True)
    return f.path
