"""The nightly Spark jobs run unchanged on a Spark standalone cluster.

A master and one worker (1 core, 1 GB) are started from the pyspark package on 127.0.0.1. One
generated HDFS day is written into two lakes (byte-identical: the generator is deterministic), and
the nightly DAG runs through Airflow (``airflow dags test``, via ``run_nightly_dag``) once per lake:
once with the ``nightshift_spark`` connection pointing at the cluster and once with the default
local connection (``local[2]``), both at the same time (each with its own Airflow home). The
training tasks skip (a single labelled day is not enough), so the runs exercise ingest, both
validations and features.

The test then checks that the master came from the connection (the submit command in the task
log), that the cluster master ran the jobs' applications to completion, and that the two lakes
hold the same parsed, quarantine and features partitions, reports and template store.

``airflow tasks test`` is not used: it accepts ``-t`` task params, but each invocation creates and
then deletes its own DAG run, so the Spark tasks' ``--day`` (an XCom pull from ``resolve_day``)
would render as ``None``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from nightshift_datagen.hdfs import Scenario, generate
from nightshift.lake import Lake
from nightshift.localenv import run_nightly_dag
from nightshift_stack.stack import free_port
from tests.conftest import FAST_JVM_OPTS

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

SOURCE = "hdfs"
SCENARIO = Scenario(start_day="2026-05-04", days=1, seed=23, blocks_per_day=300, anomaly_rate=0.05)
DAY = SCENARIO.day(0)
SPARK_TASKS = ["ingest_and_validate"]
# run_spark_job names each application nightshift-<job>-<source>-<day>: one application per night
# (ingest, features and both validations)
EXPECTED_APPS = [f"nightshift-ingest-{SOURCE}-{DAY}"]
CLUSTER_START_TIMEOUT_S = 60
# a driver in local mode logs the first, one connecting to a standalone master the second
DRIVER_MODE = re.compile(r"Starting executor ID driver on host \S+|Connecting to master \S+")

# A second raw file next to the generated one, as a log shipper might drop it: a few lines that
# must be quarantined (one per reason) and one with non-UTF-8 bytes that is parsed and repaired.
# Without it the quarantine partitions of a clean generated day would be empty on both sides.
EXTRA_RAW_NAME = "hdfs-extra.log"
EXTRA_RAW = b"\n".join(
    [
        b"260504 101500 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_42 src: /10.251.1.1:40000 dest: /10.251.1.2:50010",
        b"",  # empty_line
        b"\tat org.apache.hadoop.dfs.DataNode$DataXceiver.run(DataNode.java:1234)",  # format_mismatch
        b"260504 101500 143 INFO dfs.DataNode$DataXceiver: control \x01 character blk_43",  # control_character
        b"260504 256199 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_44 at an impossible time",  # bad_timestamp
        b"260504 101501 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_45 caf\xe9 \xff\xfe",  # repaired
    ]
) + b"\n"


# --------------------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------------------


@dataclass
class SparkCluster:
    port: int
    webui_port: int
    master_log: Path
    worker_log: Path
    work_dir: Path

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    @property
    def connection(self) -> dict:
        """The ``nightshift_spark`` connection for this cluster."""
        return {"conn_type": "spark", "host": "spark://127.0.0.1", "port": self.port}

    def status(self) -> dict:
        """The master web UI's JSON (workers, active and completed applications)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.webui_port}/json/", timeout=5) as response:
            return json.load(response)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name} (last 4000 chars) ---\n{path.read_text(errors='replace')[-4000:]}"
            for path in (self.master_log, self.worker_log)
        )


