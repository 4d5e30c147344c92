"""The scoring DAG: integrity (import, schedule, shape, Spark connection), how it picks its targets
from parameters or triggering asset events, and one run through real Airflow (``airflow dags test``)."""

from __future__ import annotations

import ast
import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest

from nightshift.assets import VALIDATED_FEATURES
from nightshift.settings import PROJECT_ROOT

DAG_ID = "nightshift_scoring"
DAG_FILE = PROJECT_ROOT / "dags" / f"{DAG_ID}.py"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    assert set(bag.dags) == {DAG_ID}            # dag_id == file stem
    return bag.dags[DAG_ID]


def test_scheduled_on_validated_features_one_run_at_a_time(dag):
    assert dag.schedule == [VALIDATED_FEATURES]
    assert list(dag.timetable.asset_condition.objects) == [VALIDATED_FEATURES]
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.doc_md.strip() == ast.get_docstring(ast.parse(DAG_FILE.read_text())).strip()
    assert set(dag.params.keys()) == {"source", "day"}
    assert dag.params["source"] == "hdfs" and dag.params["day"] is None


def test_resolve_target_then_score_sessions_on_the_spark_connection(dag):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    from nightshift.spark_jobs import SPARK_CONNECT_CONN_ID, SparkJobOperator

    assert set(dag.task_ids) == {"resolve_target", "score_sessions", "watch_champion", "trigger_retraining",
                                 "flag_suspect_predictions"}
    assert dag.get_task("resolve_target").downstream_task_ids == {"score_sessions", "watch_champion",
                                                                  "flag_suspect_predictions"}
    assert dag.get_task("score_sessions").downstream_task_ids == {"watch_champion", "flag_suspect_predictions"}
    from nightshift.assets import RETRAINING_REQUESTED

    assert dag.get_task("flag_suspect_predictions").outlets == [RETRAINING_REQUESTED]
    assert dag.get_task("watch_champion").downstream_task_ids == {"trigger_retraining"}
    assert dag.get_task("trigger_retraining").partial_kwargs["trigger_dag_id"] == "nightshift_nightly"
    score = dag.get_task("score_sessions")
    # spark-submit to the connection's master, or a Spark Connect client when that connection exists
    assert isinstance(score, MappedOperator) and score.operator_class is SparkJobOperator
    assert score.partial_kwargs["conn_id"] == "nightshift_spark"
    assert score.partial_kwargs.get("connect_conn_id", SPARK_CONNECT_CONN_ID) == "nightshift_spark_connect"
    application = Path(score.partial_kwargs["application"])
    assert application == PROJECT_ROOT / "jobs" / "score.py" and application.is_file()


def _event(extra: dict):
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult

    return AssetEventDagRunReferenceResult(
        asset={"name": VALIDATED_FEATURES.name, "uri": VALIDATED_FEATURES.uri, "extra": {}}, extra=extra,
        source_task_id="publish_features", source_dag_id="nightshift_nightly", source_run_id="manual__x",
        source_map_index=-1, source_aliases=[], timestamp=dt.datetime(2026, 5, 2, tzinfo=dt.timezone.utc),
    )


def test_resolve_target_reads_the_triggering_asset_events(dag):
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    resolve = dag.get_task("resolve_target").python_callable
    no_day = {"source": "hdfs", "day": None}
    events = TriggeringAssetEventsAccessor.build(
        [_event({"source": "hdfs", "day": "2026-05-01"}), _event({"source": "bgl", "day": "2026-05-01"}),
         _event({"source": "hdfs", "day": "2026-05-01"})]
    )
    assert resolve(params=no_day, triggering_asset_events=events) == [
        ["--source", "hdfs", "--day", "2026-05-01"], ["--source", "bgl", "--day", "2026-05-01"]]
    # a manual trigger's day wins over events
    assert resolve(params={"source": "bgl", "day": "2026-04-30"}, triggering_asset_events=events) == [
        ["--source", "bgl", "--day", "2026-04-30"]]
    with pytest.raises(ValueError, match="no 'day' parameter and no triggering asset event"):
        resolve(params=no_day, triggering_asset_events=TriggeringAssetEventsAccessor.build([]))
    with pytest.raises(ValueError, match="triggering asset event #0"):
        resolve(params=no_day, triggering_asset_events=TriggeringAssetEventsAccessor.build([_event({})]))


