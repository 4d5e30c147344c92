"""The one SparkSession factory used by every job and by the tests, and the JVM options of a
night's spark-submit (:func:`night_submit_opts`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.shuffle.partitions": "8",
    # partitioned writes (parsed | quarantined) keep one open file per partition instead of
    # sorting every row by partition first
    "spark.sql.maxConcurrentOutputFileWriters": "4",
    "spark.ui.showConsoleProgress": "false",
}


def get_spark(app_name: str, master: str | None = None, conf: dict[str, str] | None = None) -> "SparkSession":
    """Return the active SparkSession or build one.

    Under ``spark-submit`` the master comes from the submit command (the Airflow connection);
    when a job is run directly with ``python`` and no master is configured, it falls back to
    ``local[*]``.
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    else:
        # Attach to the JVM first: under spark-submit its conf holds --master (from the Airflow
        # connection). Checked before that, SparkConf() is empty and the job would silently run
        # locally instead of on the cluster (tests/test_cluster.py guards this).
        SparkContext._ensure_initialized()
        if not SparkConf().contains("spark.master"):
            builder = builder.master("local[*]")
    for key, value in {**DEFAULT_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


# A short Spark application's driver spends much of its CPU compiling with the JIT's second tier
# (C2) code it will hardly run, and G1's concurrent threads compete for the 2 cores. For such a day,
# the nightly's driver starts with C1 only and the serial collector. Measured with
# `spark-submit jobs/ingest.py --with-features --validate`, local[2], quiet machine, 2026-12-07
# (bench/README.md "Short-job JVM options"): a 48k-line demo day 24.1-25.2 s -> 19.3-19.6 s wall,
# 40 -> 22 CPU s, peak RSS 0.93-1.07 -> 0.63 GB; a 1M-line day (143 MB) 38.5-42.3 s -> 39.3-40.0 s,
# where C1 alone already costs ~2 s of ingest: above this size of raw input the JVM's defaults stay.
SHORT_JOB_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
SHORT_JOB_MAX_RAW_BYTES = 64 * 1024 * 1024
GZIP_RATIO = 8          # a .gz raw file counts this many times its size (log text compresses ~8-10x)


def raw_input_bytes(raw_dir: Path) -> int:
    """The day's raw input size: the files' bytes, a compressed file counted at GZIP_RATIO x."""
    total = 0
    for path in Path(raw_dir).rglob("*"):
        if path.is_file():
            total += path.stat().st_size * (GZIP_RATIO if path.suffix == ".gz" else 1)
    return total


def driver_jvm_options(raw_bytes: int) -> str:
    """The driver JVM options for a night whose raw input is ``raw_bytes`` (empty: the defaults)."""
    return SHORT_JOB_JVM_OPTIONS if raw_bytes < SHORT_JOB_MAX_RAW_BYTES else ""


def night_submit_opts(source: str, day: str, environ: dict[str, str] | None = None) -> str:
    """``SPARK_SUBMIT_OPTS`` for the spark-submit of a night of ``source`` (the nightly DAG's
    ``ingest_and_validate`` renders it): what the environment has (e.g. the class archive of
    ``nightshift.jvm_archive``), then :func:`driver_jvm_options` for the day's raw input. JVM
    options given in Spark's own configuration (``spark.driver.extraJavaOptions``) come after these
    on the command line, so an operator's choice there wins."""
    from nightshift.lake import Lake
    from nightshift.settings import load_settings

    environ = os.environ if environ is None else environ
    raw_bytes = raw_input_bytes(Lake(load_settings().data_root).raw_dir(source, day))
    return " ".join(filter(None, [environ.get("SPARK_SUBMIT_OPTS", "").strip(), driver_jvm_options(raw_bytes)]))