def _stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group of ``proc`` (the daemon JVM and anything it started, e.g. the
    executors of a worker), then SIGKILL what is left after a grace period."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; its children may not be
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        break


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    """A Spark standalone master and one worker (1 core, 1 GB) on 127.0.0.1, from the pyspark package."""
    import pyspark

    base = tmp_path_factory.mktemp("spark_cluster")
    cluster = SparkCluster(
        port=free_port(), webui_port=free_port(), master_log=base / "master.log",
        worker_log=base / "worker.log", work_dir=base / "work",
    )
    venv_bin = str(Path(sys.executable).parent)
    env = dict(
        os.environ,
        SPARK_HOME=str(Path(pyspark.__file__).resolve().parent),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOCAL_DIRS=str(base / "local"),
        PYSPARK_PYTHON=sys.executable,
        PATH=venv_bin + os.pathsep + os.environ.get("PATH", ""),
        # the REST submission server would otherwise bind the fixed port 6066
        SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false",
        SPARK_DAEMON_MEMORY="512m",
        SPARK_DAEMON_JAVA_OPTS=FAST_JVM_OPTS,
    )
    spark_class = str(Path(venv_bin) / "spark-class")
    commands = {
        "master": [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                   "--port", str(cluster.port), "--webui-port", str(cluster.webui_port)],
        "worker": [spark_class, "org.apache.spark.deploy.worker.Worker", cluster.url, "--host", "127.0.0.1",
                   "--cores", "1", "--memory", "1g", "--webui-port", str(free_port()),
                   "--work-dir", str(cluster.work_dir)],
    }
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, command in commands.items():
            with open(base / f"{name}.log", "wb") as log:
                # own session: teardown signals the whole group (the worker's executors included)
                procs[name] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + CLUSTER_START_TIMEOUT_S
        alive, last_error = 0, None
        while time.monotonic() < deadline:
            dead = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
            if dead:
                pytest.fail(f"Spark daemon(s) exited during start-up {dead}\n{cluster.logs()}")
            try:
                alive = sum(w["state"] == "ALIVE" for w in cluster.status()["workers"])
            except (OSError, ValueError) as exc:  # not listening yet
                last_error = exc
            if alive == 1:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"no ALIVE worker after {CLUSTER_START_TIMEOUT_S}s (last error: {last_error!r})\n"
                        f"{cluster.logs()}")
        yield cluster
    finally:
        for name in ("worker", "master"):
            if name in procs:
                _stop_process_group(procs[name])


# --------------------------------------------------------------------------------------------------
# The two runs
# --------------------------------------------------------------------------------------------------


@dataclass
class NightlyRun:
    lake: Lake
    log: Path
    code: int
    seconds: float

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, airflow_env):
    """The nightly DAG for DAY in two identical lakes: ``cluster`` (the connection points at the
    standalone master) and ``local`` (the default ``local[2]`` connection), run concurrently.

    To save wall time the local run starts before the cluster is up; only the cluster run waits
    for it.
    """
    base = tmp_path_factory.mktemp("cluster_runs")
    envs, lakes = {}, {}
    for name in ("cluster", "local"):
        root = base / name / "data"
        generate(root, SCENARIO)
        lakes[name] = Lake(root)
        (lakes[name].raw_dir(SOURCE, DAY) / EXTRA_RAW_NAME).write_bytes(EXTRA_RAW)
        envs[name] = airflow_env(base / name / "airflow", root)

    def run(name: str) -> NightlyRun:
        started = time.monotonic()
        code = run_nightly_dag(DAY, envs[name], base / name / "dag.log", source=SOURCE)
        return NightlyRun(lakes[name], base / name / "dag.log", code, time.monotonic() - started)

    with ThreadPoolExecutor(max_workers=2) as pool:
        local = pool.submit(run, "local")
        # fixtures are not thread-safe: start the cluster from this thread, meanwhile
        spark_cluster = request.getfixturevalue("spark_cluster")
        envs["cluster"]["AIRFLOW_CONN_NIGHTSHIFT_SPARK"] = json.dumps(spark_cluster.connection)
        done = {"cluster": pool.submit(run, "cluster").result(), "local": local.result()}
    for name, result in done.items():
        print(f"{name} run: exit {result.code} in {result.seconds:.0f}s, log {result.log}")
    return done


def _raw_bytes(lake: Lake) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(lake.raw_dir(SOURCE, DAY).iterdir())}


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_both_runs_succeed_on_identical_input(runs):
    assert _raw_bytes(runs["cluster"].lake) == _raw_bytes(runs["local"].lake)
    for name, run in runs.items():
        assert run.code == 0, f"{name} run failed:\n{run.log_tail()}"


