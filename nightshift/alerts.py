"""Alerts: a JSON POST to the webhook named by the Airflow connection ``nightshift_alerts``.

Sent for input drift, prediction drift (suspect predictions), a failed night, a night not done by
its deadline (the nightly DAG's ``DeadlineAlert``), the champion watch, and labels that did not
arrive within the retraining DAG's maximum wait (``labels_overdue``), and a failed task of the scoring,
retraining or rollback DAG (``task_failed``, ``nightshift.notifiers``); never for a quiet normal night. Configure it like any Airflow connection, e.g.
``AIRFLOW_CONN_NIGHTSHIFT_ALERTS='{"conn_type": "http", "host": "https://hooks.example.org/nightshift"}'``
(``host`` a whole URL), or as ``http://host:port/path``. Without the connection, an alert is
logged at WARNING and said to be undelivered; a webhook that fails is logged at ERROR and does
not fail the task that raised the alert (the night's own outcome stands).

E-mail as well, when the Airflow connection ``nightshift_alerts_smtp`` exists (conn_type ``smtp``:
host, port, login, password; extra ``to`` (comma-separated recipients, required), ``from_email``,
and, as the smtp provider's connection form names them, ``disable_ssl`` (default false: SMTP over
TLS, port 465), ``disable_tls`` (default false: STARTTLS on a plain connection), ``timeout``
(seconds, default 10)), e.g.
``AIRFLOW_CONN_NIGHTSHIFT_ALERTS_SMTP='{"conn_type": "smtp", "host": "smtp.example.org", "port": 587,
"login": "nightshift", "password": "...", "extra": {"to": "oncall@example.org", "from_email":
"nightshift@example.org", "disable_ssl": true}}'``. Like the webhook, a mail server that fails is
logged at ERROR and does not fail the task.

Every alert is also appended to the lake (``alerts/alerts.jsonl``), so the history can be read
without the webhook's receiver.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import smtplib
import ssl
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Any

CONN_ID = "nightshift_alerts"
SMTP_CONN_ID = "nightshift_alerts_smtp"
KINDS = ("input_drift", "prediction_drift", "failed_night", "champion_watch", "night_deadline", "labels_overdue",
         "task_failed")
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


def smtp_connection(conn_id: str = SMTP_CONN_ID):
    """The mail server's Airflow connection, or None when it is not defined."""
    try:
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(conn_id)
    except Exception:          # not defined (or no Airflow here)
        return None


def send_email(alert: dict[str, Any], conn) -> None:
    """Mail one alert through the server of ``conn`` (an Airflow connection, see the module
    docstring); raises ``OSError`` (``smtplib.SMTPException`` is one) or ``ValueError``.

    The standard library's smtplib, not the smtp provider's ``SmtpHook`` (installed with Airflow
    3.3): the hook retries 5 times with a 30 s timeout per attempt by default, which an alert
    raised inside a nightly task must not sit through, and it cannot run where no Airflow task
    runs (the CLI). Its connection fields and extra names are kept, so its connection form fits."""
    extra = conn.extra_dejson or {}
    recipients = [a.strip() for a in str(extra.get("to") or "").split(",") if a.strip()]
    if not recipients:
        raise ValueError(f"connection {SMTP_CONN_ID!r} has no recipients (extra 'to')")
    if not conn.host:
        raise ValueError(f"connection {SMTP_CONN_ID!r} has no host")
    mail = EmailMessage()
    mail["Subject"] = f"[nightshift] {alert['kind']}: {alert['source']} {alert['day']}"
    mail["From"] = extra.get("from_email") or conn.login or "nightshift@localhost"
    mail["To"] = ", ".join(recipients)
    mail.set_content(f"{alert['message']}\n\n{json.dumps(alert, indent=2, default=str)}\n")
    timeout = float(extra.get("timeout") or 10)
    context = ssl.create_default_context()
    if not _flag(extra.get("disable_ssl")):
        client: smtplib.SMTP = smtplib.SMTP_SSL(conn.host, conn.port or 465, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(conn.host, conn.port or 587, timeout=timeout)
    with client:
        if _flag(extra.get("disable_ssl")) and not _flag(extra.get("disable_tls")):
            client.starttls(context=context)
        if conn.login:
            client.login(conn.login, conn.password or "")
        client.send_message(mail)


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


def send_alert(kind: str, source: str, day: str, message: str, details: dict[str, Any] | None = None,
               url: str | None = None, data_root: Path | None = None) -> dict[str, Any]:
    """Record and deliver one alert; returns it with ``delivered`` (True, False, or None: no webhook)
    and ``emailed`` (the same for the ``nightshift_alerts_smtp`` mail server)."""
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
    conn, emailed = smtp_connection(), None
    if conn is not None:
        try:
            send_email(alert, conn)
            emailed = True
            log.warning("ALERT (%s, e-mailed) %s %s: %s", kind, source, day, message)
        except (OSError, ValueError) as exc:
            emailed = False
            log.error("ALERT (%s) %s %s could not be e-mailed through '%s': %s", kind, source, day, SMTP_CONN_ID, exc)
    alert["emailed"] = emailed
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
