"""The one list of Nightshift's services: what `make stack` starts and what docker-compose.yaml runs.

Each command is a template: ``{name}`` fields are filled with :data:`NATIVE` values on one machine
(``make stack``: 127.0.0.1, ports from the stack config) or with :data:`COMPOSE` values in
docker-compose.yaml (service host names, fixed container ports). ``env`` lists the settings a
service needs; tests/test_compose.py checks that compose sets them and runs the same commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field


# Settings of every process that runs nightshift code (Airflow tasks, Spark drivers and executors,
# the champion server).
NIGHTSHIFT_ENV = ("NIGHTSHIFT_DATA_ROOT", "NIGHTSHIFT_SOURCES_DIR", "NIGHTSHIFT_CONFIG_DIR",
                  "NIGHTSHIFT_EXPECTATIONS_DIR", "NIGHTSHIFT_LOCK_URL", "MLFLOW_TRACKING_URI",
                  "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_DISABLE_TELEMETRY",
                  "GX_ANALYTICS_ENABLED", "PYSPARK_PYTHON")
# How soon Airflow moves along a night's chain of ~15 tasks (issue 14), for every deployment of it
# here (make demo / make ui, make stack, compose); a value already in the environment wins:
# - the scheduler's idle sleep between looks at finished tasks (Airflow's default: 1 s);
# - a task supervisor's longest select() wait, which is also its heartbeat interval (default: 5 s).
#   When a task process closes its sockets before it can be reaped, the supervisor sleeps that
#   whole wait with the task done, and its worker slot stays taken: in a demo of 2026-12-07, 23 of
#   102 task runs had that tail (116 s in all: the scheduler log's "Workload finished" duration vs
#   the task's own). 1 s bounds it, for a heartbeat a second per running task.
TASK_LATENCY_SETTINGS = {
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
}
# Every Airflow component (one configuration, shared secrets).
AIRFLOW_ENV = NIGHTSHIFT_ENV + tuple(TASK_LATENCY_SETTINGS) + (
    "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__PARALLELISM", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__API__BASE_URL", "AIRFLOW__API__WORKERS",
    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT",
    "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "AIRFLOW_CONN_NIGHTSHIFT_SPARK", "NIGHTSHIFT_NIGHT_DEADLINE_HOURS",
)
MLFLOW_SERVER_ENV = ("MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_AUTH_DATABASE_URI", "MLFLOW_AUTH_ADMIN_USERNAME",
                     "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_DISABLE_TELEMETRY",
                     "MLFLOW_SERVER_ENABLE_JOB_EXECUTION")
# Secrets: generated into .env by `make secrets`; compose refuses to start without them.
SECRETS = ("AIRFLOW_ADMIN_USER", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW__API_AUTH__JWT_SECRET",
           "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW_DB_USER", "AIRFLOW_DB_PASSWORD",
           "MLFLOW_DB_USER", "MLFLOW_DB_PASSWORD", "MLFLOW_ADMIN_USER", "MLFLOW_ADMIN_PASSWORD",
           "MLFLOW_FLASK_SERVER_SECRET_KEY", "POSTGRES_PASSWORD")

CHAMPION_MODEL = "log_anomaly_hdfs"


@dataclass(frozen=True)
class Service:
    name: str                      # the docker-compose service name
    command: tuple[str, ...]       # template, see the module docstring
    env: tuple[str, ...] = ()      # settings it needs
    health: str = ""               # how `make stack` knows it is up (see nightshift_stack.stack.HEALTH)
    once: bool = False             # runs to completion before the long-running services start
    after: tuple[str, ...] = field(default=())  # healthy before this one starts


SERVICES: tuple[Service, ...] = (
    Service("airflow-init", ("airflow", "db", "migrate"), AIRFLOW_ENV, once=True),
    Service("mlflow",
            ("sh", "{deploy_dir}/mlflow-server.sh",
             "--backend-store-uri", "{mlflow_db_url}",
             "--artifacts-destination", "{lake}/mlflow/artifacts", "--serve-artifacts",
             "--host", "{bind}", "--port", "{mlflow_port}",
             "--allowed-hosts", "{mlflow_allowed_hosts}", "--workers", "1"),
            MLFLOW_SERVER_ENV, health="mlflow"),
    Service("spark-master",
            ("spark-class", "org.apache.spark.deploy.master.Master", "--host", "{spark_master_host}",
             "--port", "{spark_port}", "--webui-port", "{spark_ui_port}"),
            NIGHTSHIFT_ENV, health="spark-master"),
    Service("spark-worker",
            ("spark-class", "org.apache.spark.deploy.worker.Worker", "spark://{spark_master_host}:{spark_port}",
             "--cores", "{spark_worker_cores}", "--memory", "{spark_worker_memory}"),
            NIGHTSHIFT_ENV, health="spark-worker", after=("spark-master",)),
    Service("airflow-apiserver",
            ("python", "-m", "nightshift_stack.airflow_login", "airflow", "api-server", "--host", "{bind}",
             "--port", "{airflow_port}"),
            AIRFLOW_ENV + ("AIRFLOW_ADMIN_USER", "AIRFLOW_ADMIN_PASSWORD"), health="airflow-api",
            after=("airflow-init",)),
    Service("airflow-scheduler", ("airflow", "scheduler"), AIRFLOW_ENV, health="airflow-scheduler",
            after=("airflow-init", "mlflow", "spark-worker")),
    Service("airflow-dag-processor", ("airflow", "dag-processor"), AIRFLOW_ENV, health="airflow-dag-processor",
            after=("airflow-init",)),
    Service("airflow-triggerer", ("airflow", "triggerer"), AIRFLOW_ENV, health="airflow-triggerer",
            after=("airflow-init",)),
    Service("model-server",
            ("python", "-m", "nightshift_stack.serve_champion", "--model", "{champion_model}",
             "--host", "{bind}", "--port", "{model_port}", "--state-dir", "{serve_state_dir}"),
            NIGHTSHIFT_ENV, health="model-server", after=("mlflow",)),
)

# What the templates become in docker-compose.yaml (container ports, service host names).
COMPOSE = {
    "deploy_dir": "/opt/nightshift/deploy", "lake": "/opt/nightshift/data", "bind": "0.0.0.0",
    "mlflow_port": "5000", "airflow_port": "8080", "model_port": "5001",
    "mlflow_db_url": "postgresql+psycopg2://${MLFLOW_DB_USER:?run make secrets}:${MLFLOW_DB_PASSWORD:?run make secrets}@postgres:5432/mlflow",
    "mlflow_allowed_hosts": "${MLFLOW_ALLOWED_HOSTS:-mlflow,mlflow:5000,localhost,localhost:*,127.0.0.1,127.0.0.1:*}",
    "spark_master_host": "spark-master", "spark_port": "7077", "spark_ui_port": "8090",
    "spark_worker_cores": "${SPARK_WORKER_CORES:-2}", "spark_worker_memory": "${SPARK_WORKER_MEMORY:-2g}",
    "champion_model": CHAMPION_MODEL, "serve_state_dir": "/opt/nightshift/serve",
}


def by_name() -> dict[str, Service]:
    return {s.name: s for s in SERVICES}


def render(service: Service, values: dict[str, str]) -> list[str]:
    return [part.format(**values) for part in service.command]
