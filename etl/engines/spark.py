"""The Spark engine: conversions fanned out as Spark tasks, one per raw file; sql/ marts computed by Spark SQL.

Every executor runs etl's own source and Parquet sink (`run_task`), so etl and its dependencies must be installed
on every node, and the data directory must be at the same path on storage every executor sees (a shared
filesystem): tasks read raw files and write Parquet there, and the driver checks that before converting.
The driver alone writes the state store. Transforms: the SQL files' tables (marts) and the views and macros they
use are transpiled from DuckDB's dialect by sqlglot and run over temporary views of the Parquet tables; each mart
is written as a Parquet folder where the local engine writes its file, and the DuckDB warehouse is then built as
usual with that mart as a view over it. Polars `.py` transforms run on the driver while the warehouse is built,
as with the local engine.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl.config import Config, Settings, build_options
from etl.engines.tasks import Outcome, Task, run_shipped
from etl.errors import ConfigError, EtlError, LoadError
from etl.files import owner_alive, replace_folder, tmp_path
from etl.memory import MB
from etl.sources import SINGLE_TABLE, Context, map_here

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from etl.sinks.duckdb import View

logger = logging.getLogger(__name__)

# What etl's outputs need from Spark whatever the cluster: DuckDB's timestamps (no time zone), zstd Parquet
# without _SUCCESS markers, no console bars.
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.parquet.compression.codec": "zstd",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.ui.showConsoleProgress": "false",
}
JAVA_MAJOR = 17


@dataclass
class SparkOptions:
    """The `[spark]` table of etl.toml."""

    master: str = "local[2]"  # local[N], spark://host:7077, yarn, k8s://…
    app_name: str = "etl"
    conf: dict[str, Any] = field(default_factory=dict)  # passed to the session, e.g. "spark.executor.memory"


class SparkEngine:
    name = "spark"

    def __init__(self, config: Config):
        self.settings = config.settings
        self.options = build_options(SparkOptions, config.sections.get("spark", {}), "[spark]")
        self._spark: SparkSession | None = None
        self._owned = False
        self._checked_storage = False
        self.task_memory = 0
        self.slots = 0

    # --- the session -----------------------------------------------------------------------------------------

    def session(self) -> SparkSession:
        """The session, started on first use (a missing pyspark or Java is one clear error)."""
        if self._spark is not None:
            return self._spark
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise EtlError(
                'engine = "spark" needs pyspark', hint="Install it with: pip install 'etl[spark]'"
            ) from None
        check_java()
        active = SparkSession.getActiveSession()
        if active is not None:  # a notebook's or a test's session: used, never stopped by etl
            if active.sparkContext.master != self.options.master:
                raise ConfigError(
                    f"a Spark session on {active.sparkContext.master} is already running in this process",
                    hint=f"[spark] master is {self.options.master}: stop that session or use its master",
                )
            self._spark = active
        else:
            # Executors run the driver's own Python (etl and its libraries) unless the cluster says otherwise;
            # pyspark takes it from the environment, not from spark.pyspark.python, when not under spark-submit.
            python = self.options.conf.get("spark.pyspark.python", sys.executable)
            os.environ.setdefault("PYSPARK_PYTHON", str(python))
            if self.options.master.startswith("local"):  # nothing outside this machine needs to reach it
                os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            logging.getLogger("py4j").setLevel(logging.WARNING)  # one INFO line per Python<->JVM connection
            builder = SparkSession.builder.master(self.options.master).appName(self.options.app_name)
            for key, value in {**DEFAULT_CONF, **self.options.conf}.items():
                builder = builder.config(key, str(value).lower() if isinstance(value, bool) else str(value))
            self._spark, self._owned = builder.getOrCreate(), True
            self._spark.sparkContext.setLogLevel("WARN")
        self.slots, self.task_memory, how = self._task_budget()
        logger.info(
            "spark: %s, %d task slots, %.0f MB per task (%s)",
            self.options.master,
            self.slots,
            self.task_memory / MB,
            how,
        )
        return self._spark

    def _task_budget(self, spark: SparkSession | None = None) -> tuple[int, int, str]:
        """Task slots in the cluster, and each task's memory: an executor's memory shared by its cores."""
        sc = (spark or self._spark).sparkContext
        conf = sc._jsc.sc().conf()  # the JVM's SparkConf parses Spark's own size syntax ("4g", "512m")
        cpus = int(conf.get("spark.task.cpus", "1"))
        local = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\d+)?\])?", sc.master)
        if local:
            n = local.group(1)
            cores = 1 if n is None else (os.cpu_count() or 1) if n == "*" else int(n)
            memory_key = "spark.driver.memory"  # local mode: the executor is the driver's JVM
        else:
            cores = int(conf.get("spark.executor.cores", "0")) or max(1, sc.defaultParallelism)
            memory_key = "spark.executor.memory"
        if conf.contains("spark.executor.pyspark.memory"):
            memory_key = "spark.executor.pyspark.memory"  # Python's own share, when the cluster sets it
        per_executor = conf.getSizeAsMb(memory_key, "1g") * MB
        per_task = max(1, cores // cpus)
        slots = max(1, sc.defaultParallelism // cpus)
        return (
            slots,
            per_executor // per_task,
            f"{memory_key} {per_executor // MB} MB / {per_task} task slots",
        )

    def driver_budget(self) -> int:
        """The driver process's budget: etl's memory_limit, plus, once Spark runs, its JVM (a child of this
        process): spark.driver.memory and Spark's overhead on it (max(384 MB, 10%)), and in local mode the task
        slots' Python workers."""
        spark = self._spark or active_session()  # a notebook's or a test's, running before etl uses it
        if spark is None:
            return self.settings.memory_limit
        sc = spark.sparkContext
        jvm = sc._jsc.sc().conf().getSizeAsMb("spark.driver.memory", "1g") * MB
        slots, task_memory = (self.slots, self.task_memory) if self._spark else self._task_budget(spark)[:2]
        workers = slots * task_memory if sc.master.startswith("local") else 0
        return self.settings.memory_limit + jvm + max(384 * MB, jvm // 10) + workers

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "master": self.options.master,
            "task_slots": self.slots,
            "task_memory_limit_mb": round(self.task_memory / MB, 1),
        }

    def end_conversions(self) -> None:
        """Nothing to release: the session runs the transforms next."""

    # In the driver's process: samples are generated where the run starts, then converted on executors.
    parallel_map = staticmethod(map_here)

    def close(self) -> None:
        if self._spark is not None and self._owned:
            self._spark.stop()
        self._spark = None

    # --- conversions -----------------------------------------------------------------------------------------

    def convert(self, tasks: list[Task], ctx: Context) -> Iterator[Outcome]:
        """One Spark job per raw file, as many at a time as the cluster has task slots; outcomes as they end."""
        if not tasks:
            return
        spark = self.session()
        settings = absolute(ctx.settings, memory_limit=self.task_memory)
        self.check_shared_storage(settings)
        run = partial(
            _convert_on_executor, settings=settings, base_dir=ctx.base_dir.resolve(), stems=ctx.stems
        )
        sc = spark.sparkContext

        def job(task: Task) -> Outcome:
            sc.setJobDescription(f"etl convert {task.key}")
            try:
                return sc.parallelize([task], 1).map(run).collect()[0]
            except Exception as e:  # the task's process died (killed for memory, …) after Spark's retries
                first = next((line for line in str(e).splitlines() if "Error" in line), str(e)[:300])
                return Outcome(
                    task, error=f"Spark task failed: {first.strip()}", memory_limit=self.task_memory
                )

        tasks = [
            dataclasses.replace(t, path=Path(t.path).resolve(), out_dir=t.out_dir.resolve()) for t in tasks
        ]
        pool = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="etl-spark")
        pending = {pool.submit(job, t) for t in tasks}
        try:
            for future in as_completed(pending):
                pending.discard(future)
                yield future.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            if pending:  # interrupted (Ctrl-C, an error recording an outcome): stop what still runs
                sc.cancelAllJobs()
            pool.shutdown(wait=True)

    def check_shared_storage(self, settings: Settings) -> None:
        """Every executor must see the data directory: a file the driver writes there, read back by tasks."""
        if self._checked_storage:
            return
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(8)
        probe = tmp_path(settings.tmp_dir / "spark-probe")
        probe.write_text(token)
        try:
            sc = self._spark.sparkContext
            sc.setJobDescription("etl: does every executor see the data directory?")
            n = max(self.slots, 1)
            seen = sc.parallelize(range(n), n).map(partial(_sees, str(probe), token)).collect()
        finally:
            probe.unlink(missing_ok=True)
        blind = sorted({worker for worker, ok in seen if not ok})
        if blind:
            raise EtlError(
                f"Spark executors on {', '.join(blind)} cannot see the data directory {settings.data_dir}",
                hint="Put data_dir on storage every executor mounts at the same path (NFS, a cluster "
                "filesystem): tasks read the raw files and write the Parquet there",
            )
        self._checked_storage = True

    # --- transforms ------------------------------------------------------------------------------------------

    def transform(self, views: list[View], transforms: dict[str, list[Path]]) -> dict[tuple[str, Path], str]:
        """Compute every sql/ mart on Spark (checked whole before any runs); the DuckDB text of each file."""
        from etl.engines.transpile import statements

        plan = {
            schema: [s for p in files if p.suffix == ".sql" for s in statements(p)]
            for schema, files in transforms.items()
        }
        if not any(s.kind == "table" for stmts in plan.values() for s in stmts):
            return {}  # only views: DuckDB runs them over the Parquet, no Spark needed
        spark = self.session()
        self.check_shared_storage(absolute(self.settings))
        marts: dict[str, dict[str, Path]] = {}
        written: list[tuple[Path, Path]] = []
        try:
            self._run(spark, views, plan, write=None)  # transpile and analyse everything: nothing runs yet
            self._run(spark, views, plan, write=written)
            for tmp, final in written:
                replace_folder(tmp, final)
                marts.setdefault(final.parent.name, {})[final.name.removesuffix(".parquet")] = final
        finally:
            for tmp, _ in written:
                shutil.rmtree(tmp, ignore_errors=True)
        from etl.engines.transpile import duckdb_text

        return {
            (schema, path): duckdb_text(path, marts.get(schema, {}), self.settings)
            for schema, files in transforms.items()
            for path in files
            if path.suffix == ".sql" and marts.get(schema)
        }

    def _run(self, spark: SparkSession, views: list[View], plan: dict, write: list | None) -> None:
        """One pass over every schema's statements; with `write`, marts are written to temporary folders (listed
        there) and later statements read them; without, Spark only analyses. All errors are raised together."""
        from py4j.protocol import Py4JJavaError
        from pyspark.errors import PySparkException

        from etl.engines.transpile import Transpiler
        from etl.reference import SCHEMA as REFERENCE_SCHEMA
        from etl.reference import TABLES as REFERENCE_TABLES
        from etl.reference import data_file as reference_file
        from etl.transform import TransformFailures, marts_dir

        registry: dict[tuple[str, str], str] = {}
        # Views Spark cannot build stay DuckDB's alone: an error only for a mart that reads them.
        broken: dict[tuple[str, str], LoadError] = {}

        def resolve(schema: str, name: str) -> str | None:
            key = (schema.lower(), name.lower())
            if key in broken:
                raise broken[key]
            return registry.get(key)

        def register(schema: str, name: str, frame) -> None:
            view = f"{schema}__{name}"
            frame.createOrReplaceTempView(view)
            registry[schema.lower(), name.lower()] = view

        for v in views:
            frame = spark.read.option("mergeSchema", "true").parquet(*[str(f.resolve()) for f in v.files])
            register(v.schema, v.name, frame)
            if v.name == SINGLE_TABLE:  # `FROM <dataset>`, as in the warehouse
                register("main", v.schema, frame)
        for table in REFERENCE_TABLES:  # ref.municipios, ref.cid10, …: the Parquet etl ships
            register(REFERENCE_SCHEMA, table, spark.read.parquet(str(reference_file(table))))
        functions = frozenset(r.function.lower() for r in spark.sql("SHOW FUNCTIONS").collect())
        errors: list[LoadError] = []
        for schema, stmts in plan.items():
            sql = Transpiler(schema, resolve, spark_functions=functions)
            for stmt in stmts:
                if stmt.kind == "schema":  # Spark's views are named by etl, schema and all
                    continue
                target = (stmt.schema or schema, stmt.name or "")
                if stmt.if_not_exists and (target[0].lower(), target[1].lower()) in registry:
                    continue
                try:
                    if stmt.kind == "macro":
                        sql.define_macro(stmt)
                        continue
                    if stmt.kind == "other":
                        raise stmt.error(
                            f"{' '.join(stmt.text.split()[:3])}…: only CREATE VIEW, CREATE TABLE … AS SELECT, "
                            "CREATE SCHEMA and CREATE MACRO run on Spark"
                        )
                    try:
                        frame = spark.sql(sql.query(stmt))
                        if stmt.kind == "table":
                            frame = days_as_integers(frame)
                        if stmt.kind == "table" and write is not None:
                            final = marts_dir(self.settings, target[0]).resolve() / f"{stmt.name}.parquet"
                            sweep_folders(final)
                            tmp = tmp_path(final)
                            spark.sparkContext.setJobDescription(f"etl mart {target[0]}.{stmt.name}")
                            frame.write.parquet(str(tmp))
                            write.append((tmp, final))
                            frame = spark.read.parquet(str(tmp))
                    except (PySparkException, Py4JJavaError) as e:
                        raise stmt.error(f"Spark: {str(e).strip().splitlines()[0]}") from None
                    register(*target, frame)
                except LoadError as e:
                    if stmt.kind == "view":
                        broken[target[0].lower(), target[1].lower()] = e
                        if write is None:
                            logger.info("%s.%s stays a DuckDB view only: %s", *target, e)
                        continue
                    errors.append(e)
                    break  # a failing statement stops its dataset, as in DuckDB; the others are still checked
        if errors:
            raise TransformFailures(errors)


