"""Airflow notifiers of Nightshift: a failed task of the scoring, retraining and rollback DAGs
raises a ``task_failed`` alert through ``nightshift.alerts`` (the ``nightshift_alerts`` webhook,
the ``nightshift_alerts_smtp`` mail server, the lake's ``alerts/alerts.jsonl``).

The nightly DAG does not use it: its ``report_night`` task runs whatever failed and raises the
``failed_night`` alert with the night's reason; a night that never reaches it is caught by the
night's deadline (``night_deadline``). Tasks that raise an alert of their own when they fail
(the retraining DAG's label sensor: ``labels_overdue``) set ``on_failure_callback=None``.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier


class TaskFailedNotifier(BaseNotifier):
    """``on_failure_callback``: one ``task_failed`` alert naming the DAG, the run, the task and the
    error, for the run's ``source`` and ``day`` parameters (``-`` when the run has none)."""

    template_fields = ()

    def notify(self, context: Any) -> None:
        from nightshift.alerts import send_alert

        alert = task_failed_alert(context)
        send_alert("task_failed", alert["source"], alert["day"], alert["message"], alert["details"])


def task_failed_alert(context: Any) -> dict[str, Any]:
    """What the alert says, from the failure callback's context."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    params = context.get("params") or {}
    dag_id = getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    map_index = getattr(ti, "map_index", -1)
    task = task_id if map_index is None or map_index < 0 else f"{task_id}[{map_index}]"
    run_id = getattr(dag_run, "run_id", None) or getattr(ti, "run_id", "?")
    error = context.get("exception")
    reason = f"{type(error).__name__}: {error}" if error is not None else "no error given"
    message = f"{dag_id}: task {task} failed in run {run_id}: {reason}"[:2000]
    return {"source": params.get("source") or "-", "day": params.get("day") or "-", "message": message,
            "details": {"dag_id": dag_id, "task_id": task_id, "map_index": map_index, "run_id": run_id,
                        "try_number": getattr(ti, "try_number", None)}}
