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
class Group:
    """A file group of a system: its long names, and where its layout differs from the system's."""

    pt: str
    en: str
    folders: tuple[Folder, ...] = ()  # default: the system's folders
    year_digits: int | None = None  # default: the system's
    stateless: bool = False  # one national file named without a state (`DOFET22.dbc`)
    staging: str | None = None  # the staging view of sql/datasus/<system>[_<group>]/, where there is one


@dataclass(frozen=True)
class System:
    name: str
    pt: str
    en: str
    groups: dict[str, Group]
    yearly: bool  # one file per year (and state), not per month
    year_digits: int  # 2 (`RDSP2303`, `DENGBR24`) or 4 (`DOSP2022`)
    folders: tuple[Folder, ...]
    national: bool = False  # one file for Brazil (`BR`) instead of one per state

    def folders_of(self, group: str) -> tuple[Folder, ...]:
        return self.groups[group].folders or self.folders

    def is_national(self, group: str) -> bool:
        return self.national or self.groups[group].stateless


LATEST = 999912


def _disease(pt: str, en: str) -> Group:
    """A SINAN group: one disease, staged like every other disease in `stg_notificacoes`."""
    return Group(pt, en, staging="stg_notificacoes")


# SIM's national files of selected deaths (external causes, fetal, infant, maternal) share one folder.
SIM_SELECTED = (Folder(199601, LATEST, "/dissemin/publicos/SIM/CID10/DOFET"),)
# Long names as DATASUS's transfer page, PySUS and microdatasus give them; English where they give none.
SYSTEMS = {
    "SIH": System(
        "SIH",
        "Sistema de Informações Hospitalares do SUS",
        "Hospital Information System",
        {
            "RD": Group("AIH Reduzida", "Reduced hospital admission record", staging="stg_internacoes"),
            "RJ": Group("AIH Rejeitada", "Rejected hospital admission record"),
            "ER": Group("AIH Rejeitada com código de erro", "Rejected admission record with its error code"),
            "SP": Group("Serviços Profissionais", "Professional services"),
            "CH": Group("Cadastro Hospitalar", "Hospital registry"),
        },
        False,
        2,
        (
            Folder(199201, 200712, "/dissemin/publicos/SIHSUS/199201_200712/Dados"),
            Folder(200801, LATEST, "/dissemin/publicos/SIHSUS/200801_/Dados"),
        ),
    ),
    "SIA": System(
        "SIA",
        "Sistema de Informações Ambulatoriais do SUS",
        "Outpatient Information System",
        {
            "PA": Group(
                "Produção Ambulatorial", "Outpatient production", staging="stg_producao_ambulatorial"
            ),
            "BI": Group(
                "Boletim de Produção Ambulatorial individualizado",
                "Individualised outpatient production bulletin",
            ),
            "AB": Group("APAC de Cirurgia Bariátrica", "High-cost authorisation: bariatric surgery"),
            "ABO": Group(
                "APAC de Acompanhamento Pós Cirurgia Bariátrica",
                "High-cost authorisation: follow-up after bariatric surgery",
            ),
            "ABOI": Group(
                "APAC do grupo ABOI (sem descrição oficial conhecida)",
                "High-cost authorisation, group ABOI (no official description known)",
            ),
            "ACF": Group("APAC de Confecção de Fístula", "High-cost authorisation: fistula creation"),
            "AD": Group("APAC de Laudos Diversos", "High-cost authorisation: miscellaneous reports"),
            "AM": Group("APAC de Medicamentos", "High-cost authorisation: medicines"),
            "AMP": Group(
                "APAC de Acompanhamento Multiprofissional",
                "High-cost authorisation: multiprofessional follow-up",
            ),
            "AN": Group("APAC de Nefrologia", "High-cost authorisation: nephrology"),
            "AQ": Group("APAC de Quimioterapia", "High-cost authorisation: chemotherapy"),
            "AR": Group("APAC de Radioterapia", "High-cost authorisation: radiotherapy"),
            "ATD": Group("APAC de Tratamento Dialítico", "High-cost authorisation: dialysis"),
            "PS": Group("RAAS Psicossocial", "Psychosocial care record (RAAS)"),
            "SAD": Group("RAAS de Atenção Domiciliar", "Home care record (RAAS)"),
        },
        False,
        2,
        (
            Folder(199407, 200712, "/dissemin/publicos/SIASUS/199407_200712/Dados"),
            Folder(200801, LATEST, "/dissemin/publicos/SIASUS/200801_/Dados"),
        ),
    ),
    "CNES": System(
        "CNES",
        "Cadastro Nacional de Estabelecimentos de Saúde",
        "National Registry of Health Establishments",
        {
            "ST": Group("Estabelecimentos", "Establishments", staging="stg_estabelecimentos"),
            "LT": Group("Leitos", "Beds"),
            "EQ": Group("Equipamentos", "Equipment"),
            "SR": Group("Serviço Especializado", "Specialised services"),
            "HB": Group("Habilitação", "Accreditations"),
            "PF": Group("Profissional", "Health professionals"),
            "EP": Group("Equipes", "Health teams"),
            "RC": Group("Regra Contratual", "Contract rules"),
            "IN": Group("Incentivos", "Incentives"),
            "EE": Group("Estabelecimento de Ensino", "Teaching establishments"),
            "EF": Group("Estabelecimento Filantrópico", "Philanthropic establishments"),
            "GM": Group("Gestão e Metas", "Management and targets"),
            "DC": Group("Dados Complementares", "Complementary data"),
        },
        False,
        2,
        (Folder(200508, LATEST, "/dissemin/publicos/CNES/200508_/Dados/{group}"),),
    ),
    "SIM": System(
        "SIM",
        "Sistema de Informações sobre Mortalidade",
        "Mortality Information System",
        {
            "DO": Group("Declarações de Óbito", "Death certificates", staging="stg_obitos"),
            "DOEXT": Group(
                "Óbitos por causas externas", "Deaths from external causes", SIM_SELECTED, 2, stateless=True
            ),
            "DOFET": Group("Óbitos fetais", "Foetal deaths", SIM_SELECTED, 2, stateless=True),
            "DOINF": Group("Óbitos infantis", "Infant deaths", SIM_SELECTED, 2, stateless=True),
            "DOMAT": Group("Óbitos maternos", "Maternal deaths", SIM_SELECTED, 2, stateless=True),
        },
        True,
        4,
        (Folder(199601, LATEST, "/dissemin/publicos/SIM/CID10/DORES"),),
    ),
    "SINASC": System(
        "SINASC",
        "Sistema de Informações sobre Nascidos Vivos",
        "Live Birth Information System",
        {
            "DN": Group(
                "Declarações de Nascidos Vivos", "Live birth certificates", staging="stg_nascidos_vivos"
            ),
            "DNEX": Group(
                "Nascidos vivos de mães residentes no exterior",
                "Live births to mothers resident abroad",
                stateless=True,
            ),
        },
        True,
        4,
        (Folder(199601, LATEST, "/dissemin/publicos/SINASC/1996_/Dados/DNRES"),),
    ),
    "SINAN": System(
        "SINAN",
        "Sistema de Informação de Agravos de Notificação",
        "Notifiable Diseases Information System",
        {
            "DENG": _disease("Dengue", "Dengue"),
            "ZIKA": _disease("Zika vírus", "Zika virus"),
            "CHIK": _disease("Febre de Chikungunya", "Chikungunya fever"),
            "HANS": _disease("Hanseníase", "Leprosy"),
            "TUBE": _disease("Tuberculose", "Tuberculosis"),
            "LEPT": _disease("Leptospirose", "Leptospirosis"),
            "MENI": _disease("Meningite", "Meningitis"),
            "SIFC": _disease("Sífilis congênita", "Congenital syphilis"),
            "SIFG": _disease("Sífilis em gestante", "Syphilis in pregnancy"),
            "VIOL": _disease(
                "Violência doméstica, sexual e/ou outras violências", "Domestic, sexual and other violence"
            ),
            "ANIM": _disease("Acidente por animais peçonhentos", "Venomous animal accidents"),
            "ESQU": _disease("Esquistossomose", "Schistosomiasis"),
            "HEPA": _disease("Hepatites virais", "Viral hepatitis"),
            "LEIV": _disease("Leishmaniose visceral", "Visceral leishmaniasis"),
            "LTAN": _disease("Leishmaniose tegumentar americana", "American cutaneous leishmaniasis"),
            "MALA": _disease("Malária", "Malaria"),
            "COQU": _disease("Coqueluche", "Whooping cough"),
            "DIFT": _disease("Difteria", "Diphtheria"),
            "SIFA": _disease("Sífilis adquirida", "Acquired syphilis"),
            "TETA": _disease("Tétano acidental", "Accidental tetanus"),
            "FMAC": _disease("Febre maculosa", "Spotted fever"),
        },
        True,
        2,
        (
            Folder(200001, LATEST, "/dissemin/publicos/SINAN/DADOS/FINAIS"),
            Folder(200001, LATEST, "/dissemin/publicos/SINAN/DADOS/PRELIM"),
        ),
        national=True,
    ),
}

