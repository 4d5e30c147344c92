"""The embedded Airflow of `make demo` / `make ui`: one at a time per Airflow home."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nightshift.settings import PROJECT_ROOT
from nightshift_stack.local import EmbeddedAirflowLock, LocalAirflowError

_HOLDER = """
import sys, time
from pathlib import Path
from nightshift_stack.local import EmbeddedAirflowLock
with EmbeddedAirflowLock(Path(sys.argv[1]), "make ui (airflow standalone)"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_embedded_airflow_on_the_same_home_is_refused_naming_the_first(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)], cwd=PROJECT_ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LocalAirflowError, match=rf"Airflow is already running on {tmp_path}: "
                                                   rf"make ui \(airflow standalone\) \(pid {holder.pid}\)\. Stop it first"):
            with EmbeddedAirflowLock(tmp_path, "make demo"):
                pass
    finally:
        holder.kill()
        holder.wait()
    # the holder died: the kernel released its lock, the next one gets it
    with EmbeddedAirflowLock(tmp_path, "make demo"):
        assert "make demo" in (tmp_path / "embedded-airflow.lock").read_text()


def test_the_embedded_scheduler_and_task_supervisors_wait_less_unless_told_otherwise(tmp_path):
    """The two latencies of a night's task chain (issue 14): the scheduler's idle sleep between
    looks at finished tasks, and a task supervisor's select() wait (the tail some task runs keep
    after the task ended). An operator's own value in the environment wins."""
    from nightshift.localenv import local_environment
    from nightshift_stack.local import LocalAirflow

    env = local_environment(airflow_home=tmp_path / "airflow", data_root=tmp_path / "data", base={})
    airflow = LocalAirflow(env, tmp_path / "logs", port=1)
    assert airflow.env["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"] == "0.2"
    assert airflow.env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] == "1"
    env.update({"AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "2", "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "5"})
    airflow = LocalAirflow(env, tmp_path / "logs", port=1)
    assert airflow.env["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"] == "2"
    assert airflow.env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] == "5"


def test_the_embedded_airflow_defines_its_spark_connect_server_unless_told_not_to(tmp_path):
    """make demo / make ui: the nights' Spark job goes to a Spark Connect server started with the
    components (the connection nightshift_spark_connect, on a free port); NIGHTSHIFT_SPARK_CONNECT=0
    leaves it out, and the nights spark-submit."""
    import json

    from nightshift.localenv import local_environment
    from nightshift.spark import CONNECT_SERVER_CLASS
    from nightshift_stack.local import SPARK_CONNECT_CONN_ENV, LocalAirflow
    from nightshift.spark import connect_server_command

    env = local_environment(airflow_home=tmp_path / "airflow", data_root=tmp_path / "data", base={})
    assert SPARK_CONNECT_CONN_ENV not in env          # the plain local environment spark-submits
    airflow = LocalAirflow(env, tmp_path / "logs", port=1)
    conn = json.loads(airflow.env[SPARK_CONNECT_CONN_ENV])
    assert conn == {"conn_type": "spark_connect", "host": "127.0.0.1", "port": airflow.spark_connect_port}
    cmd = connect_server_command(airflow.spark_connect_port)
    assert CONNECT_SERVER_CLASS in cmd and f"spark.connect.grpc.binding.port={airflow.spark_connect_port}" in cmd
    assert "spark.connect.grpc.binding.address=127.0.0.1" in cmd
    env["NIGHTSHIFT_SPARK_CONNECT"] = "0"
    airflow = LocalAirflow(env, tmp_path / "logs", port=1)
    assert airflow.spark_connect_port is None and SPARK_CONNECT_CONN_ENV not in airflow.env
