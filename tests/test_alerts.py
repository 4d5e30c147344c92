"""Alerts (nightshift.alerts): delivered to a webhook, recorded in the lake, never fatal."""

from __future__ import annotations

import json

import pytest

from nightshift.alerts import read_alerts, send_alert, webhook_url
from tests.browser import free_port


def test_an_alert_reaches_the_webhook_and_the_lake(tmp_path, webhook_sink):
    url, received = webhook_sink
    alert = send_alert("input_drift", "hdfs", "2026-11-04", "drift: flagged", {"js": 0.4}, url=url, data_root=tmp_path)
    assert alert["delivered"] is True
    assert [(a["kind"], a["message"], a["details"]) for a in received] == [("input_drift", "drift: flagged", {"js": 0.4})]
    assert read_alerts(tmp_path) == [alert]


@pytest.fixture
def alert_log(monkeypatch):
    """The WARNING-and-above records of ``nightshift.alerts``, caught by a handler of our own on
    that logger: Airflow's logging setup (imported by other tests of the same worker) decides where
    records go otherwise."""
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("nightshift.alerts")
    monkeypatch.setattr(logger, "disabled", False)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_without_a_webhook_or_with_a_dead_one_the_alert_is_logged_and_kept(tmp_path, alert_log):
    assert webhook_url() is None        # no nightshift_alerts connection here
    quiet = send_alert("failed_night", "hdfs", "2026-11-06", "validation failed", data_root=tmp_path)
    dead = send_alert("failed_night", "hdfs", "2026-11-06", "validation failed",
                      url=f"http://127.0.0.1:{free_port()}/hook", data_root=tmp_path)
    logged = [(r.levelname, r.getMessage()) for r in alert_log]
    assert quiet["delivered"] is None and any(lvl == "WARNING" and "not delivered" in m for lvl, m in logged), logged
    assert dead["delivered"] is False and any(lvl == "ERROR" and "could not be delivered" in m for lvl, m in logged), logged
    assert [a["delivered"] for a in read_alerts(tmp_path)] == [None, False]
    with pytest.raises(ValueError, match="unknown alert kind"):
        send_alert("mood", "hdfs", "2026-11-06", "x", data_root=tmp_path)


def test_the_nightly_dag_has_a_deadline_whose_callback_alerts(tmp_path, monkeypatch, webhook_sink):
    """The DeadlineAlert is declared on the nightly DAG (the triggerer calls it when a night is late;
    that path needs a scheduler and a triggerer, so here the callback is called as they call it)."""
    import asyncio
    from datetime import timedelta

    from airflow.dag_processing.dagbag import DagBag

    from nightshift import alerts
    from nightshift.settings import PROJECT_ROOT

    nightly = str(PROJECT_ROOT / "dags" / "nightshift_nightly.py")
    monkeypatch.delenv("NIGHTSHIFT_NIGHT_DEADLINE_HOURS", raising=False)
    assert not DagBag(dag_folder=nightly).dags["nightshift_nightly"].deadline       # off unless deployed with it
    monkeypatch.setenv("NIGHTSHIFT_NIGHT_DEADLINE_HOURS", "6")
    dag = DagBag(dag_folder=nightly).dags["nightshift_nightly"]
    [deadline] = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert deadline.interval == timedelta(hours=6)
    assert deadline.callback.path == "nightshift.alerts.night_deadline_missed"
    url, received = webhook_sink
    monkeypatch.setenv("NIGHTSHIFT_DATA_ROOT", str(tmp_path))
    monkeypatch.setattr(alerts, "webhook_url", lambda conn_id=alerts.CONN_ID: url)
    # the shape the triggerer passes (airflow.models.deadline: the run as a DAGRunResponse dump);
    # tests/test_stack.py sees the deadline fire for real
    context = {"dag_run": {"dag_run_id": "scheduled__2026-11-04T00:00:00+00:00", "dag_id": "nightshift_nightly",
                           "logical_date": "2026-11-04T00:00:00Z", "conf": {}, "state": "running"},
               "deadline": {"deadline_time": "2026-11-05T06:00:00Z"}}
    asyncio.run(alerts.night_deadline_missed(context=context))
    assert [(a["kind"], a["day"]) for a in received] == [("night_deadline", "2026-11-04")]
    assert received[0]["message"] == ("the nightly run scheduled__2026-11-04T00:00:00+00:00 is not done by its "
                                      "deadline 2026-11-05T06:00:00Z")
    assert received[0]["details"]["run_id"] == "scheduled__2026-11-04T00:00:00+00:00"


