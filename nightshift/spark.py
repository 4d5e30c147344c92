"""The one SparkSession factory used by every job and by the tests."""

from __future__ import annotations

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
