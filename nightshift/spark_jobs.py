"""The DAGs' Spark job task: ``spark-submit`` of a job script to the master of the Airflow
connection ``nightshift_spark``; or, when a Spark Connect server is kept running for the nights
(the Airflow connection ``nightshift_spark_connect``, type ``spark_connect``: ``make demo`` and
``make ui`` start one and define it), the same job script run with this task's Python as a client
of that server (pyspark's ``SPARK_REMOTE``). The job's code is the same either way
(``nightshift.spark.get_spark`` builds a Spark Connect session when ``SPARK_REMOTE`` is set); what
the second way saves is a driver JVM's start-up and its cold JIT on every night.

The client runs in its own process, as spark-submit's driver did: its memory (pandas frames, Great
Expectations) goes when the job ends, and a job that hangs is killed with it on a timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from nightshift.spark import SPARK_REMOTE_ENV

SPARK_CONNECT_CONN_ID = "nightshift_spark_connect"


def spark_connect_url(conn_id: str) -> str | None:
    """The ``sc://`` URL of the Airflow connection ``conn_id``, or None when it is not defined.
    A connection of another type is a configuration error (raised)."""
    from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook
    from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException

    hook = SparkConnectHook(conn_id)
    try:
        conn = hook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    if conn.conn_type != SparkConnectHook.conn_type:
        raise AirflowException(f"the Airflow connection {conn_id!r} has type {conn.conn_type!r}; "
                               f"a Spark Connect server needs {SparkConnectHook.conn_type!r}")
    return hook.get_connection_url()


class SparkJobOperator(SparkSubmitOperator):
    """``SparkSubmitOperator``, except that when the connection ``connect_conn_id`` is defined the
    application runs as a Spark Connect client of that server instead of being submitted."""

    def __init__(self, *, connect_conn_id: str | None = SPARK_CONNECT_CONN_ID, **kwargs):
        super().__init__(**kwargs)
        self.connect_conn_id = connect_conn_id
        self._client: subprocess.Popen | None = None

    def execute(self, context):
        url = spark_connect_url(self.connect_conn_id) if self.connect_conn_id else None
        if url is None:
            return super().execute(context)
        self.log.info("Spark Connect server %s (connection %s): running %s as its client",
                      url, self.connect_conn_id, os.path.basename(self.application))
        self.run_as_connect_client(url)
        return None

    def run_as_connect_client(self, url: str) -> None:
        from airflow.sdk.exceptions import AirflowException

        env = {**os.environ, **(self.env_vars or {}), SPARK_REMOTE_ENV: url}
        cmd = [sys.executable, self.application, *(self.application_args or [])]
        self._client = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True)
        try:
            for line in self._client.stdout:
                self.log.info("%s", line.rstrip("\n"))
            code = self._client.wait()
        finally:
            self._stop_client()
        if code != 0:
            raise AirflowException(f"{os.path.basename(self.application)} exited with code {code} "
                                   f"(a Spark Connect client of {url}; its output is above)")

    def on_kill(self) -> None:
        if self._client is not None:
            self._stop_client()
        else:
            super().on_kill()

    def _stop_client(self) -> None:
        """The client's process group, if it still runs (a timeout or a kill of the task): its
        session on the server ends with it."""
        proc = self._client
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
