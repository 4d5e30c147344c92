"""Extra links on the nightly DAG's tasks: the night's decision record, MLflow run and Data Docs.

Each link points at the Nightshift view (``nightshift.web``, mounted at ``/nightshift``), which
finds the run's night in the lake's reports (they record the run id) and redirects to the page.
So a link is a fixed URL per run (Airflow 3 computes it when the task ends and keeps it): it never
fails to render, and it works as soon as the night has the page, also for a task that failed.
"""

from __future__ import annotations

from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

from nightshift.airflow_links import airflow_base_url


def night_url(dag_id: str, run_id: str, what: str) -> str:
    return f"{airflow_base_url()}/nightshift/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}/{what}"


class DecisionRecordLink(BaseOperatorLink):
    name = "Decision record"

    def get_link(self, operator, *, ti_key) -> str:
        return night_url(ti_key.dag_id, ti_key.run_id, "record")


class MlflowRunLink(BaseOperatorLink):
    name = "MLflow run"

    def get_link(self, operator, *, ti_key) -> str:
        return night_url(ti_key.dag_id, ti_key.run_id, "mlflow")


class DataDocsLink(BaseOperatorLink):
    name = "Data Docs"

    def get_link(self, operator, *, ti_key) -> str:
        return night_url(ti_key.dag_id, ti_key.run_id, "datadocs")


NIGHT_LINKS = (DecisionRecordLink(), MlflowRunLink(), DataDocsLink())