# What follows the group in a name: state (absent in stateless groups), period, month, part, extension.
REST = re.compile(
    r"^(?P<state>[A-Z]{2})?(?P<period>\d{2}|\d{4})(?P<month>\d{2})?(?P<part>[a-z]|_\d{1,2})?\.(?:dbc|DBC|zip|ZIP)$"
)


@dataclass(frozen=True)
class FileName:
    """A parsed DATASUS file name."""

    group: str
    state: str  # "BR" for national files, with or without it in the name
    year: int
    month: int | None
    part: str  # "" for a whole month; "a", "b", … or "_1", "_2", … for a split one
    name: str


def parse_name(name: str, system: System) -> FileName | None:
    """Parse `name` as a file of `system`; None when it is not one (another group, a README, …).

    Groups are tried longest first, since one can prefix another (`DOFET22` is DOFET's, `AMPSP2301` AMP's).
    """
    for group in sorted((g for g in system.groups if name.startswith(g)), key=len, reverse=True):
        parsed = _parse_rest(name, group, system)
        if parsed:
            return parsed
    return None


def _parse_rest(name: str, group: str, system: System) -> FileName | None:
    m = REST.match(name[len(group) :])
    spec = system.groups[group]
    if not m or (m["state"] is None) != spec.stateless:
        return None
    period, month = m["period"], m["month"]
    if system.yearly:
        # yearly names have no month: `DOSP2022` is year 2022, not year 20 month 22
        digits = period + (month or "")
        if len(digits) != (spec.year_digits or system.year_digits):
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
    return FileName(group, m["state"] or "BR", year, month_num, m["part"] or "", name)


