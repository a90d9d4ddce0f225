"""Generated samples are verified against their manifest each run, and generated again when not intact."""

import time

import duckdb

from etl.samples import MANIFEST, epss, nvd

CONFIG = """
[datasets.sih]
kind = "datasus"
sample = true
sample_rows = 300

[datasets.deaths]
kind = "csv"
sample = true
sample_rows = 400
delimiter = ";"
encoding = "latin-1"
"""


def counts(tmp_path) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "data/warehouse.duckdb"), read_only=True) as con:
        return [con.execute(f"SELECT count(*) FROM {v}").fetchall()[0][0] for v in ("sih.records", "deaths")]


def test_a_sample_cut_short_is_generated_again_not_trusted(etl, tmp_path):
    (tmp_path / "etl.toml").write_text(CONFIG)
    assert etl("run").code == 0
    clean = counts(tmp_path)
    raw = tmp_path / "data/raw/sih"
    dbc = sorted(raw.glob("*.dbc"))[0]
    original = dbc.read_bytes()
    dbc.write_bytes(original[: len(original) // 8])  # what two unlocked runs once left behind
    (tmp_path / "data/raw/deaths/deaths.csv").write_text("garbled\n")
    r = etl("run")
    assert r.code == 0, r.err
    assert "the generated sample is not intact; generating it again" in r.err
    assert dbc.read_bytes() == original and counts(tmp_path) == clean
    assert (raw / MANIFEST).exists() and not list((tmp_path / "data/tmp").glob("sample-*"))


def test_an_intact_sample_is_not_generated_again(etl, tmp_path):
    (tmp_path / "etl.toml").write_text(CONFIG)
    assert etl("run").code == 0
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "data/raw").rglob("*") if p.is_file()}
    r = etl("run")
    assert r.code == 0 and "generating it again" not in r.err
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_gzipped_samples_are_the_same_bytes_whenever_written(tmp_path):
    """EPSS files and NVD pages carry no time of writing nor scratch name (gzip's header would)."""
    for name in ("a", "b"):
        epss.write_sample(tmp_path / name / "epss", days=2)
        nvd.write_sample(tmp_path / name / "nvd", pages=2)
        time.sleep(1.1)  # gzip stamps whole seconds
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.gz"))
    assert len(files) == 4
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
