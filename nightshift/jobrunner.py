"""Shared entry-point plumbing for the Spark jobs in ``jobs/``: arguments, settings, session."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import time
from typing import Callable

from nightshift.lake import Lake, check_day
from nightshift.settings import load_settings
from nightshift.sources import SourceConfig, SourceConfigError, load_source


class JobTimer:
    """Wall time of a Spark job, split into start-up (from the JVM's start, or the Python
    process's when Python started the JVM, to a ready SparkSession) and named steps. Written as
    the day's ``spark_<job>`` report, which the nightly report (``nightshift.night``) reads."""

    def __init__(self, job: str):
        self.job = job
        self.started_at = _launch_time()
        self.session_ready_at: float | None = None
        self.steps: dict[str, float] = {}
        self.jvm_options: list[str] = []
        self.spark_connect: str | None = None

    def session_ready(self, spark=None) -> None:
        self.session_ready_at = time.time()
        from nightshift.spark import SPARK_REMOTE_ENV, is_connect

        if spark is not None and is_connect(spark):
            # a Spark Connect session: the JVM is the server's, started before the night
            self.spark_connect = os.environ.get(SPARK_REMOTE_ENV)
        elif spark is not None:
            # the driver JVM's -XX options as it runs (e.g. the short-job options of
            # nightshift.spark.driver_jvm_options, the class archive): the report says which applied
            runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
            self.jvm_options = [str(a) for a in runtime.getInputArguments() if str(a).startswith("-XX:")]

    @contextlib.contextmanager
    def step(self, name: str):
        started = time.monotonic()
        try:
            yield
        finally:
            self.steps[name] = round(time.monotonic() - started, 3)
            log.info("step %s: %.1f s", name, self.steps[name])

    def report(self, exit_code: int) -> dict:
        ended = time.time()
        startup = (self.session_ready_at or ended) - self.started_at
        return {
            "job": self.job,
            "exit_code": exit_code,
            "started_at": self.started_at,
            # the Airflow run that launched the job (its task's AIRFLOW_CTX_* reach spark-submit's
            # driver): the night report matches on it rather than on clocks
            "airflow_run_id": os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"),
            "ended_at": ended,
            "wall_s": round(ended - self.started_at, 3),
            "startup_s": round(startup, 3),
            "steps_s": self.steps,
            "work_s": round(sum(self.steps.values()), 3),
            "jvm_options": self.jvm_options,
            # the Spark Connect server the job ran on (None: its own driver JVM, spark-submit)
            "spark_connect": self.spark_connect,
        }


def _launch_time() -> float:
    """When this job was launched: under spark-submit the Python driver is a child of the
    SparkSubmit JVM, which started first; run directly with ``python``, this process."""
    import psutil

    me = psutil.Process(os.getpid())
    parent = me.parent()
    if parent is not None and "java" in (parent.name() or "").lower():
        return parent.create_time()
    return me.create_time()


log = logging.getLogger("nightshift.jobrunner")


def import_in_background(modules: list[str] | tuple[str, ...]) -> threading.Thread | None:
    """Import ``modules`` in a daemon thread, while the main thread waits for the JVM (a
    SparkContext takes seconds to start, and the Python driver is idle on its py4j socket meanwhile,
    as it is during most Spark actions). Great Expectations alone takes about 3.8 s to import on
    this machine: the night's first validation no longer pays it. Python's import locks make a
    main-thread import of the same module wait for this one rather than import it twice; a module
    that fails to import here is logged and imported (and fails, with its traceback) where it is used."""
    if not modules:
        return None

    def run():
        import importlib

        started = time.monotonic()
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001 - the real import, where the module is used, reports it
                log.warning("background import of %s failed: %s", module, exc)
        log.info("background imports (%s): %.1f s", ", ".join(modules), time.monotonic() - started)

    thread = threading.Thread(target=run, name="nightshift-imports", daemon=True)
    thread.start()
    return thread


def run_spark_job(name: str, argv: list[str] | None, body: Callable, extra_args: Callable | None = None,
                  timed: bool = False, imports: Callable | None = None) -> int:
    """Parse ``--source`` and ``--day``, build the session, call ``body(spark, lake, source, day, args)``
    (with ``timed``, ``body(..., args, timer)``: a :class:`JobTimer` whose report is written as the
    day's ``spark_<name>`` report). ``imports(args)`` names modules the job will need, imported in
    the background while the JVM starts (:func:`import_in_background`).

    Returns the process exit code: 0 on success, 1 on a handled failure (the message is logged).
    """
    timer = JobTimer(name) if timed else None
    parser = argparse.ArgumentParser(prog=f"jobs/{name}.py", description=body.__doc__)
    parser.add_argument("--source", required=True, help="source name: sources/<name>.yaml")
    parser.add_argument("--day", required=True, type=check_day, help="day partition, YYYY-MM-DD")
    if extra_args:
        extra_args(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    for noisy in ("great_expectations", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import_in_background(imports(args) if imports else ())
    settings = load_settings()
    source = load_source(args.source, settings.sources_dir)

    from nightshift.spark import get_spark

    spark = get_spark(f"nightshift-{name}-{args.source}-{args.day}")
    lake = Lake(settings.data_root)
    code = 1
    try:
        check_java_regexes(spark, source)
        if timer is None:
            code = int(body(spark, lake, source, args.day, args) or 0)
        else:
            timer.session_ready(spark)
            log.info("spark start-up: %.1f s (JVM launch to a ready session)", timer.session_ready_at - timer.started_at)
            code = int(body(spark, lake, source, args.day, args, timer) or 0)
        return code
    finally:
        spark.stop()
        if timer is not None:
            lake.write_report(source.name, args.day, f"spark_{name}", timer.report(code))


def source_regexes(source: SourceConfig) -> list[tuple[str, str]]:
    """``(what, regex)`` for every regex a Spark job runs for ``source``: each mask, the mask
    passes as actually run (merged, with their first-character guard), the session id regex and
    the format regex."""
    found = [(f"mask {m.name!r}", m.regex) for m in source.masks]
    found += [(f"mask pass {i} (masks merged with their guard)", regex) for i, (regex, _) in enumerate(source.mask_passes())]
    if source.session_id_regex:
        found.append(("session.id_regex", source.session_id_regex))
    found.append(("log_format", source.log_format.regex))
    return found


def _compile_on_server(spark) -> Callable[[str], None]:
    """For a Spark Connect session (no JVM here): compile a regex where Spark runs, with a query
    that matches it against a literal (the server raises INVALID_PARAMETER_VALUE.PATTERN)."""
    from pyspark.sql import functions as F

    def compile_java(regex: str) -> None:
        spark.range(1).select(F.regexp_like(F.lit(""), F.lit(regex))).collect()

    return compile_java


def check_java_regexes(spark, source: SourceConfig) -> None:
    """Compile every regex of ``source`` with Java's engine (what Spark runs), before any data is
    read: a regex only Python accepts (``(?P<name>...)``, ``(?#...)``, ...) fails here, naming it
    and the source file, instead of failing (or matching differently) halfway through a job."""
    from nightshift.spark import is_connect

    where = str(source.path) if source.path else f"source {source.name!r}"
    problems = []
    compile_java = _compile_on_server(spark) if is_connect(spark) else spark.sparkContext._jvm.java.util.regex.Pattern.compile
    for what, regex in source_regexes(source):
        try:
            compile_java(regex)
        except Exception as exc:  # py4j wraps java.util.regex.PatternSyntaxException
            java_error = getattr(getattr(exc, "java_exception", None), "getMessage", lambda: str(exc).splitlines()[0])()
            problems.append(f"{what}: Java cannot compile {regex!r}: {java_error}")
    if problems:
        raise SourceConfigError(f"{where}: " + "; ".join(problems))
