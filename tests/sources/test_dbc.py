import datetime as dt
import json
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from etl.errors import ConversionError, SourceError
from etl.sources.dbc import dbc_to_dbf, write_dbc
from etl.sources.dbf import write_dbf
from tests.conftest import samples_dir

FIELDS = [("N_AIH", "C", 13, 0), ("MUNIC_RES", "C", 6, 0), ("DT_INTER", "D", 8, 0), ("VAL_TOT", "N", 10, 2)]


@pytest.fixture
def dbc(tmp_path):
    records = [(f"{i:013d}", "355030", dt.date(2023, 3, 1 + i % 28), i / 4) for i in range(3000)]
    write_dbf(tmp_path / "RDSP2303.dbf", FIELDS, records)
    return write_dbc(tmp_path / "RDSP2303.dbf", tmp_path / "RDSP2303.dbc")


def test_written_dbc_decompresses_to_the_same_dbf(tmp_path, dbc):
    dbc_to_dbf(dbc, tmp_path / "back.dbf")
    assert (tmp_path / "back.dbf").read_bytes() == (tmp_path / "RDSP2303.dbf").read_bytes()


@pytest.mark.skipif(samples_dir() is None, reason="shared samples not present")
def test_real_dbc_round_trip(tmp_path):
    dbf = dbc_to_dbf(samples_dir() / "datasus/sids.dbc", tmp_path / "sids.dbf")
    assert dbf.read_bytes() == (samples_dir() / "datasus/expected-sids.dbf").read_bytes()
    again = dbc_to_dbf(write_dbc(dbf, tmp_path / "again.dbc"), tmp_path / "again.dbf")
    assert again.read_bytes() == dbf.read_bytes()


def damage(dbc, tmp_path, how):
    raw = bytearray(dbc.read_bytes())
    hlen = struct.unpack("<H", raw[8:10])[0]
    if how == "truncated":
        raw = raw[: len(raw) * 2 // 3]
    elif how == "crc":
        raw[hlen] ^= 0xFF
    elif how == "corrupt":
        raw[hlen + 4 + 5000] ^= 0x10  # one bit of a literal: the data changes, the CRC no longer matches
    path = tmp_path / f"{how}.dbc"
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(
    ("how", "message"),
    [("truncated", "decompress"), ("crc", "CRC-32 mismatch"), ("corrupt", "CRC-32 mismatch")],
)
def test_damaged_dbc_is_an_error_and_leaves_nothing(tmp_path, dbc, how, message):
    bad = damage(dbc, tmp_path, how)
    with pytest.raises(ConversionError, match=f"{how}.dbc: .*{message}"):
        dbc_to_dbf(bad, tmp_path / "out" / "x.dbf")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_not_a_dbc(tmp_path):
    (tmp_path / "x.dbc").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(SourceError, match="not a DATASUS .dbc file"):
        dbc_to_dbf(tmp_path / "x.dbc", tmp_path / "x.dbf")


@pytest.mark.parametrize(
    ("how", "message"),
    [("truncated", "decompressed to"), ("crc", "CRC-32 mismatch"), ("corrupt", "CRC-32 mismatch")],
)
def test_cli_convert_dbc_goes_on_after_a_bad_file(etl, tmp_path, dbc, how, message):
    bad = damage(dbc, tmp_path, how)  # found while converting: the Parquet must not be committed
    r = etl("--json", "convert", "dbc", bad, dbc, "--out", "out")
    assert r.code == 1
    assert f"{how}.dbc" in r.err and message in r.err
    summary = json.loads(r.out)
    assert summary["rows"] == 3000 and summary["failed"] == 1
    table = pq.read_table(tmp_path / "out/RDSP2303.parquet")
    assert table.column("_source_file")[0].as_py() == "RDSP2303.dbc"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["RDSP2303.parquet"]
    assert not list((tmp_path / "data").rglob("*.dbf"))


def test_keep_dbf_keeps_the_decompressed_dbf_beside_the_parquet(etl, tmp_path, dbc):
    r = etl("convert", "dbc", dbc, "--out", "out", "--keep-dbf")
    assert r.code == 0, r.err
    assert (tmp_path / "out/RDSP2303.dbf").read_bytes() == (tmp_path / "RDSP2303.dbf").read_bytes()
    assert pq.read_table(tmp_path / "out/RDSP2303.parquet").num_rows == 3000
    assert not list((tmp_path / "data").rglob("*.dbf*"))  # the DBF streams through a pipe: no scratch copy


def big_dbc(tmp_path, times: int) -> Path:
    """A .dbc of 3,000 x `times` records (the fixture's records repeated: writing distinct ones is slow)."""
    records = [(f"{i:013d}", "355030", dt.date(2023, 3, 1 + i % 28), i / 4) for i in range(3000)]
    small = write_dbf(tmp_path / "small.dbf", FIELDS, records)
    raw = small.read_bytes()
    hlen, reclen = struct.unpack("<HH", raw[8:12])
    body = raw[hlen : hlen + 3000 * reclen]
    big = tmp_path / "RDSP2304.dbf"
    with open(big, "wb") as f:
        f.write(raw[:4] + struct.pack("<I", 3000 * times) + raw[8:hlen])
        for _ in range(times):
            f.write(body)
        f.write(b"\x1a")
    return write_dbc(big, tmp_path / "RDSP2304.dbc")


@pytest.mark.parametrize("keep", [False, True])
def test_ctrl_c_kills_the_decompressor_and_leaves_no_partial_output(tmp_path, keep):
    # 4.8M records: about a second of conversion, the decompressor running throughout (1.2M took 0.2-0.3 s, no
    # longer than the waits below, and the decompressor had sometimes finished)
    dbc = big_dbc(tmp_path, 1600)
    cmd = [sys.executable, "-m", "etl.cli", "--quiet", "--data-dir", tmp_path / "data"]
    cmd += ["convert", "dbc", dbc, "--out", tmp_path / "out", *(["--keep-dbf"] if keep else [])]
    proc = subprocess.Popen([str(c) for c in cmd], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (children := psutil.Process(proc.pid).children()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert children, "the decompressor never started"
        (decompressor,) = children
        time.sleep(0.3)  # into the conversion: the parent reads what the child writes
        assert decompressor.is_running()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not psutil.pid_exists(decompressor.pid) or decompressor.status() == psutil.STATUS_ZOMBIE
    left = [p.name for p in (tmp_path / "out").rglob("*")] if (tmp_path / "out").exists() else []
    assert left == []
    assert not list((tmp_path / "data").rglob("*.dbf*"))


def test_a_killed_conversion_leaves_no_decompressor_running(tmp_path):
    dbc = big_dbc(tmp_path, 1600)  # as above
    cmd = [sys.executable, "-m", "etl.cli", "--quiet", "--data-dir", tmp_path / "data"]
    proc = subprocess.Popen([str(c) for c in [*cmd, "convert", "dbc", dbc, "--out", tmp_path / "out"]])
    try:
        deadline = time.monotonic() + 60
        while not (children := psutil.Process(proc.pid).children()) and time.monotonic() < deadline:
            time.sleep(0.01)
        (decompressor,) = children
        time.sleep(0.3)
        assert decompressor.is_running()
        proc.kill()  # no Ctrl-C handler runs: the decompressor finds its reader gone at its next write
        proc.wait()
        decompressor.wait(timeout=10)  # psutil.TimeoutExpired if it carries on
    finally:
        if proc.poll() is None:
            proc.kill()
