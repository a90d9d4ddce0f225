import pytest

from etl.datasus.catalog import SYSTEMS, expected_names, folders_for, get_system, parse_name
from etl.errors import ConfigError


@pytest.mark.parametrize(
    ("system", "name", "parsed"),
    [
        ("SIH", "RDSP2303.dbc", ("RD", "SP", 2023, 3, "")),
        ("SIA", "PASP2303a.dbc", ("PA", "SP", 2023, 3, "a")),
        ("SIA", "PASP2303c.dbc", ("PA", "SP", 2023, 3, "c")),
        ("SIA", "BISP2303_2.dbc", ("BI", "SP", 2023, 3, "_2")),
        ("SIA", "ABOISP2301.dbc", ("ABOI", "SP", 2023, 1, "")),
        ("SIM", "DOSP2022.dbc", ("DO", "SP", 2022, None, "")),
        ("SINASC", "DNRJ1999.dbc", ("DN", "RJ", 1999, None, "")),
        ("SINAN", "DENGBR24.dbc", ("DENG", "BR", 2024, None, "")),
        ("CNES", "STPI2206.dbc", ("ST", "PI", 2022, 6, "")),
        ("SIH", "RDSP9801.dbc", ("RD", "SP", 1998, 1, "")),
        ("SIM", "DOFET22.dbc", ("DOFET", "BR", 2022, None, "")),
        ("SIM", "DOEXT19.dbc", ("DOEXT", "BR", 2019, None, "")),
        ("SINASC", "DNEX2021.dbc", ("DNEX", "BR", 2021, None, "")),
        ("SIA", "AMPSP2301.dbc", ("AMP", "SP", 2023, 1, "")),
        ("SIA", "AMPA2301.dbc", ("AM", "PA", 2023, 1, "")),
        ("CNES", "DCSP2301.dbc", ("DC", "SP", 2023, 1, "")),
    ],
)
def test_every_form_of_name(system, name, parsed):
    f = parse_name(name, SYSTEMS[system])
    assert (f.group, f.state, f.year, f.month, f.part) == parsed


@pytest.mark.parametrize(
    ("system", "name"),
    [
        ("SIH", "RDSP2313.dbc"),
        ("SIH", "README.txt"),
        ("SIM", "DOSP22.dbc"),
        ("SIH", "PASP2303.dbc"),
        ("SIH", "RDSP2303.csv"),
        ("SIA", "../PASP2303.dbc"),
        ("SIM", "DOFETSP22.dbc"),
        ("SIM", "DOFET2022.dbc"),
    ],
)
def test_names_that_are_not_files_of_the_system(system, name):
    assert parse_name(name, SYSTEMS[system]) is None


def test_folders_follow_the_period():
    sih = get_system("sih")
    assert folders_for(sih, "RD", [2007], [12]) == ["/dissemin/publicos/SIHSUS/199201_200712/Dados"]
    assert folders_for(sih, "RD", [2007, 2008], [1]) == [
        "/dissemin/publicos/SIHSUS/199201_200712/Dados",
        "/dissemin/publicos/SIHSUS/200801_/Dados",
    ]
    assert folders_for(get_system("CNES"), "ST", [2022], []) == ["/dissemin/publicos/CNES/200508_/Dados/ST"]
    with pytest.raises(ConfigError, match="SIH has no group 'XX'"):
        folders_for(sih, "XX", [2020], [])
    with pytest.raises(ConfigError, match="unknown DATASUS system"):
        get_system("SUS")


def test_expected_names_for_unlistable_mirrors():
    assert expected_names(get_system("SIH"), "RD", ["SP"], [2023], [1, 2]) == ["RDSP2301.dbc", "RDSP2302.dbc"]
    assert expected_names(get_system("SIM"), "DO", ["RJ"], [2022], []) == ["DORJ2022.dbc"]
    assert expected_names(get_system("SINAN"), "DENG", [], [2024], []) == ["DENGBR24.dbc"]


def test_stateless_groups_have_their_own_folder_and_names():
    sim = get_system("SIM")
    assert folders_for(sim, "DOFET", [2022], []) == ["/dissemin/publicos/SIM/CID10/DOFET"]
    assert folders_for(sim, "DO", [], []) == ["/dissemin/publicos/SIM/CID10/DORES"]
    assert expected_names(sim, "DOMAT", ["SP"], [2021], []) == ["DOMAT21.dbc"]


def test_every_system_and_group_has_its_long_names():
    for system in SYSTEMS.values():
        assert system.pt and system.en
        for group in system.groups.values():
            assert group.pt and group.en
    assert (SYSTEMS["SIH"].groups["RD"].pt, SYSTEMS["SIH"].groups["RD"].en) == (
        "AIH Reduzida",
        "Reduced hospital admission record",
    )
