"""DuckDB transforms over ~10x the budget, under etl's settings at 256 MB, beside the same queries at 4 GB;
run as `etl transform` runs a transform file's statements, and the traps measured here, with the error etl gives for each.

Targets (issue 5): a high-cardinality GROUP BY, a full sort and a join over ~10x the budget finish with peak RSS
under 256 MB. Scale with ETL_BENCH_TRANSFORM_GB (Parquet size, default 2.5).
"""

from __future__ import annotations

import os
import shutil

from benchmarks.common import WORK, Measure, python, run, write_table

RUN = """
import sys
from pathlib import Path
from etl.config import Settings
from etl.errors import LoadError
from etl.memory import parse_size
from etl.sinks.duckdb import WAREHOUSE_SHARE, connect, run_sql_file, warehouse_reserve
from etl.sinks.sort_ranges import create_sorted_in_ranges
from etl.transform import export_marts
settings = Settings(data_dir=Path(sys.argv[1]), memory_limit=parse_size(sys.argv[2]), threads=2)
settings.data_dir.mkdir(parents=True, exist_ok=True)
warehouse = settings.data_dir / "warehouse.duckdb"
warehouse.unlink(missing_ok=True)
# as `etl transform` builds the warehouse: its connection, its statement runner, its export of the marts
con = connect(settings, warehouse, share=WAREHOUSE_SHARE, reserve=warehouse_reserve(settings.memory_limit))
con.execute("CREATE SCHEMA bench; SET schema = 'bench'")
try:
    for statement in sys.argv[3:]:
        run_sql_file(con, Path("bench.sql"), statement, out_of_memory=create_sorted_in_ranges)
    export_marts(con, settings, "bench")
except LoadError as e:
    print(f"etl: error: {e}", file=sys.stderr)
    sys.exit(1)
"""

QUERIES = {
    "GROUP BY 20M keys": "COPY (SELECT k, count(*) AS n, sum(v) AS s, max(s) AS m FROM '{facts}' GROUP BY k) "
    "TO '{out}/group.parquet' (FORMAT parquet, ROW_GROUP_SIZE_BYTES '4MB')",
    "full sort (a mart)": "CREATE TABLE sorted AS SELECT * FROM '{facts}' ORDER BY v, k",
    "join": "COPY (SELECT f.k, f.v, d.label FROM '{facts}' f JOIN '{dims}' d ON f.k = d.k) TO '{out}/join.parquet' "
    "(FORMAT parquet, ROW_GROUP_SIZE_BYTES '4MB')",
}


def main() -> None:
    gb = float(os.environ.get("ETL_BENCH_TRANSFORM_GB", 2.5))
    work = WORK / "transform"
    shutil.rmtree(work, ignore_errors=True)
    (work / "out").mkdir(parents=True)
    facts, dims = work / "facts.parquet", work / "dims.parquet"
    rows = int(gb * 2**30 / 64)
    gen = [
        f"COPY (SELECT (i * 7919) % 20000000 AS k, random() AS v, md5(i::VARCHAR) || md5((i+1)::VARCHAR) AS s "
        f"FROM range({rows}) t(i)) TO '{facts}' (FORMAT parquet, COMPRESSION uncompressed)",
        f"COPY (SELECT i AS k, 'label ' || i AS label FROM range(20000000) t(i)) TO '{dims}' (FORMAT parquet)",
    ]
    run("(generate the inputs)", [*python(RUN), str(work), "4GB", *gen], facts)
    size = (facts.stat().st_size + dims.stat().st_size) / 2**30
    m: list[Measure] = []
    for name, sql in QUERIES.items():
        q = sql.format(facts=facts, dims=dims, out=work / "out")
        for budget in ("256MB", "4GB"):
            out = work / budget / "marts" if name.endswith("(a mart)") else work / "out"
            m.append(run(f"{name} @ {budget}", [*python(RUN), str(work / budget), budget, q], out))
    traps = [
        (
            "trap: string_agg over 4 huge groups @ 1GB",
            f"COPY (SELECT k % 4 AS g, string_agg(s, ',') FROM '{facts}' GROUP BY g) TO '{work}/out/agg.parquet'",
            "1GB",
        ),
        (
            "trap: PARTITION_BY 4 partitions @ 256MB",
            f"COPY (SELECT k % 4 AS p, * FROM '{facts}') TO '{work}/out/parts' (FORMAT parquet, PARTITION_BY (p), "
            "OVERWRITE)",
            "256MB",
        ),
        (
            "fix: same with partitioned_write_flush_threshold",
            f"SET partitioned_write_flush_threshold = 100000; COPY (SELECT k % 4 AS p, * FROM '{facts}') TO "
            f"'{work}/out/parts2' (FORMAT parquet, PARTITION_BY (p), OVERWRITE)",
            "256MB",
        ),
        (
            "trap: max_temp_directory_size 50MB, sort @ 256MB",
            f"SET max_temp_directory_size = '50MB'; COPY (SELECT * FROM '{facts}' ORDER BY v) TO "
            f"'{work}/out/sort2.parquet'",
            "256MB",
        ),
    ]
    for name, q, budget in traps:
        m.append(run(name, [*python(RUN), str(work / "traps"), budget, *q.split("; ")], work / "out"))
    notes = [
        f"- Inputs: {size:.1f} GB of Parquet ({rows:,} facts, 20M dimension rows), ~{size * 4:.0f}x a 256 MB "
        "budget. Each query runs as a transform statement of `etl transform` (its connection and statement runner) "
        "and writes its result to Parquet; etl's settings: memory_limit below the budget, threads from the budget, "
        "temp_directory under data/, preserve_insertion_order = false. The sort is a mart, `CREATE TABLE sorted "
        "AS SELECT * FROM facts ORDER BY v, k`, exported to data/marts/ in its order as `etl transform` does: "
        "when DuckDB's whole sort runs out of memory, etl builds it in ranges of v (etl/sinks/sort_ranges.py).",
        "- Traps: a FAILED row shows the error etl reports (with the setting to change) instead of a crash.",
    ]
    write_table("transform", "DuckDB transforms under a 256 MB budget", m, notes)


if __name__ == "__main__":
    main()
