"""Shared fixtures: one local SparkSession for the whole run, temporary lakes, the HDFS source."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)      # Python UDF workers (spark_udf) use the venv
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
logging.getLogger("py4j").setLevel(logging.WARNING)
# the shared SparkSession and every spark-submit of the tests map the virtualenv's class archive
# (make venv builds it; nightshift.jvm_archive): a faster start-up of each JVM
from nightshift.jvm_archive import with_archive  # noqa: E402

with_archive(os.environ)

from nightshift.lake import Lake  # noqa: E402
from nightshift.settings import PROJECT_ROOT  # noqa: E402
from nightshift.sources import load_source  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """End-to-end modules first (a stable sort keeps the order inside each group): with two
    workers (``make test``: pytest-xdist, ``--dist loadfile``), the long modules start at once and
    the short ones fill in around them, instead of one long module running alone at the end."""
    items.sort(key=lambda item: (_LONGEST_FIRST.index(item.path.stem) if item.path.stem in _LONGEST_FIRST
                                 else len(_LONGEST_FIRST) if item.get_closest_marker("e2e") else len(_LONGEST_FIRST) + 1))


# the longest modules (measured with --durations), longest first
_LONGEST_FIRST = ["test_stack", "test_e2e_nightly", "test_cluster", "test_e2e_bgl"]


@pytest.fixture(scope="session")
def spark():
    from nightshift.spark import get_spark

    session = get_spark(
        "nightshift-tests", master="local[2]",
        conf={"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false", "spark.driver.bindAddress": "127.0.0.1"},
    )
    yield session
    session.stop()


# Test-only tuning for the short-lived spark-submit JVMs of the end-to-end runs (the jobs and the
# DAGs are unchanged): C1 JIT only and the serial GC cut a small job's run time on 2 cores; no
# driver web UI. Written to a spark-defaults.conf in the runs' SPARK_CONF_DIR.
# (the product's own choice for a short night's driver since issue 14: nightshift.spark)
from nightshift.spark import SHORT_JOB_JVM_OPTIONS as FAST_JVM_OPTS  # noqa: E402
TEST_SPARK_DEFAULTS = {
    "spark.driver.extraJavaOptions": FAST_JVM_OPTS,
    "spark.executor.extraJavaOptions": FAST_JVM_OPTS,
    "spark.ui.enabled": "false",
}


@pytest.fixture(scope="session")
def spark_conf_dir(tmp_path_factory) -> Path:
    conf_dir = tmp_path_factory.mktemp("spark-conf")
    (conf_dir / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in TEST_SPARK_DEFAULTS.items()))
    return conf_dir


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory) -> Path:
    """``airflow db migrate`` once per test session (SQLite); each end-to-end run copies the file."""
    from nightshift.localenv import local_environment, migrate_airflow_db

    home = tmp_path_factory.mktemp("airflow-template")
    env = local_environment(airflow_home=home / "airflow", data_root=home / "data")
    migrate_airflow_db(env, home / "migrate.log")
    return home / "airflow" / "airflow.db"


@pytest.fixture(scope="session")
def airflow_env(migrated_airflow_db, spark_conf_dir, request):
    """``airflow_env(airflow_home, data_root, spark_connect=False)``: the local environment
    (``nightshift.localenv``) with a migrated metadata database copied in and the test Spark
    defaults. With ``spark_connect``, the nightly's Spark job runs on this worker's Spark Connect
    server (:func:`spark_connect_server`), as in ``make demo``; else it is spark-submitted."""
    from nightshift.localenv import local_environment
    from nightshift_stack.local import SPARK_CONNECT_CONN_ENV

    def make(airflow_home: Path, data_root: Path, spark_connect: bool = False) -> dict[str, str]:
        env = local_environment(airflow_home=airflow_home, data_root=data_root)
        shutil.copyfile(migrated_airflow_db, Path(airflow_home) / "airflow.db")
        env["SPARK_CONF_DIR"] = str(spark_conf_dir)
        env.pop(SPARK_CONNECT_CONN_ENV, None)
        if spark_connect:
            env[SPARK_CONNECT_CONN_ENV] = request.getfixturevalue("spark_connect_server")["connection"]
        return env

    return make


@pytest.fixture(scope="session")
def spark_connect_server(tmp_path_factory, spark_conf_dir):
    """A Spark Connect server (local[2]) for this test worker's session, started as ``make demo``
    starts one (``nightshift_stack.local.start_spark_connect_server``): ``{"url", "connection",
    "port", "log"}``. The end-to-end modules that ask for it share it, as a demo's nights do."""
    from nightshift.localenv import local_environment
    from nightshift.spark import wait_for_connect_server
    from nightshift_stack.local import spark_connect_connection, start_spark_connect_server, stop_spark_connect_server
    from nightshift_stack.stack import free_port

    home = tmp_path_factory.mktemp("spark-connect")
    env = local_environment(airflow_home=home / "airflow", data_root=home / "data")
    env["SPARK_CONF_DIR"] = str(spark_conf_dir)
    port, log = free_port(), home / "spark-connect.log"
    proc = start_spark_connect_server(env, port, log)
    try:
        wait_for_connect_server("127.0.0.1", port, proc)
    except RuntimeError:
        stop_spark_connect_server(proc)
        raise RuntimeError(f"the tests' Spark Connect server did not start:\n{log.read_text()[-3000:]}") from None
    yield {"url": f"sc://127.0.0.1:{port}", "connection": spark_connect_connection(port), "port": port, "log": log}
    stop_spark_connect_server(proc)


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture(scope="session")
def hdfs_source():
    return load_source("hdfs", PROJECT_ROOT / "sources")


def write_raw(lake: Lake, day: str, name: str, content: bytes, source: str = "hdfs"):
    """Drop one raw file into the lake, as a log shipper would."""
    path = lake.raw_dir(source, day) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def prepare_validated_day(spark, data_root: Path, source_name: str, day: str) -> dict:
    """A night's Spark part (ingest, features, both validations: what the nightly DAG's
    ``ingest_and_validate`` runs) in the test session, for end-to-end tests whose subject is a
    later night: it saves a whole DAG run per day. Returns the reports."""
    import dataclasses

    from nightshift.night import run_spark_night
    from nightshift.settings import load_settings

    settings = dataclasses.replace(load_settings(), data_root=Path(data_root))
    source = load_source(source_name, settings.sources_dir)
    reports = run_spark_night(spark, settings, Lake(Path(data_root)), source, day)
    assert reports["validation_session_features"]["success"], reports
    return reports


@pytest.fixture
def webhook_sink():
    """A local HTTP server recording the JSON bodies POSTed to it (the alerts' webhook)."""
    with serve_webhook() as sink:
        yield sink


@contextlib.contextmanager
def serve_webhook():
    """``(url, received)``: a local HTTP server on 127.0.0.1 that records the JSON bodies POSTed
    to it, for as long as the block runs."""
    import http.server
    import threading

    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
