"""Where DATASUS keeps each system's files on its FTP tree, and how their names are formed: in one place.

Names seen on the tree: `RDSP2303.dbc` (group, state, year, month), `PASP2303a.dbc` / `b` / `c` (big SIA months split
into lettered parts), `BISP2303_1.dbc` (parts numbered `_1`, `_2`), `DOSP2022.dbc` (yearly SIM and SINASC, 4-digit
year), `DENGBR24.dbc` (national SINAN, 2-digit year). Periods before a system's current layout live in an older folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from etl.errors import ConfigError

STATES = [
    "AC",
    "AL",
    "AM",
    "AP",
    "BA",
    "CE",
    "DF",
    "ES",
    "GO",
    "MA",
    "MG",
    "MS",
    "MT",
    "PA",
    "PB",
    "PE",
    "PI",
    "PR",
    "RJ",
    "RN",
    "RO",
    "RR",
    "RS",
    "SC",
    "SE",
    "SP",
    "TO",
]


@dataclass(frozen=True)
class Folder:
    """One folder of the tree: the periods it holds (YYYYMM, inclusive) and the path, `{group}` filled in."""

    first: int
    last: int
    path: str


@dataclass(frozen=True)
class System:
    name: str
    groups: tuple[str, ...]
    yearly: bool  # one file per year (and state), not per month
    year_digits: int  # 2 (`RDSP2303`, `DENGBR24`) or 4 (`DOSP2022`)
    folders: tuple[Folder, ...]
    national: bool = False  # one file for Brazil (`BR`) instead of one per state


LATEST = 999912
SYSTEMS = {
    "SIH": System(
        "SIH",
        ("RD", "RJ", "SP", "ER", "CH"),
        False,
        2,
        (
            Folder(199201, 200712, "/dissemin/publicos/SIHSUS/199201_200712/Dados"),
            Folder(200801, LATEST, "/dissemin/publicos/SIHSUS/200801_/Dados"),
        ),
    ),
    "SIA": System(
        "SIA",
        ("PA", "BI", "AD", "AM", "AN", "AQ", "AR", "ATD", "PS", "SAD", "ACF", "ABO", "ABOI", "AMP"),
        False,
        2,
        (
            Folder(199407, 200712, "/dissemin/publicos/SIASUS/199407_200712/Dados"),
            Folder(200801, LATEST, "/dissemin/publicos/SIASUS/200801_/Dados"),
        ),
    ),
    "CNES": System(
        "CNES",
        ("ST", "LT", "EQ", "SR", "HB", "PF", "EP", "RC", "IN", "EE", "EF", "GM"),
        False,
        2,
        (Folder(200508, LATEST, "/dissemin/publicos/CNES/200508_/Dados/{group}"),),
    ),
    "SIM": System("SIM", ("DO",), True, 4, (Folder(199601, LATEST, "/dissemin/publicos/SIM/CID10/DORES"),)),
    "SINASC": System(
        "SINASC", ("DN",), True, 4, (Folder(199601, LATEST, "/dissemin/publicos/SINASC/1996_/Dados/DNRES"),)
    ),
    "SINAN": System(
        "SINAN",
        (
            "DENG",
            "ZIKA",
            "CHIK",
            "HANS",
            "TUBE",
            "LEPT",
            "MENI",
            "SIFC",
            "SIFG",
            "VIOL",
            "ANIM",
            "ESQU",
            "HEPA",
            "LEIV",
            "LTAN",
            "MALA",
            "COQU",
            "DIFT",
            "SIFA",
            "TETA",
            "FMAC",
        ),
        True,
        2,
        (
            Folder(200001, LATEST, "/dissemin/publicos/SINAN/DADOS/FINAIS"),
            Folder(200001, LATEST, "/dissemin/publicos/SINAN/DADOS/PRELIM"),
        ),
        national=True,
    ),
}

NAME = re.compile(
    r"^(?P<group>[A-Z]+?)(?P<state>[A-Z]{2})(?P<period>\d{2}|\d{4})(?P<month>\d{2})?"
    r"(?P<part>[a-z]|_\d{1,2})?\.(?P<ext>dbc|DBC|zip|ZIP)$"
)


@dataclass(frozen=True)
class FileName:
    """A parsed DATASUS file name."""

    group: str
    state: str
    year: int
    month: int | None
    part: str  # "" for a whole month; "a", "b", … or "_1", "_2", … for a split one
    name: str


def parse_name(name: str, system: System) -> FileName | None:
    """Parse `name` as a file of `system`; None when it is not one (another group, a README, …)."""
    m = NAME.match(name)
    if not m:
        return None
    group, state, period, month = m["group"], m["state"], m["period"], m["month"]
    if system.yearly:
        # yearly names have no month: `DOSP2022` is year 2022, not year 20 month 22
        digits = period + (month or "")
        if len(digits) != system.year_digits:
            return None
        year = int(digits)
        month_num = None
    else:
        if month is None or len(period) != 2:
            return None
        year, month_num = int(period), int(month)
        if not 1 <= month_num <= 12:
            return None
    if year < 100:
        year += 2000 if year < 70 else 1900
    if group not in system.groups:
        return None
    return FileName(group, state, year, month_num, m["part"] or "", name)


def get_system(name: str) -> System:
    key = name.upper()
    if key not in SYSTEMS:
        raise ConfigError(f"unknown DATASUS system {name!r}", hint=f"Known systems: {', '.join(SYSTEMS)}")
    return SYSTEMS[key]


def folders_for(system: System, group: str, years: list[int], months: list[int]) -> list[str]:
    """The folders that hold the selected periods."""
    if group not in system.groups:
        raise ConfigError(f"{system.name} has no group {group!r}", hint=f"Groups: {', '.join(system.groups)}")
    periods = [y * 100 + m for y in years for m in (months or range(1, 13))]
    out = []
    for folder in system.folders:
        if any(folder.first <= p <= folder.last for p in periods) or (system.yearly and not years):
            out.append(folder.path.format(group=group))
    return out


def wanted(f: FileName, group: str, states: list[str], years: list[int], months: list[int]) -> bool:
    return (
        f.group == group
        and (not states or f.state in states)
        and (not years or f.year in years)
        and (f.month is None or not months or f.month in months)
    )


def expected_names(
    system: System, group: str, states: list[str], years: list[int], months: list[int]
) -> list[str]:
    """The unsplit file names of a selection, for mirrors that cannot list their folders (plain HTTP)."""
    states = ["BR"] if system.national else (states or STATES)
    names = []
    for state in states:
        for year in years:
            y = str(year)[-system.year_digits :]
            if system.yearly:
                names.append(f"{group}{state}{y}.dbc")
            else:
                names += [f"{group}{state}{y}{m:02d}.dbc" for m in (months or range(1, 13))]
    return names
