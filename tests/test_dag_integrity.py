"""DAG integrity: the DAG files import cleanly, declare only, and follow our policies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nightshift.settings import PROJECT_ROOT

DAGS_DIR = PROJECT_ROOT / "dags"
HEAVY_MODULES = ("pyspark.sql", "mlflow", "great_expectations", "sklearn", "pandas", "nightshift.training")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {p.stem for p in DAGS_DIR.glob("*.py")}   # dag_id == file stem


def test_every_dag_is_documented_and_single_run(dagbag):
    for dag in dagbag.dags.values():
        assert dag.description, f"{dag.dag_id}: the DAG list shows the description"
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag.dag_id} needs a module docstring as doc_md"
        assert dag.max_active_runs == 1
        assert dag.catchup is False


def test_nightly_dag_shape(dagbag):
    dag = dagbag.dags["nightshift_nightly"]
    order = ["resolve_day", "ingest_and_validate", "validate_parsed_lines", "validate_session_features",
             "check_input_drift", "plan_training", "train_candidate", "evaluate_candidates", "route_decision", "promote_champion",
             "report_night"]
    assert set(dag.task_ids) == set(order) | {"publish_features", "await_approval"}
    # the night report is written whatever happened before it
    assert dag.get_task("report_night").trigger_rule == "all_done"
    assert dag.get_task("await_approval").downstream_task_ids == {"promote_champion"}
    # drift is recorded before the scoring DAG hears of the day (it reads the drift report)
    assert dag.get_task("check_input_drift").downstream_task_ids == {"publish_features", "plan_training"}
    for upstream, downstream in zip(order, order[1:]):
        assert downstream in dag.get_task(upstream).downstream_task_ids, f"{upstream} -> {downstream}"
    # one switch for the promotion mode (no separate dry_run flag); the day is a text field
    assert set(dag.params.keys()) == {"source", "day", "mode", "retrain_for_version"}
    assert dag.params["retrain_for_version"] is None
    assert dag.params["mode"] == "config"
    assert "format" not in dag.params.get_param("day").schema
    from airflow.sdk import CronDataIntervalTimetable

    assert isinstance(dag.timetable, CronDataIntervalTimetable)


def test_retraining_dag_consumes_the_scoring_dag_s_requests(dagbag):
    """nightshift_retraining runs on the Asset the scoring DAG's flag_suspect_predictions emits;
    per request (a mapped task group): a sensor that frees its worker slot between looks, the
    decision, and the trigger of the nightly DAG with a conf that DAG's form knows."""
    from airflow.sdk.definitions.taskgroup import MappedTaskGroup

    from nightshift.assets import RETRAINING_REQUESTED
    from nightshift.retraining import LabelWait, load_label_wait

    dag = dagbag.dags["nightshift_retraining"]
    assert dag.schedule == [RETRAINING_REQUESTED]
    assert list(dag.timetable.asset_condition.objects) == [RETRAINING_REQUESTED]
    assert dagbag.dags["nightshift_scoring"].get_task("flag_suspect_predictions").outlets == [RETRAINING_REQUESTED]
    assert set(dag.params.keys()) == {"source", "day", "version"}
    assert dag.params["day"] is None and dag.params["version"] is None
    assert set(dag.task_ids) == {"resolve_requests", "handle_request.wait_for_labels", "handle_request.decide",
                                 "handle_request.trigger_nightly"}
    assert isinstance(dag.task_group_dict["handle_request"], MappedTaskGroup)
    assert dag.get_task("resolve_requests").downstream_task_ids == {"handle_request.wait_for_labels"}
    assert dag.get_task("handle_request.wait_for_labels").downstream_task_ids == {"handle_request.decide"}
    assert dag.get_task("handle_request.decide").downstream_task_ids == {"handle_request.trigger_nightly"}
    sensor = dag.get_task("handle_request.wait_for_labels")
    wait = load_label_wait(PROJECT_ROOT / "config")
    assert wait == LabelWait()                       # the shipped config says the defaults
    assert sensor.mode == "reschedule" and sensor.poke_interval == wait.poke_interval.total_seconds()
    # Airflow's own timeout is a backstop behind the poke's (which says why and alerts)
    assert sensor.timeout > wait.max_wait.total_seconds()
    trigger = dag.get_task("handle_request.trigger_nightly")
    assert trigger.trigger_dag_id == "nightshift_nightly"
    assert {"source", "day", "retrain_for_version"} <= set(dagbag.dags["nightshift_nightly"].params.keys())


