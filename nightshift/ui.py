"""``make ui``: the Airflow UI and the MLflow UI on the local data, until Ctrl-C.

Airflow runs as ``airflow standalone`` (scheduler, dag-processor, triggerer, api-server) on the
SQLite metadata DB in ``.airflow/``; every local user is an admin (local use only). MLflow serves
the SQLite tracking store and artifacts in the lake.
"""

from __future__ import annotations

import subprocess
import sys

from nightshift.localenv import local_environment
from nightshift.settings import load_settings

AIRFLOW_PORT = 8080
MLFLOW_PORT = 5000


def main() -> int:
    settings = load_settings()
    env = local_environment()
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
    settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    mlflow = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", settings.mlflow_tracking_uri,
         "--default-artifact-root", settings.mlflow_artifacts_dir.as_uri(),
         "--host", "127.0.0.1", "--port", str(MLFLOW_PORT)],
        env=env,
    )
    print(f"MLflow UI:  http://localhost:{MLFLOW_PORT}")
    print(f"Airflow UI: http://localhost:{AIRFLOW_PORT}  (local mode: no login)")
    try:
        return subprocess.call(["airflow", "standalone"], env=env)
    except KeyboardInterrupt:
        return 0
    finally:
        mlflow.terminate()
        mlflow.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