def days_as_integers(frame):
    """DuckDB's `date - date` is a number of days, Spark's an INTERVAL DAY: a mart's such columns as days."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DayTimeIntervalType

    def day_interval(t) -> bool:
        return isinstance(t, DayTimeIntervalType) and t.startField == t.endField == DayTimeIntervalType.DAY

    if not any(day_interval(f.dataType) for f in frame.schema.fields):
        return frame
    return frame.select(
        *[
            F.col(f"`{f.name}`").cast("bigint").alias(f.name)
            if day_interval(f.dataType)
            else F.col(f"`{f.name}`")
            for f in frame.schema.fields
        ]
    )


def absolute(settings: Settings, **changes: Any) -> Settings:
    """Settings for an executor, whose working directory is not the driver's: absolute paths."""
    return dataclasses.replace(
        settings, data_dir=settings.data_dir.resolve(), sql_dir=settings.sql_dir.resolve(), **changes
    )


def active_session() -> SparkSession | None:
    """The session running in this process, if pyspark is loaded at all (never imported just to ask)."""
    sql = sys.modules.get("pyspark.sql")
    return sql.SparkSession.getActiveSession() if sql is not None else None


def sweep_folders(final: Path) -> None:
    """Remove temporary folders of `final` that a Spark driver now gone left behind."""
    for p in final.parent.glob(f"{final.name}.*.tmp"):
        if p.is_dir() and not owner_alive(p):
            shutil.rmtree(p, ignore_errors=True)


