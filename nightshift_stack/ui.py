"""``make ui``: the Airflow UI and the MLflow UI on the local data, until Ctrl-C.

Airflow runs as ``airflow standalone`` (scheduler, dag-processor, triggerer, api-server) on the
SQLite metadata DB in ``.airflow/``, listening on 127.0.0.1 only, with a login: user ``admin``, the
password Airflow generates once into ``.airflow/simple_auth_manager_passwords.json.generated``
(printed below). Approvals and rollbacks are recorded as that user. MLflow serves the SQLite
tracking store and artifacts in the lake, on 127.0.0.1 (no login: local data only; the deployed
stack, ``make stack``, has MLflow's authentication).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nightshift.localenv import local_environment
from nightshift.settings import load_settings
from nightshift_stack.local import EmbeddedAirflowLock, LocalAirflowError

AIRFLOW_PORT = 8080
MLFLOW_PORT = 5000


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
    print(f"MLflow UI:  http://127.0.0.1:{MLFLOW_PORT}")
    print(f"Airflow UI: http://127.0.0.1:{AIRFLOW_PORT}  (user admin; password in {passwords}, "
          "created and printed by Airflow on its first start)")
    try:
        with EmbeddedAirflowLock(Path(env["AIRFLOW_HOME"]), "make ui (airflow standalone)"):
            return subprocess.call(["airflow", "standalone"], env=env)
    except LocalAirflowError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        mlflow.terminate()
        mlflow.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