@pytest.mark.e2e
def test_dag_scores_a_day_through_airflow(spark, tmp_path, airflow_env, webhook_sink):
    """``airflow dags test`` with a registered champion: real spark-submit of jobs/score.py. The
    day's input drift was flagged by the nightly DAG, so the predictions are marked suspect and the
    alert reaches the webhook of the ``nightshift_alerts`` connection."""
    from nightshift.lake import Lake
    from tests.test_scoring import register_models, set_aliases, synthetic_features, write_features

    day = "2026-05-01"
    data_root = tmp_path / "data"
    env = airflow_env(tmp_path / "airflow", data_root)
    lake = Lake(data_root)
    features = write_features(spark, lake, day, synthetic_features(60, seed=12, unseen=True))
    [(version, _)] = register_models(env["MLFLOW_TRACKING_URI"], data_root / "mlflow" / "artifacts",
                                     kinds=("logistic_regression",))
    set_aliases(env["MLFLOW_TRACKING_URI"], champion=version)
    lake.write_report("hdfs", day, "drift", {"source": "hdfs", "day": day, "flagged": True,
                                             "summary": "drift: flagged: vs recent: unseen templates: 30.0% of lines"})
    url, alerts = webhook_sink
    env["AIRFLOW_CONN_NIGHTSHIFT_ALERTS"] = json.dumps({"conn_type": "http", "host": url})

    log_file = tmp_path / "logs" / "scoring.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w") as out:
        proc = subprocess.run(
            ["airflow", "dags", "test", DAG_ID, "2026-05-02", "-c", json.dumps({"source": "hdfs", "day": day})],
            env=env, stdout=out, stderr=subprocess.STDOUT, timeout=900,
        )
    assert proc.returncode == 0, log_file.read_text()[-4000:]

    report = lake.read_report("hdfs", day, "scoring")
    assert report is not None, log_file.read_text()[-4000:]
    assert report["champion_version"] == version and report["challenger_version"] is None
    assert report["sessions"] == len(features) and report["skipped"] is None
    predictions = spark.read.parquet(str(lake.predictions_dir("hdfs", day)))
    assert predictions.count() == predictions.select("session_id").distinct().count() == len(features)
    assert report["suspect"] is True and predictions.filter("suspect").count() == len(features)
    assert [(a["kind"], a["source"], a["day"]) for a in alerts] == [("prediction_drift", "hdfs", day)]
    assert "input drift: flagged" in alerts[0]["message"]
    from nightshift.alerts import read_alerts

    # and on record in the lake, delivered
    assert [(a["kind"], a["delivered"]) for a in read_alerts(data_root)] == [("prediction_drift", True)]
    # the spark-submit got the short-job JVM options through the DAG's macro (the day has no raw
    # input here: a small day), after the environment's (the class archive, when built)
    import sqlite3

    from nightshift.spark import SHORT_JOB_JVM_OPTIONS

    with sqlite3.connect(tmp_path / "airflow" / "airflow.db") as db:
        [(rendered,)] = db.execute("SELECT rendered_fields FROM rendered_task_instance_fields "
                                   "WHERE task_id = 'score_sessions'").fetchall()
    opts = json.loads(rendered)["env_vars"]["SPARK_SUBMIT_OPTS"]
    assert opts.endswith(SHORT_JOB_JVM_OPTIONS) and opts.startswith(env.get("SPARK_SUBMIT_OPTS", "").strip())