def _raise_many(data_root: str, worker: int) -> None:
    for i in range(50):
        send_alert("input_drift", "hdfs", "2026-11-04", f"worker {worker} alert {i} " + "x" * 3000,
                   url="http://127.0.0.1:9/unused", data_root=__import__("pathlib").Path(data_root))


def test_alerts_raised_at_once_by_several_processes_are_all_kept_whole(tmp_path):
    """Four processes append 50 alerts each (lines of ~3 kB) at the same moment, after a writer was
    killed mid-line: every alert is read back, none glued to another or to the torn line."""
    import multiprocessing

    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "alerts.jsonl").write_text('{"kind": "input_drift", "torn')
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_raise_many, args=(str(tmp_path), w)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
        assert p.exitcode == 0
    messages = sorted(a["message"].split(" x")[0] for a in read_alerts(tmp_path))
    assert messages == sorted(f"worker {w} alert {i}" for w in range(4) for i in range(50))


@pytest.fixture
def smtp_sink():
    """A minimal SMTP server on 127.0.0.1 (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) recording
    each message it accepts: ``(port, messages)``, a message being its envelope, login and content."""
    import base64
    import socketserver
    import threading

    messages: list[dict] = []

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self):
            envelope = {"from": None, "to": [], "login": None, "data": None}
            self.reply("220 sink ESMTP")
            while line := self.rfile.readline():
                command = line.decode().rstrip("\r\n")
                verb = command.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    self.reply("250-sink")
                    self.reply("250 AUTH PLAIN")
                elif verb == "AUTH":
                    _, user, password = base64.b64decode(command.split()[2]).decode().split("\0")
                    envelope["login"] = (user, password)
                    self.reply("235 ok")
                elif verb == "MAIL":
                    envelope["from"] = command.split(":", 1)[1].strip().strip("<>").split(">")[0]
                    self.reply("250 ok")
                elif verb == "RCPT":
                    envelope["to"].append(command.split(":", 1)[1].strip().strip("<>"))
                    self.reply("250 ok")
                elif verb == "DATA":
                    self.reply("354 go on")
                    body = []
                    while (data := self.rfile.readline()) not in (b".\r\n", b""):
                        body.append(data)
                    envelope["data"] = b"".join(body).decode()
                    messages.append(dict(envelope))
                    self.reply("250 queued")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("502 not implemented")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], messages
    server.shutdown()
    server.server_close()


def _smtp_connection(monkeypatch, port: int, **extra) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTSHIFT_ALERTS_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "nightshift", "password": "s3cret-pass",
        "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 5, **extra}}))


def test_an_alert_is_e_mailed_through_the_smtp_connection(tmp_path, monkeypatch, smtp_sink):
    from email import message_from_string

    port, messages = smtp_sink
    _smtp_connection(monkeypatch, port, to="oncall@example.org, ml@example.org", from_email="nightshift@example.org")
    alert = send_alert("labels_overdue", "hdfs", "2026-11-04", "no labels after 72 h", {"version": "2"},
                       url=None, data_root=tmp_path)
    assert alert["emailed"] is True and alert["delivered"] is None        # mailed; no webhook here
    [mail] = messages
    assert mail["login"] == ("nightshift", "s3cret-pass")
    assert (mail["from"], mail["to"]) == ("nightshift@example.org", ["oncall@example.org", "ml@example.org"])
    parsed = message_from_string(mail["data"])
    assert parsed["Subject"] == "[nightshift] labels_overdue: hdfs 2026-11-04"
    assert parsed["To"] == "oncall@example.org, ml@example.org"
    body = parsed.get_payload().replace("\r\n", "\n")          # SMTP lines end in CRLF
    assert body.startswith("no labels after 72 h\n") and '"version": "2"' in body
    assert [a["emailed"] for a in read_alerts(tmp_path)] == [True]