def test_spark_master_comes_from_the_airflow_connection(runs, spark_cluster):
    cluster_log = runs["cluster"].log.read_text(errors="replace")
    local_log = runs["local"].log.read_text(errors="replace")
    for task_id in SPARK_TASKS:
        expected = f"spark-submit --master {spark_cluster.url} --name nightshift-{task_id} "
        assert expected in cluster_log, f"{expected!r} not in the cluster run's log:\n{runs['cluster'].log_tail()}"
        assert f"spark-submit --master local[2] --name nightshift-{task_id} " in local_log
    assert "spark://" not in local_log


def test_cluster_ran_every_spark_job(runs, spark_cluster):
    """The drivers registered with the standalone master, got an executor on the worker and
    finished; a driver that ignored the submitted master (and ran in local mode) would not appear."""
    status = spark_cluster.status()
    apps = status["completedapps"]
    names = sorted(app["name"] for app in apps)
    driver_lines = DRIVER_MODE.findall(runs["cluster"].log.read_text(errors="replace"))
    assert names == EXPECTED_APPS, (
        f"completed applications on {spark_cluster.url}: {names}, expected {EXPECTED_APPS}; "
        f"what the cluster run's drivers said about their master: {sorted(set(driver_lines))}"
    )
    assert {app["state"] for app in apps} == {"FINISHED"}, apps
    assert status["activeapps"] == []
    # each application ran an executor on the worker (its stderr lives in the worker's work dir)
    app_dirs = {p.name for p in spark_cluster.work_dir.iterdir() if p.is_dir()}
    assert {app["id"] for app in apps} <= app_dirs, (app_dirs, spark_cluster.logs())


def _comparable(report: dict) -> dict:
    """A report without what names one lake or one write: data_docs and data_docs_pages (file://
    URLs inside the lake, with the run's time), data_fingerprint (Spark part-file names carry a
    per-write id) and the labels file's path."""
    out = {k: v for k, v in report.items() if k not in ("data_docs", "data_docs_pages", "data_fingerprint")}
    if isinstance(out.get("labels"), dict):
        out["labels"] = {k: v for k, v in out["labels"].items() if k != "path"}
    return out


def test_outputs_are_identical(runs, spark):
    """Parsed (with template ids), quarantine and features partitions are equal as DataFrames
    (every column, any row order); reports and the template store are equal."""
    from pyspark.testing import assertDataFrameEqual

    from nightshift.ingest import read_parsed_lines

    cluster, local = runs["cluster"].lake, runs["local"].lake
    for area in ("parsed", "quarantine", "features"):
        if area == "parsed":
            left, right = (read_parsed_lines(spark, lake.parsed_dir(SOURCE, DAY)) for lake in (cluster, local))
            assert left.filter("template_id is null").count() == 0
        else:
            left = spark.read.parquet(str(getattr(cluster, f"{area}_dir")(SOURCE, DAY)))
            right = spark.read.parquet(str(getattr(local, f"{area}_dir")(SOURCE, DAY)))
        assert left.count() > 0, area
        assertDataFrameEqual(left, right, checkRowOrder=False)

    ingest = cluster.read_report(SOURCE, DAY, "ingest")
    assert _comparable(ingest) == _comparable(local.read_report(SOURCE, DAY, "ingest"))
    assert ingest["files"] == ["hdfs-extra.log", "hdfs.log"]
    assert ingest["quarantine_reasons"] == {
        "empty_line": 1, "format_mismatch": 1, "control_character": 1, "bad_timestamp": 1,
    }
    assert ingest["encoding_repaired_lines"] == 1
    assert ingest["input_lines"] == ingest["parsed_lines"] + ingest["quarantined_lines"]
    assert _comparable(cluster.read_report(SOURCE, DAY, "features")) == \
        _comparable(local.read_report(SOURCE, DAY, "features"))
    for suite in ("parsed_lines", "session_features"):
        reports = [lake.read_report(SOURCE, DAY, f"validation_{suite}") for lake in (cluster, local)]
        assert reports[0]["success"] is True
        assert _comparable(reports[0]) == _comparable(reports[1])

    stores = [json.loads(lake.template_store_file(SOURCE).read_text()) for lake in (cluster, local)]
    assert stores[0] == stores[1]
    assert stores[0]["version"] == 1
