"""The environment for running the pipeline on one machine (demo, UI, end-to-end tests).

SQLite-backed Airflow under ``<project>/.airflow``, the lake under ``<project>/data``, a local
Spark master from the ``nightshift_spark`` connection, MLflow on SQLite inside the lake.
``python -m nightshift.localenv`` prints the variables as shell ``export`` lines.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from nightshift.settings import PROJECT_ROOT

LOCAL_SPARK_CONNECTION = {"conn_type": "spark", "host": "local[2]"}


def local_environment(
    airflow_home: Path | None = None,
    data_root: Path | None = None,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """Environment variables for Airflow, Spark, MLflow and Nightshift on this machine."""
    env = dict(os.environ if base is None else base)
    airflow_home = Path(airflow_home or env.get("AIRFLOW_HOME") or PROJECT_ROOT / ".airflow").resolve()
    data_root = Path(data_root or env.get("NIGHTSHIFT_DATA_ROOT") or PROJECT_ROOT / "data").resolve()
    airflow_home.mkdir(parents=True, exist_ok=True)
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW_CONN_NIGHTSHIFT_SPARK": json.dumps(LOCAL_SPARK_CONNECTION),
            "NIGHTSHIFT_DATA_ROOT": str(data_root),
            "MLFLOW_TRACKING_URI": f"sqlite:///{data_root / 'mlflow' / 'mlflow.db'}",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "GX_ANALYTICS_ENABLED": "false",
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PATH": venv_bin + os.pathsep + env.get("PATH", ""),
        }
    )
    return env


def main() -> int:
    env = local_environment()
    for key in sorted(set(env) - set(os.environ) | {k for k in env if env[k] != os.environ.get(k)}):
        print(f"export {key}={shlex.quote(env[key])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


NIGHTLY_DAG_ID = "nightshift_nightly"


def migrate_airflow_db(env: dict[str, str], log_file: Path) -> None:
    """``airflow db migrate`` for the local (SQLite) metadata database; raises on failure."""
    import subprocess

    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as out:
        subprocess.run(["airflow", "db", "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT, check=True)


def run_dag(dag_id: str, logical_date: str, conf: dict, env: dict[str, str], log_file: Path) -> int:
    """Run one DAG run through Airflow in-process (``airflow dags test``), logging to ``log_file``.
    Returns the command's exit code (non-zero when the run failed)."""
    import subprocess

    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w") as out:
        proc = subprocess.run(["airflow", "dags", "test", dag_id, logical_date, "-c", json.dumps(conf)],
                              env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc.returncode


def run_nightly_dag(day: str, env: dict[str, str], log_file: Path, source: str = "hdfs", dry_run: bool = False) -> int:
    """Run the nightly DAG for one day; the logical date is the midnight after ``day`` (as for a
    scheduled run) and the day is also passed as the ``day`` parameter."""
    import datetime as dt

    logical = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
    return run_dag(NIGHTLY_DAG_ID, logical, {"day": day, "source": source, "dry_run": dry_run}, env, log_file)