def test_nightly_tasks_link_the_night_s_evidence(dagbag, monkeypatch):
    """Extra links: Data Docs where data is validated, MLflow run and decision record where the
    night is decided; each a fixed URL of the Nightshift view for the run (serialised for the UI)."""
    from types import SimpleNamespace

    from airflow.serialization.serialized_objects import DagSerialization

    dag = dagbag.dags["nightshift_nightly"]
    names = {t.task_id: sorted(link.name for link in t.operator_extra_links) for t in dag.tasks}
    assert names["validate_parsed_lines"] == names["ingest_and_validate"] == ["Data Docs"]
    assert names["evaluate_candidates"] == ["Decision record", "MLflow run"]
    assert names["report_night"] == ["Data Docs", "Decision record", "MLflow run"]
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    assert serialized.get_task("report_night").extra_links == ["Data Docs", "Decision record", "MLflow run"]
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.org/")
    link = dag.get_task("evaluate_candidates").operator_extra_links[0]
    key = SimpleNamespace(dag_id="nightshift_nightly", run_id="scheduled__2026-11-02T00:00:00+00:00")
    assert link.get_link(None, ti_key=key) == ("https://airflow.example.org/nightshift/runs/nightshift_nightly/"
                                               "scheduled__2026-11-02T00%3A00%3A00%2B00%3A00/record")


def test_spark_tasks_are_submitted_through_the_spark_connection(dagbag):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    dag = dagbag.dags["nightshift_nightly"]
    spark_tasks = [t for t in dag.tasks if isinstance(t, SparkSubmitOperator)]
    # one Spark application per night (one JVM start-up): ingest, features and both validations
    assert [t.task_id for t in spark_tasks] == ["ingest_and_validate"]
    for t in spark_tasks:
        assert t._conn_id == "nightshift_spark"
        assert Path(t.application).is_file() and Path(t.application).parent == PROJECT_ROOT / "jobs"
    assert {"--with-features", "--validate"} <= set(dag.get_task("ingest_and_validate").application_args)


def test_training_is_mapped_over_candidates(dagbag):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    assert isinstance(dagbag.dags["nightshift_nightly"].get_task("train_candidate"), MappedOperator)


def test_parsing_does_no_work_and_imports_nothing_heavy(tmp_path):
    """Parse every DAG file in a fresh interpreter where Variable and Connection look-ups raise."""
    probe = f"""
import json, sys, runpy
from airflow.sdk import Variable, Connection
def forbidden(*a, **k):
    raise AssertionError("look-up at parse time")
Variable.get = forbidden
Connection.get = forbidden
from airflow.sdk.bases.hook import BaseHook
BaseHook.get_connection = classmethod(lambda cls, *a, **k: forbidden())
for path in {json.dumps([str(p) for p in DAGS_DIR.glob('*.py')])}:
    runpy.run_path(path)
print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))
"""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_every_task_has_an_execution_timeout(dagbag):
    """A hung task (e.g. a regex stuck on one line) must fail, not stall the single active run."""
    from datetime import timedelta

    missing = [f"{dag.dag_id}.{t.task_id}" for dag in dagbag.dags.values() for t in dag.tasks
               if not t.execution_timeout or t.execution_timeout <= timedelta(0)]
    assert missing == []
    nightly = dagbag.dags["nightshift_nightly"]
    # Spark jobs and training get longer than the plain Python tasks
    assert nightly.get_task("ingest_and_validate").execution_timeout > nightly.get_task("resolve_day").execution_timeout
    assert nightly.get_task("train_candidate").execution_timeout > nightly.get_task("plan_training").execution_timeout
    scoring = dagbag.dags["nightshift_scoring"]
    assert scoring.get_task("score_sessions").execution_timeout > scoring.get_task("watch_champion").execution_timeout
    # the approval keeps its own (longer) wait for a person; execution_timeout only bounds the
    # part before it starts waiting (HITLOperator would otherwise turn it into the response timeout)
    approval = nightly.get_task("await_approval")
    assert approval.response_timeout == timedelta(days=1)
    assert approval.execution_timeout is not None and approval.execution_timeout < approval.response_timeout


def test_a_failed_task_of_the_scoring_retraining_or_rollback_dag_alerts(dagbag):
    """Their tasks carry the TaskFailedNotifier (``task_failed`` alert); the nightly DAG alerts through
    report_night instead, and the label sensor through its own labels_overdue alert."""
    from nightshift.notifiers import TaskFailedNotifier

    def notifiers(task) -> list:
        callbacks = task.on_failure_callback or []
        return [c for c in (callbacks if isinstance(callbacks, list) else [callbacks]) if isinstance(c, TaskFailedNotifier)]

    for dag_id in ("nightshift_scoring", "nightshift_retraining", "nightshift_rollback"):
        for task in dagbag.dags[dag_id].tasks:
            expected = 0 if task.task_id == "handle_request.wait_for_labels" else 1
            assert len(notifiers(task)) == expected, f"{dag_id}.{task.task_id}"
    assert all(not notifiers(t) for t in dagbag.dags["nightshift_nightly"].tasks)
