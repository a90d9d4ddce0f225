"""MITRE CWE catalogues: the CSV (as MITRE writes it), the XML with weaknesses, categories and views, zipped."""

import json
import zipfile

import duckdb

from etl.samples.cwe import write_sample
from tests.file_server import Files, serving

XML = """<?xml version="1.0" encoding="UTF-8"?>
<Weakness_Catalog xmlns="http://cwe.mitre.org/cwe-7" Name="CWE" Version="4.16" Date="2024-11-19">
  <Weaknesses>
    <Weakness ID="79" Name="Improper Neutralization of Input During Web Page Generation ('Cross-site Scripting')"
              Abstraction="Base" Structure="Simple" Status="Stable">
      <Description>The product does not neutralize user-controllable input.</Description>
      <Extended_Description><xhtml:p xmlns:xhtml="http://www.w3.org/1999/xhtml">More.</xhtml:p></Extended_Description>
    </Weakness>
    <Weakness ID="x1" Name="Broken" Abstraction="Base" Status="Draft"><Description>no id</Description></Weakness>
    <Weakness ID="1333" Name="Inefficient Regular Expression Complexity" Abstraction="Base" Status="Draft">
      <Description>The product uses a regular expression with an inefficient worst-case complexity.</Description>
    </Weakness>
  </Weaknesses>
  <Categories>
    <Category ID="1218" Name="Memory Buffer Errors" Status="Draft"><Summary>Buffers.</Summary></Category>
  </Categories>
  <Views>
    <View ID="1000" Name="Research Concepts" Type="Graph" Status="Draft"><Objective>All.</Objective></View>
  </Views>
</Weakness_Catalog>
"""


def rows(path, sql):
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM '{path}'")
    return con.sql(sql).fetchall()


def test_mitres_csv_gives_ids_names_abstractions_and_statuses(etl, tmp_path):
    path = write_sample(tmp_path / "1000.csv")
    r = etl("--json", "convert", "cwe", path, "--out", "out")
    assert r.code == 0, r.err
    assert json.loads(r.out)["rows"] == 11
    got = rows(
        tmp_path / "out/1000.parquet",
        "SELECT cwe_id, name, kind, abstraction, status, description, _source_row FROM t WHERE cwe_id = 'CWE-416'",
    )
    assert got == [
        ("CWE-416", "Use After Free", "weakness", "Variant", "Stable",
         "The product is affected by use after free.\nSee CWE-416.", 9)
    ]  # fmt: skip


def test_the_xml_zipped_with_categories_views_and_a_bad_id(etl, tmp_path):
    with zipfile.ZipFile(tmp_path / "cwec_latest.xml.zip", "w") as z:
        z.writestr("cwec_v4.16.xml", XML)
    files = Files({"/data/xml/cwec_latest.xml.zip": (tmp_path / "cwec_latest.xml.zip").read_bytes()})
    with serving(files) as url:
        (tmp_path / "etl.toml").write_text(
            f'[datasets.cwe]\nkind = "cwe"\nurl = "{url}/data/xml/cwec_latest.xml.zip"\n'
        )
        r = etl("--json", "run")
    assert r.code == 0, r.err
    assert (json.loads(r.out)["rows"], json.loads(r.out)["rejected"]) == (4, 1)
    con = duckdb.connect(str(tmp_path / "data/warehouse.duckdb"), read_only=True)
    got = con.sql(
        "SELECT cwe_id, kind, abstraction, status, description FROM cwe.records ORDER BY _source_row"
    ).fetchall()
    assert got == [
        ("CWE-79", "weakness", "Base", "Stable", "The product does not neutralize user-controllable input."),
        ("CWE-1333", "weakness", "Base", "Draft",
         "The product uses a regular expression with an inefficient worst-case complexity."),
        ("CWE-1218", "category", None, "Draft", "Buffers."),
        ("CWE-1000", "view", None, "Draft", None),
    ]  # fmt: skip
    reject = rows(tmp_path / "data/parquet/cwe/_rejects/cwec_latest.parquet", "SELECT line, reason FROM t")
    assert reject == [(2, "ID 'x1' is not a number")]


def test_a_file_that_is_not_a_catalogue_names_itself(etl, tmp_path):
    (tmp_path / "cwe.xml").write_text("<Weakness_Catalog><Weaknesses>")
    r = etl("convert", "cwe", tmp_path / "cwe.xml", "--out", "out")
    assert r.code == 1 and "cwe.xml" in r.err and "not a CWE catalogue" in r.err