def _convert_on_executor(task: Task, settings: Settings, base_dir: Path, stems: dict[Path, str]) -> Outcome:
    if not settings.data_dir.is_dir():
        return Outcome(
            task,
            error=f"this executor ({socket.gethostname()}) cannot see the data directory {settings.data_dir}",
            memory_limit=settings.memory_limit,
        )
    return run_shipped(task, settings, base_dir, stems)


def _sees(probe: str, token: str, _: int) -> tuple[str, bool]:
    try:
        ok = Path(probe).read_text() == token
    except OSError:
        ok = False
    return socket.gethostname(), ok


def check_java() -> None:
    """Spark needs Java 17 or later: `java` from JAVA_HOME, else PATH."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    hint = "Install Java 17 (e.g. apt-get install openjdk-17-jre-headless) and check it with: java -version"
    if not java or not Path(java).exists():
        raise EtlError('engine = "spark" needs Java 17: no java on JAVA_HOME or PATH', hint=hint)
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(m.group(2) if m and m.group(1) == "1" else m.group(1)) if m else 0
    if major < JAVA_MAJOR:
        raise EtlError(f'engine = "spark" needs Java {JAVA_MAJOR}, {java} is {major or "unknown"}', hint=hint)


def summary_line(report: dict[str, Any]) -> str:
    """Per-task figures of a Spark run: tasks, workers, peak RSS per task against the task budget."""
    tasks = [s for s in report["steps"] if s["step"] == "convert" and s["status"] != "skipped"]
    engine = report["engine"]
    if not tasks:
        return f"spark: {engine['master']}, no conversion tasks"
    peaks = sorted(s["peak_rss_mb"] for s in tasks)
    return (
        f"spark: {engine['master']}, {len(tasks)} tasks on {len({s['worker'] for s in tasks})} worker "
        f"processes, peak RSS per task min {peaks[0]:.0f} / median {statistics.median(peaks):.0f} / "
        f"max {peaks[-1]:.0f} MB (task budget {engine['task_memory_limit_mb']:.0f} MB)"
    )
