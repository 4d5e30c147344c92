"""Alerts (nightshift.alerts): delivered to a webhook, recorded in the lake, never fatal."""

from __future__ import annotations

import pytest

from nightshift.alerts import read_alerts, send_alert, webhook_url
from tests.browser import free_port


def test_an_alert_reaches_the_webhook_and_the_lake(tmp_path, webhook_sink):
    url, received = webhook_sink
    alert = send_alert("input_drift", "hdfs", "2026-11-04", "drift: flagged", {"js": 0.4}, url=url, data_root=tmp_path)
    assert alert["delivered"] is True
    assert [(a["kind"], a["message"], a["details"]) for a in received] == [("input_drift", "drift: flagged", {"js": 0.4})]
    assert read_alerts(tmp_path) == [alert]


def test_without_a_webhook_or_with_a_dead_one_the_alert_is_logged_and_kept(tmp_path, monkeypatch):
    import logging

    assert webhook_url() is None        # no nightshift_alerts connection here
    # a handler of our own on the module's logger: Airflow's logging setup (imported by other tests
    # of the same worker) decides where records go otherwise
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("nightshift.alerts")
    monkeypatch.setattr(logger, "disabled", False)
    logger.addHandler(handler)
    try:
        quiet = send_alert("failed_night", "hdfs", "2026-11-06", "validation failed", data_root=tmp_path)
        dead = send_alert("failed_night", "hdfs", "2026-11-06", "validation failed",
                          url=f"http://127.0.0.1:{free_port()}/hook", data_root=tmp_path)
    finally:
        logger.removeHandler(handler)
    logged = [(r.levelname, r.getMessage()) for r in records]
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
