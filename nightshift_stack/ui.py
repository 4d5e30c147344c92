"""``make ui``: the Airflow UI and the MLflow UI on the local data, until Ctrl-C.

Airflow runs as ``airflow standalone`` (scheduler, dag-processor, triggerer, api-server) on the
SQLite metadata DB in ``.airflow/``, listening on 127.0.0.1 only, with a login: user ``admin``, the
password Airflow generates once into ``.airflow/simple_auth_manager_passwords.json.generated``
(printed below). Approvals and rollbacks are recorded as that user. MLflow serves the SQLite
tracking store and artifacts in the lake, on 127.0.0.1 (no login: local data only; the deployed
stack, ``make stack``, has MLflow's authentication). A Spark Connect server runs the nights' Spark
job, as in ``make demo`` (``nightshift_stack.local``; ``NIGHTSHIFT_SPARK_CONNECT=0``: spark-submit).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from nightshift.localenv import local_environment
from nightshift.settings import load_settings
from nightshift_stack.local import (SPARK_CONNECT_CONN_ENV, EmbeddedAirflowLock, LocalAirflowError, interrupt_safe,
                                   spark_connect_connection, start_spark_connect_server, stop_spark_connect_server,
                                   wants_spark_connect)
from nightshift_stack.stack import free_port

AIRFLOW_PORT = 8080
MLFLOW_PORT = 5000


@interrupt_safe
def main() -> int:
    settings = load_settings()
    env = local_environment()
    env.pop("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", None)
    env["AIRFLOW__API__HOST"] = "127.0.0.1"
    env["AIRFLOW__API__PORT"] = str(AIRFLOW_PORT)
    env["AIRFLOW__API__BASE_URL"] = f"http://127.0.0.1:{AIRFLOW_PORT}"
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    mlflow = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", settings.mlflow_tracking_uri,
         "--default-artifact-root", settings.mlflow_artifacts_dir.as_uri(),
         "--host", "127.0.0.1", "--port", str(MLFLOW_PORT)],
        env=env,
    )
    connect = None
    try:
        if wants_spark_connect(env):
            from nightshift.spark import wait_for_connect_server

            port = free_port()
            env[SPARK_CONNECT_CONN_ENV] = spark_connect_connection(port)
            log = Path(env["AIRFLOW_HOME"]) / "logs" / "spark-connect.log"
            connect = start_spark_connect_server(env, port, log)
            wait_for_connect_server("127.0.0.1", port, connect)
            print(f"Spark Connect server for the nights' Spark job: sc://127.0.0.1:{port} (log {log})")
        return _serve(env, passwords)
    except RuntimeError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        mlflow.terminate()
        mlflow.wait(timeout=30)
        if connect is not None:
            stop_spark_connect_server(connect)


def _serve(env, passwords) -> int:
    print(f"MLflow UI:  http://127.0.0.1:{MLFLOW_PORT}")
    print(f"Airflow UI: http://127.0.0.1:{AIRFLOW_PORT}  (user admin; password in {passwords}, "
          "created and printed by Airflow on its first start)")
    with EmbeddedAirflowLock(Path(env["AIRFLOW_HOME"]), "make ui (airflow standalone)"):
        standalone = subprocess.Popen(["airflow", "standalone"], env=env)
        try:
            return standalone.wait()
        finally:
            # Ctrl-C reaches it too; a SIGTERM (interrupt_safe) only this process: let it stop its
            # components as on Ctrl-C, then the finally of main() stops MLflow and the Spark server
            if standalone.poll() is None:
                standalone.send_signal(signal.SIGINT)
                try:
                    standalone.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    standalone.kill()
                    standalone.wait()


if __name__ == "__main__":
    sys.exit(main())
