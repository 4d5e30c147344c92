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

    remote = os.environ.get(SPARK_REMOTE_ENV)
    if remote and not master:
        return _connect_session(app_name, remote, conf)
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


# A Spark Connect server kept running (``make demo`` starts one for its nights: a night's job then
# starts no JVM of its own; nightshift.spark_jobs runs the job script as a client of it). pyspark's
# own convention: SPARK_REMOTE=sc://host:port makes the job's session a Spark Connect session.
SPARK_REMOTE_ENV = "SPARK_REMOTE"
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def _connect_session(app_name: str, remote: str, conf: dict[str, str] | None) -> "SparkSession":
    """A Spark Connect session on the server at ``remote``, with the session-level (``spark.sql.*``)
    settings of DEFAULT_CONF and ``conf``; the server's own settings (memory, master, UI) are
    fixed when it starts (:func:`connect_server_command`)."""
    import socket
    from urllib.parse import urlparse

    from pyspark.sql import SparkSession

    # the client itself would retry an unreachable server with back-off for minutes: ask first
    address = urlparse(remote.split(";", 1)[0])
    try:
        socket.create_connection((address.hostname or "localhost", address.port or 15002), timeout=10).close()
    except OSError as exc:
        raise SparkConnectUnavailable(
            f"no Spark Connect server answers at {remote} ({exc}); make demo / make ui start one, or unset "
            f"{SPARK_REMOTE_ENV} (Airflow: remove the connection nightshift_spark_connect) to spark-submit") from exc
    builder = SparkSession.builder.remote(remote).appName(app_name)
    for key, value in {**DEFAULT_CONF, **(conf or {})}.items():
        if key.startswith("spark.sql."):
            builder = builder.config(key, value)
    return builder.getOrCreate()


class SparkConnectUnavailable(RuntimeError):
    pass


def is_connect(spark) -> bool:
    """Whether ``spark`` is a Spark Connect session (no JVM in this process: no ``sparkContext``)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def connect_server_command(port: int, master: str = "local[2]", driver_memory: str = "1g",
                           host: str = "127.0.0.1", java_options: str = SHORT_JOB_JVM_OPTIONS) -> list[str]:
    """``spark-submit`` of a Spark Connect server listening on ``host:port`` (the JVM of pyspark's
    distribution, whose jars include the server). Its session defaults are DEFAULT_CONF's; it logs
    warnings only (at INFO it writes a line per Spark task). ``java_options``: the embedded server
    serves demo-sized days on a machine whose cores the night's Python tasks share, so by default it
    runs as a short job's driver does (C1 only, serial GC: no compiler or collector threads
    competing with training; bench/README.md "A night on a Spark Connect server")."""
    conf = {"spark.connect.grpc.binding.address": host, "spark.connect.grpc.binding.port": str(port),
            "spark.ui.enabled": "false", "spark.log.level": "WARN", **DEFAULT_CONF}
    argv = ["spark-submit", "--class", CONNECT_SERVER_CLASS, "--master", master, "--driver-memory", driver_memory,
            "--name", "nightshift-spark-connect"]
    if java_options:
        argv += ["--driver-java-options", java_options]
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    return argv + ["spark-internal"]


def wait_for_connect_server(host: str, port: int, proc=None, timeout_s: float = 180) -> None:
    """Until the server at ``host:port`` accepts connections; raises if ``proc`` (its process)
    exits first or the timeout passes."""
    import socket
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise SparkConnectUnavailable(f"the Spark Connect server exited during start-up (code {proc.returncode})")
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SparkConnectUnavailable(f"no Spark Connect server on {host}:{port} after {timeout_s:.0f} s") from None
            time.sleep(0.5)
