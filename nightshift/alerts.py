"""Alerts: a JSON POST to the webhook named by the Airflow connection ``nightshift_alerts``.

Sent for input drift, prediction drift (suspect predictions), a failed night, a night not done by
its deadline (the nightly DAG's ``DeadlineAlert``), the champion watch, and labels that did not
arrive within the retraining DAG's maximum wait (``labels_overdue``); never for a quiet normal night. Configure it like any Airflow connection, e.g.
``AIRFLOW_CONN_NIGHTSHIFT_ALERTS='{"conn_type": "http", "host": "https://hooks.example.org/nightshift"}'``
(``host`` a whole URL), or as ``http://host:port/path``. Without the connection, an alert is
logged at WARNING and said to be undelivered; a webhook that fails is logged at ERROR and does
not fail the task that raised the alert (the night's own outcome stands).

Every alert is also appended to the lake (``alerts/alerts.jsonl``), so the history can be read
without the webhook's receiver.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import urllib.request
from pathlib import Path
from typing import Any

CONN_ID = "nightshift_alerts"
KINDS = ("input_drift", "prediction_drift", "failed_night", "champion_watch", "night_deadline", "labels_overdue")
log = logging.getLogger("nightshift.alerts")


def webhook_url(conn_id: str = CONN_ID) -> str | None:
    """The webhook's URL from the Airflow connection, or None when it is not defined."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:          # not defined (or no Airflow here: the CLI, a unit test)
        return None
    host = conn.host or ""
    if host.startswith(("http://", "https://")):
        return host
    scheme = "https" if (conn.conn_type or "").lower() == "https" else "http"
    port = f":{conn.port}" if conn.port else ""
    path = f"/{conn.schema.lstrip('/')}" if conn.schema else ""
    return f"{scheme}://{host}{port}{path}" if host else None


def send_alert(kind: str, source: str, day: str, message: str, details: dict[str, Any] | None = None,
               url: str | None = None, data_root: Path | None = None) -> dict[str, Any]:
    """Record and deliver one alert; returns it with ``delivered`` (True, False, or None: no webhook)."""
    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}; known: {KINDS}")
    alert = {"kind": kind, "source": source, "day": day, "message": message, "details": details or {},
             "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "airflow_run_id": os.environ.get("AIRFLOW_CTX_DAG_RUN_ID")}
    url = url or webhook_url()
    if url is None:
        alert["delivered"] = None
        log.warning("ALERT (%s, no '%s' connection: not delivered) %s %s: %s", kind, CONN_ID, source, day, message)
    else:
        try:
            request = urllib.request.Request(url, data=json.dumps(alert).encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                alert["delivered"] = 200 <= response.status < 300
        except OSError as exc:
            alert["delivered"] = False
            log.error("ALERT (%s) %s %s could not be delivered to the webhook: %s", kind, source, day, exc)
        if alert["delivered"]:
            log.warning("ALERT (%s, delivered) %s %s: %s", kind, source, day, message)
    _append(data_root, alert)
    return alert


def _append(data_root: Path | None, alert: dict[str, Any]) -> None:
    """One line per alert, as the promotion log appends (locked, torn lines never glued onto)."""
    from nightshift.promotion_log import append_json_line
    from nightshift.settings import load_settings

    append_json_line(Path(data_root or load_settings().data_root) / "alerts" / "alerts.jsonl", alert)


def read_alerts(data_root: Path) -> list[dict[str, Any]]:
    path = Path(data_root) / "alerts" / "alerts.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue              # a torn last line from a killed writer
    return out


async def night_deadline_missed(context: dict[str, Any] | None = None, **_: Any) -> None:
    """The nightly DAG's deadline callback (run by the triggerer when a night is not done by its
    deadline): one ``night_deadline`` alert naming the run and the day."""
    import asyncio

    run = (context or {}).get("dag_run") or {}   # Airflow's DAGRunResponse, as JSON
    run_id = run.get("dag_run_id")
    conf = run.get("conf") or {}
    day = conf.get("day") or str(run.get("logical_date") or "")[:10] or "unknown"
    deadline = ((context or {}).get("deadline") or {}).get("deadline_time")
    await asyncio.to_thread(send_alert, "night_deadline", conf.get("source", "hdfs"), day,
                            f"the nightly run {run_id} is not done by its deadline {deadline}",
                            {"run_id": run_id, "state": run.get("state")})