def test_a_mail_server_that_fails_does_not_fail_the_alert(tmp_path, monkeypatch, smtp_sink, alert_log):
    port, messages = smtp_sink
    _smtp_connection(monkeypatch, free_port(), to="oncall@example.org")          # nobody listens
    refused = send_alert("failed_night", "hdfs", "2026-11-06", "validation failed", data_root=tmp_path)
    _smtp_connection(monkeypatch, port)                                           # no recipients
    no_recipients = send_alert("failed_night", "hdfs", "2026-11-06", "validation failed", data_root=tmp_path)
    # SMTP over TLS (the default) against a plain server: the handshake fails
    _smtp_connection(monkeypatch, port, to="oncall@example.org", disable_ssl=False)
    no_tls = send_alert("failed_night", "hdfs", "2026-11-06", "validation failed", data_root=tmp_path)
    assert [refused["emailed"], no_recipients["emailed"], no_tls["emailed"]] == [False, False, False]
    assert messages == []
    logged = [r.getMessage() for r in alert_log if r.levelname == "ERROR"]
    assert len(logged) == 3 and all("could not be e-mailed through 'nightshift_alerts_smtp'" in m for m in logged), logged
    assert "has no recipients (extra 'to')" in logged[1]
    assert [a["emailed"] for a in read_alerts(tmp_path)] == [False, False, False]


def test_a_failed_task_s_notifier_alerts_with_the_run_the_task_and_the_error(tmp_path, monkeypatch, webhook_sink):
    """TaskFailedNotifier called as Airflow calls an on_failure_callback (with the task's context)."""
    import types

    from nightshift.notifiers import TaskFailedNotifier

    url, received = webhook_sink
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTSHIFT_ALERTS", json.dumps({"conn_type": "http", "host": url}))
    monkeypatch.setenv("NIGHTSHIFT_DATA_ROOT", str(tmp_path))
    ti = types.SimpleNamespace(dag_id="nightshift_scoring", task_id="score_sessions", map_index=0,
                               run_id="manual__2026-11-05", try_number=1)
    context = {"ti": ti, "dag_run": types.SimpleNamespace(run_id="manual__2026-11-05", dag_id="nightshift_scoring"),
               "params": {"source": "hdfs", "day": "2026-11-05"}, "exception": RuntimeError("spark-submit exited 1")}
    TaskFailedNotifier()(context)
    [alert] = received
    assert (alert["kind"], alert["source"], alert["day"]) == ("task_failed", "hdfs", "2026-11-05")
    assert alert["message"] == ("nightshift_scoring: task score_sessions[0] failed in run manual__2026-11-05: "
                                "RuntimeError: spark-submit exited 1")
    assert alert["details"]["task_id"] == "score_sessions" and alert["details"]["try_number"] == 1
    # a run without source/day parameters (the rollback DAG's form has a source, no day)
    TaskFailedNotifier()({"ti": ti, "params": {"source": "hdfs"}})
    assert (received[1]["source"], received[1]["day"]) == ("hdfs", "-")
    assert received[1]["message"].endswith("failed in run manual__2026-11-05: no error given")


@pytest.mark.e2e
def test_a_refused_rollback_run_alerts_through_the_notifier(tmp_path, airflow_env, webhook_sink):
    """A real run (``airflow dags test``) of the rollback DAG with no champion to roll back: the task
    fails and Airflow calls its notifier, which alerts the webhook once."""
    from nightshift.localenv import run_dag

    url, received = webhook_sink
    env = airflow_env(tmp_path / "airflow", tmp_path / "data")
    env["AIRFLOW_CONN_NIGHTSHIFT_ALERTS"] = json.dumps({"conn_type": "http", "host": url})
    (tmp_path / "data" / "mlflow").mkdir(parents=True)
    code = run_dag("nightshift_rollback", "2026-11-10", {"source": "hdfs", "reason": "test: nothing to undo"}, env,
                   tmp_path / "rollback.log")
    log = (tmp_path / "rollback.log").read_text()
    assert code != 0 and "rollback refused" in log, log[-3000:]
    [alert] = received
    assert (alert["kind"], alert["source"], alert["day"]) == ("task_failed", "hdfs", "-"), alert
    assert alert["message"].startswith("nightshift_rollback: task roll_back_champion failed in run "), alert
    assert "rollback refused" in alert["message"] and alert["airflow_run_id"], alert
    assert read_alerts(tmp_path / "data") == [{**alert, "delivered": True, "emailed": None}]