def get_system(name: str) -> System:
    """The system named (any case); a ConfigError listing the known ones otherwise."""
    key = name.upper()
    if key not in SYSTEMS:
        raise ConfigError(f"unknown DATASUS system {name!r}", hint=f"Known systems: {', '.join(SYSTEMS)}")
    return SYSTEMS[key]


def check_group(system: System, group: str) -> str:
    """The group's name in upper case; a ConfigError listing the system's groups when it has no such group."""
    if group.upper() not in system.groups:
        raise ConfigError(f"{system.name} has no group {group!r}", hint=f"Groups: {', '.join(system.groups)}")
    return group.upper()


def folders_for(system: System, group: str, years: list[int], months: list[int]) -> list[str]:
    """The folders that hold the selected periods (every folder of the group when no years are given)."""
    check_group(system, group)
    periods = [y * 100 + m for y in years for m in (months or range(1, 13))]
    out = []
    for folder in system.folders_of(group):
        if not years or any(folder.first <= p <= folder.last for p in periods):
            out.append(folder.path.format(group=group))
    return out


def wanted(f: FileName, group: str, states: list[str], years: list[int], months: list[int]) -> bool:
    """Whether a parsed file belongs to the selection (empty lists select everything)."""
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
    spec = system.groups[group]
    states = [""] if spec.stateless else ["BR"] if system.national else (states or STATES)
    digits = spec.year_digits or system.year_digits
    names = []
    for state in states:
        for year in years:
            y = str(year)[-digits:]
            if system.yearly:
                names.append(f"{group}{state}{y}.dbc")
            else:
                names += [f"{group}{state}{y}{m:02d}.dbc" for m in (months or range(1, 13))]
    return names
