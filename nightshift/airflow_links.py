"""Where an Airflow task that is running us lives, as tags and URLs for MLflow and the records.

Airflow exports the task's identity as ``AIRFLOW_CTX_*`` environment variables before it runs the
task (in the task's process); the UI's public address is Airflow's own ``[api] base_url``
(``AIRFLOW__API__BASE_URL``), defaulting to the ``make ui`` address.
"""

from __future__ import annotations

import os
from urllib.parse import quote

DEFAULT_BASE_URL = "http://127.0.0.1:8080"


def airflow_base_url(env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (env.get("AIRFLOW__API__BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def run_url(dag_id: str, run_id: str, task_id: str | None = None, env: dict[str, str] | None = None) -> str:
    """The Airflow UI page of a DAG run (or of one of its tasks)."""
    url = f"{airflow_base_url(env)}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    return url + (f"/tasks/{quote(task_id, safe='')}" if task_id else "")


def airflow_tags(env: dict[str, str] | None = None) -> dict[str, str]:
    """``airflow.dag_id``, ``airflow.run_id``, ``airflow.task_id``, ``airflow.url`` of the task that
    is running this process; empty outside Airflow (a test, the CLI)."""
    env = os.environ if env is None else env
    dag_id, run_id, task_id = (env.get(f"AIRFLOW_CTX_{k}") for k in ("DAG_ID", "DAG_RUN_ID", "TASK_ID"))
    if not dag_id or not run_id:
        return {}
    tags = {"airflow.dag_id": dag_id, "airflow.run_id": run_id, "airflow.url": run_url(dag_id, run_id, env=env)}
    if task_id:
        tags["airflow.task_id"] = task_id
    return tags
