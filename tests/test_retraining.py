"""Retraining requests (nightshift.retraining, dags/nightshift_retraining.py): which requests a run
handles, when a day counts as labelled, stale / satisfied / needed on constructed lakes with the
real MLflow registry (SQLite), and one run of the DAG through real Airflow (``airflow dags test``)
that triggers ``nightshift_nightly``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sqlite3
import subprocess
import time

import pytest

from nightshift.lake import Lake
from nightshift.retraining import (NEEDED, SATISFIED, STALE, LabelWait, decide, load_label_wait, nights_using,
                                   request_from_scoring, retraining_requests, waiting_for)
from nightshift.settings import PROJECT_ROOT, load_settings

MODEL = "log_anomaly_hdfs"
DAY = "2026-11-04"


@pytest.fixture
def settings(tmp_path):
    return dataclasses.replace(load_settings(), data_root=tmp_path / "lake", lock_url=None,
                               mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def _champion(settings, versions: int, champion: str) -> None:
    """``versions`` registered versions of the HDFS model (no artifacts), ``champion`` the alias."""
    from nightshift import registry
    from tests.test_promotion_faults import _make_versions

    _make_versions(settings, versions, model=MODEL)
    registry.move_champion(settings, MODEL, champion, expected_champion=None, action="promote",
                           decided_by="test", reason="test")


def _inline_labels(lake: Lake, day: str, sessions: int = 40) -> None:
    """A day whose lines carried labels (what the features job reports for such a day)."""
    lake.write_report("hdfs", day, "features", {"source": "hdfs", "day": day, "labelled_sessions": sessions})


def _labels_file(lake: Lake, day: str, content: str = "session_id,label\nblk_1,0\nblk_2,1\n") -> None:
    lake.labels_dir("hdfs", day).mkdir(parents=True, exist_ok=True)
    lake.labels_file("hdfs", day).write_text(content)


def _decided(lake: Lake, night: str, holdout: list[str], train: list[str], decision: str = "kept",
             skipped: bool = False) -> None:
    """A night's decision report as the nightly DAG writes it: a judged night has the plan's days
    at the top (``promotion.judge``), a skipped one under ``plan`` (``promotion.record_skip``)."""
    plan = {"source": "hdfs", "day": night, "holdout_days": holdout, "train_days": train}
    record = ({"source": "hdfs", "day": night, "decision": "skipped", "reason": "x", "plan": plan} if skipped
              else {**plan, "decision": decision, "reason": "x"})
    lake.write_report("hdfs", night, "decision", record)


def test_requests_come_from_the_form_or_the_triggering_events():
    no_day = {"source": "hdfs", "day": None, "version": None}
    extras = [{"requests": [{"source": "hdfs", "day": DAY, "version": "2", "reasons": ["input drift: flagged"]},
                            {"source": "bgl", "day": DAY, "version": None, "reasons": []}]},
              {"requests": [{"source": "hdfs", "day": DAY, "version": "4", "reasons": ["flag rate 0.30"]}]}]
    # one request per (source, day): the latest event's version, every reason
    assert retraining_requests(no_day, extras) == [
        {"source": "hdfs", "day": DAY, "version": "4", "reasons": ["input drift: flagged", "flag rate 0.30"]},
        {"source": "bgl", "day": DAY, "version": None, "reasons": []}]
    # the form wins over events
    assert retraining_requests({"source": "bgl", "day": "2026-11-02", "version": "3"}, extras) == [
        {"source": "bgl", "day": "2026-11-02", "version": "3", "reasons": ["requested by hand (the DAG's trigger form)"]}]
    with pytest.raises(ValueError, match="no 'day' parameter and no triggering asset event"):
        retraining_requests(no_day, [])
    assert retraining_requests(no_day, [{}, None]) == []           # empty events ask for nothing
    assert retraining_requests(no_day, [{}, extras[1]])[0]["version"] == "4"
    with pytest.raises(ValueError, match="event #0: extra has no 'requests' list"):
        retraining_requests(no_day, [{"source": "hdfs", "day": DAY}])     # the event's shape before this change
    with pytest.raises(ValueError, match=r"event #0, request #0 .*day must be a YYYY-MM-DD date"):
        retraining_requests(no_day, [{"requests": [{"source": "hdfs", "day": "11/04/2026"}]}])
    with pytest.raises(ValueError, match="version must be a model version number"):
        retraining_requests({"source": "hdfs", "day": DAY, "version": "v2"}, [])
    # the scoring DAG's request names the champion that scored the suspect night
    report = {"source": "hdfs", "day": DAY, "champion_version": 2,
              "prediction_drift": {"suspect": True, "reasons": ["input drift: flagged"]}}
    assert request_from_scoring("hdfs", DAY, report) == {"source": "hdfs", "day": DAY, "version": "2",
                                                         "reasons": ["input drift: flagged"]}


def test_a_request_waits_for_the_day_s_labels_and_for_nights_in_progress(settings):
    lake = Lake(settings.data_root)
    assert waiting_for(settings, lake, "hdfs", DAY) == f"labels of hdfs {DAY}: no labels yet"
    _inline_labels(lake, DAY, sessions=0)                                  # the lines carried none
    assert waiting_for(settings, lake, "hdfs", DAY) == f"labels of hdfs {DAY}: no labels yet"
    _inline_labels(lake, DAY)
    assert "2 run(s) of nightshift_nightly are queued or running" in waiting_for(settings, lake, "hdfs", DAY, 2)
    assert waiting_for(settings, lake, "hdfs", DAY, 0) is None
    # a labels file is authoritative: one that cannot be used is no label at all (as for training)
    _labels_file(lake, DAY, "sid,lbl\nblk_1,0\n")
    assert "labels rejected" in waiting_for(settings, lake, "hdfs", DAY)


def test_stale_satisfied_or_needed(settings):
    lake = Lake(settings.data_root)
    _champion(settings, 2, champion="1")
    request = {"source": "hdfs", "day": DAY, "version": "1", "reasons": ["input drift: flagged"]}
    # the day's own night ran before its labels: holdout the day before, the day left out
    _decided(lake, DAY, holdout=["2026-11-03"], train=["2026-11-02"])
    outcome = decide(settings, MODEL, request)
    assert outcome["decision"] == NEEDED
    assert outcome["conf"] == {"source": "hdfs", "day": DAY, "retrain_for_version": "1"}
    assert outcome["reason"] == (f"no night has trained or evaluated with {DAY}'s labels yet: retraining hdfs "
                                 f"for {DAY} while v1 is champion")
    # a later night trained on it
    _decided(lake, "2026-11-05", holdout=["2026-11-05"], train=["2026-11-03", DAY])
    outcome = decide(settings, MODEL, request)
    assert (outcome["decision"], outcome["conf"]) == (SATISFIED, None)
    assert outcome["reason"] == (f"{DAY}'s labels were already used: the night of 2026-11-05 (kept, {DAY} as "
                                 f"training day); nothing to retrain")
    # ... but with labels that arrived as a file after that night: those labels are new
    time.sleep(0.02)
    _labels_file(lake, DAY)
    later = lake.report_file("hdfs", "2026-11-05", "decision").stat().st_mtime + 1
    os.utime(lake.labels_file("hdfs", DAY), (later, later))
    outcome = decide(settings, MODEL, request)
    assert outcome["decision"] == NEEDED
    assert "(the night(s) of 2026-11-05 used 2026-11-04 before its labels file arrived)" in outcome["reason"]
    assert nights_using(lake, "hdfs", DAY) == [{"night": "2026-11-05", "role": "training day", "decision": "kept",
                                               "after_labels": False}]
    # no version given (a manual trigger without one): no staleness check
    assert decide(settings, MODEL, {**request, "version": None})["conf"]["retrain_for_version"] is None
    # another version is champion by now: stale, whatever the lake says
    from nightshift import registry

    registry.move_champion(settings, MODEL, "2", expected_champion="1", action="promote", decided_by="test",
                           reason="test")
    outcome = decide(settings, MODEL, request)
    assert (outcome["decision"], outcome["conf"]) == (STALE, None)
    assert outcome["reason"] == (f"retraining was requested for {DAY} because v1's predictions were suspect, "
                                 "but the champion is v2 now: nothing to retrain")


def test_the_demo_s_drift_day_is_satisfied_by_its_own_night(settings):
    """make demo: labels come with the logs, so the drift day's own night holds it out; its
    scoring (v2, suspect) asks for a retraining that has nothing to do once that night decided."""
    lake = Lake(settings.data_root)
    _champion(settings, 2, champion="2")
    days = ["2026-11-01", "2026-11-02", "2026-11-03", DAY]
    for d in days:
        _labels_file(lake, d)
    time.sleep(0.02)
    _decided(lake, "2026-11-01", [], [], skipped=True)            # need 2 labelled days
    for i, d in enumerate(days[1:], start=1):
        _decided(lake, d, holdout=[d], train=days[:i])
    outcome = decide(settings, MODEL, {"source": "hdfs", "day": DAY, "version": "2", "reasons": []})
    assert outcome["decision"] == SATISFIED
    assert f"the night of {DAY} (kept, {DAY} as holdout)" in outcome["reason"]
    # and a skipped night's plan (under "plan") counts too
    _decided(lake, "2026-11-05", holdout=["2026-11-05"], train=[DAY], skipped=True)
    assert [u["night"] for u in nights_using(lake, "hdfs", DAY)] == [DAY, "2026-11-05"]


def test_the_label_wait_is_data_with_defaults(tmp_path):
    assert load_label_wait(tmp_path) == LabelWait(dt.timedelta(minutes=30), dt.timedelta(hours=72))
    assert load_label_wait(PROJECT_ROOT / "config") == LabelWait()          # the shipped file says the defaults
    (tmp_path / "drift.yaml").write_text("defaults: {}\nretraining:\n  labels_max_wait_hours: 0.5\n")
    assert load_label_wait(tmp_path) == LabelWait(dt.timedelta(minutes=30), dt.timedelta(minutes=30))
    (tmp_path / "drift.yaml").write_text("retraining:\n  labels_max_wait: 3\n")
    with pytest.raises(ValueError, match="unknown retraining setting"):
        load_label_wait(tmp_path)
    (tmp_path / "drift.yaml").write_text("retraining:\n  labels_poke_interval_minutes: 60\n  labels_max_wait_hours: 0.5\n")
    with pytest.raises(ValueError, match="at least one poke interval"):
        load_label_wait(tmp_path)


def _dag_test(env, dag_id: str, conf: dict, log_file) -> str:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w") as out:
        proc = subprocess.run(["airflow", "dags", "test", dag_id, "2026-11-10", "-c", json.dumps(conf)],
                              env=env, stdout=out, stderr=subprocess.STDOUT, timeout=300)
    text = log_file.read_text()
    assert proc.returncode == 0, text[-4000:]
    return text


def _runs(airflow_home, dag_id: str) -> list[tuple]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        return db.execute("SELECT run_id, run_type, state, conf FROM dag_run WHERE dag_id = ?", (dag_id,)).fetchall()


def _task_states(airflow_home, dag_id: str) -> dict[str, str]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute("SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ?", (dag_id,)).fetchall()
    return {f"{task}[{index}]" if index >= 0 else task: state for task, index, state in rows}


@pytest.mark.e2e
def test_dag_triggers_the_nightly_run_once_the_labels_are_there(tmp_path, airflow_env):
    """``airflow dags test`` of the retraining DAG for a day whose labels file has arrived after
    its night (which could not use it): the sensor finds the labels (validating the file), the
    request is needed, and the nightly run it triggers is in the metadata database with the conf
    (``dags test`` creates it, does not run it)."""
    data_root = tmp_path / "data"
    env = airflow_env(tmp_path / "airflow", data_root)
    settings = dataclasses.replace(load_settings(), data_root=data_root, lock_url=None,
                                   mlflow_tracking_uri=env["MLFLOW_TRACKING_URI"])
    (data_root / "mlflow").mkdir(parents=True)
    _champion(settings, 1, champion="1")
    lake = Lake(data_root)
    _decided(lake, DAY, holdout=["2026-11-03"], train=["2026-11-02"])     # the night ran before the labels
    time.sleep(0.02)
    _labels_file(lake, DAY, "session_id,label\n" + "".join(f"blk_{i},{int(i % 10 == 0)}\n" for i in range(50)))

    text = _dag_test(env, "nightshift_retraining", {"source": "hdfs", "day": DAY, "version": "1"},
                     tmp_path / "logs" / "retraining.log")
    states = _task_states(tmp_path / "airflow", "nightshift_retraining")
    assert states == {"resolve_requests": "success", "handle_request.wait_for_labels[0]": "success",
                      "handle_request.decide[0]": "success", "handle_request.trigger_nightly[0]": "success"}, text[-4000:]
    assert lake.read_report("hdfs", DAY, "validation_labels")["success"] is True    # the sensor validated the file
    assert f"needed: no night has trained or evaluated with {DAY}'s labels yet" in text
    [(run_id, run_type, state, conf)] = _runs(tmp_path / "airflow", "nightshift_nightly")
    assert run_type == "operator_triggered" and state == "queued", (run_id, run_type, state)
    assert json.loads(conf) == {"source": "hdfs", "day": DAY, "retrain_for_version": "1"}


@pytest.mark.e2e
def test_dag_gives_up_with_an_alert_when_the_labels_do_not_come(tmp_path, airflow_env):
    """The same DAG with a maximum wait of seconds (config/drift.yaml in a copied config dir) and
    no labels: the sensor is rescheduled (its slot freed), then fails with the reason and a
    ``labels_overdue`` alert; nothing is triggered."""
    import shutil

    from nightshift.alerts import read_alerts

    data_root = tmp_path / "data"
    env = airflow_env(tmp_path / "airflow", data_root)
    config = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config)
    drift = (config / "drift.yaml").read_text()
    assert "labels_poke_interval_minutes: 30" in drift and "labels_max_wait_hours: 72" in drift
    (config / "drift.yaml").write_text(drift.replace("labels_poke_interval_minutes: 30", "labels_poke_interval_minutes: 0.02")
                                       .replace("labels_max_wait_hours: 72", "labels_max_wait_hours: 0.001"))
    env["NIGHTSHIFT_CONFIG_DIR"] = str(config)

    log_file = tmp_path / "logs" / "retraining.log"
    log_file.parent.mkdir(parents=True)
    with open(log_file, "w") as out:
        proc = subprocess.run(["airflow", "dags", "test", "nightshift_retraining", "2026-11-10", "-c",
                               json.dumps({"source": "hdfs", "day": DAY, "version": "1"})],
                              env=env, stdout=out, stderr=subprocess.STDOUT, timeout=300)
    text = log_file.read_text()
    assert proc.returncode != 0, text[-4000:]
    assert f"labels of hdfs {DAY}: no labels yet" in text and "up_for_reschedule" in text, text[-4000:]
    states = _task_states(tmp_path / "airflow", "nightshift_retraining")
    assert states["handle_request.wait_for_labels[0]"] == "failed", states
    assert states["handle_request.trigger_nightly[0]"] == "upstream_failed", states
    [alert] = read_alerts(data_root)
    assert (alert["kind"], alert["source"], alert["day"]) == ("labels_overdue", "hdfs", DAY)
    assert alert["message"].startswith(f"gave up on the retraining request for hdfs {DAY} (v1) after ")
    assert f"labels_max_wait_hours in config/drift.yaml): labels of hdfs {DAY}: no labels yet" in alert["message"]
    assert alert["message"] in text                          # the sensor's failure says the same
    assert _runs(tmp_path / "airflow", "nightshift_nightly") == []
