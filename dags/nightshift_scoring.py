"""
### Nightshift batch scoring

Scores every session of a day with the registry's **champion** model, and shadow-scores the
**challenger** next to it, as soon as the nightly DAG has published that day's validated features.

`resolve_target` → `score_sessions` (Spark, `jobs/score.py`, one mapped task per source and day)
→ `watch_champion` → `trigger_retraining` (only for alerts), and `flag_suspect_predictions`

* **Trigger**: the Asset `nightshift_validated_features`, emitted by `publish_features` in
  `nightshift_nightly` with `{"source", "day"}` in the event's extra. If several events arrived
  since the last run, every (source, day) among them is scored. A manual trigger sets `day` (and
  `source`) in the form instead.
* **Output**: `predictions/source=<s>/dt=<day>/` (one row per session: `score` = P(anomalous),
  `prediction` = score >= 0.5, the exact model version used, and the challenger's score when a
  challenger other than the champion exists), replaced as a whole on every run, and
  `reports/source=<s>/dt=<day>/scoring.json`.
* **No champion yet**: nothing is scored; the task succeeds, its log and the report say
  `"skipped": "no champion"`.
* **Prediction drift**: the champion's flag rate tonight against its holdout flag rate and its
  recent nights (`config/drift.yaml`), and the day's input drift: beyond the thresholds, every
  prediction of the night has `suspect = true`, the report says why, an alert goes to the
  `nightshift_alerts` webhook and the Asset `nightshift_retraining_requested` gets an event
  (`{"requests": [{"source", "day", "version", "reasons"}]}`, `version` = the champion that scored
  the night). The `nightshift_retraining` DAG consumes it: it waits for the day's labels, then
  retrains that day with `nightshift_nightly` unless another version is champion by then or a
  night already trained or evaluated with those labels.
* **Champion watch**: once labels for scored days have arrived, the champion's realized precision
  and recall are computed; below the floors of `config/promotion.yaml` on `watch_days` consecutive
  days it logs an ALERT, writes `reports/.../champion_watch.json`, rolls back if
  `watch_auto_rollback`, and triggers `nightshift_nightly` for that day (retraining).
* The Spark job runs as a client of the Spark Connect server of the Airflow connection
  `nightshift_spark_connect` when it is defined (`make demo`, `make ui`), else it is submitted
  with `spark-submit` to the master of the Airflow connection `nightshift_spark`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task

from nightshift.assets import RETRAINING_REQUESTED, VALIDATED_FEATURES
from nightshift.dag_params import day_param, source_param
from nightshift.notifiers import TaskFailedNotifier
from nightshift.spark import night_submit_opts   # a template macro (light import: nothing of Spark)
from nightshift.spark_jobs import SparkJobOperator

JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"
SPARK_CONN_ID = "nightshift_spark"
# Every task has an execution_timeout, so a hung task fails instead of stalling the DAG
# (max_active_runs=1): Python tasks get the default, the Spark scoring job longer.
PYTHON_TASK_TIMEOUT = timedelta(minutes=30)
SPARK_JOB_TIMEOUT = timedelta(hours=1)


@dag(
    dag_id="nightshift_scoring",
    schedule=[VALIDATED_FEATURES],
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    description="Scores each validated day's sessions with the champion; watches the champion once labels arrive",
    doc_md=__doc__,
    tags=["nightshift"],
    user_defined_macros={"night_submit_opts": night_submit_opts},
    default_args={"retries": 0, "execution_timeout": PYTHON_TASK_TIMEOUT, "on_failure_callback": TaskFailedNotifier()},
    params={
        "source": source_param("Name of a source declared in sources/<name>.yaml (used with 'day')"),
        "day": day_param("Day to score", "YYYY-MM-DD; empty = the days announced by the triggering asset events"),
    },
)
def nightshift_scoring():
    @task
    def resolve_target(params=None, triggering_asset_events=None) -> list[list[str]]:
        """The (source, day) partitions this run scores, as spark-submit arguments."""
        from nightshift.scoring import scoring_targets

        events = (triggering_asset_events or {}).get(VALIDATED_FEATURES) or []
        targets = scoring_targets(params, [event.extra for event in events])
        print("scoring targets:", ", ".join(f"{t['source']} {t['day']}" for t in targets))
        return [["--source", t["source"], "--day", t["day"]] for t in targets]

    @task
    def watch_champion(targets: list[list[str]]) -> list[dict]:
        """Realized precision/recall of the champion where labels have arrived; alert (and roll
        back, if configured) after K bad days in a row. Returns the retraining requests."""
        from nightshift.context import TaskContext
        from nightshift.monitoring import watch_champion as watch

        ctx = TaskContext.load()
        requests = []
        for _, source, _, day in targets:
            report = watch(ctx.settings, ctx.model_name(source), source, day, ctx.policy)
            if report["retrain"]:
                requests.append({"source": source, "day": day, "retrain_for_version": report["retrain_for_version"]})
        return requests

    @task(outlets=[RETRAINING_REQUESTED])
    def flag_suspect_predictions(targets: list[list[str]], outlet_events=None) -> list[dict]:
        """Prediction drift: a night whose predictions are suspect (flag rate far from the
        champion's holdout and recent nights, or input drift) raises an alert and a retraining
        request (an Asset event); on a quiet night the task is skipped and raises nothing."""
        from nightshift.alerts import send_alert
        from nightshift.context import TaskContext
        from nightshift.retraining import request_from_scoring

        ctx = TaskContext.load()
        suspect = []
        for _, source, _, day in targets:
            report = ctx.lake.read_report(source, day, "scoring") or {}
            drift = report.get("prediction_drift") or {}
            if drift.get("suspect"):
                message = f"predictions of v{report['champion_version']} are suspect: " + "; ".join(drift["reasons"])
                send_alert("prediction_drift", source, day, message, drift, data_root=ctx.settings.data_root)
                # the version that scored the night: nightshift_retraining drops the request once
                # another version is champion
                suspect.append(request_from_scoring(source, day, report))
        if not suspect:
            from airflow.sdk.exceptions import AirflowSkipException

            # skipped, not succeeded: a task that succeeds emits its outlet's asset event (with an
            # empty extra), which would start a retraining run with nothing to do
            raise AirflowSkipException("no suspect predictions tonight: no alert, no retraining request")
        outlet_events[RETRAINING_REQUESTED].extra = {"requests": suspect}
        return suspect

    targets = resolve_target()
    scored = SparkJobOperator.partial(
        task_id="score_sessions",
        conn_id=SPARK_CONN_ID,
        application=str(JOBS_DIR / "score.py"),
        name="nightshift-score_sessions",
        map_index_template="{{ task.application_args[1] }} {{ task.application_args[3] }}",
        doc_md="Runs `jobs/score.py` for one source and day: as a client of the Spark Connect server of the "
               "connection `nightshift_spark_connect` when it is defined, else with spark-submit.",
        execution_timeout=SPARK_JOB_TIMEOUT,
        # the driver JVM's options, by the day's raw input size (nightshift.spark.night_submit_opts)
        env_vars={"SPARK_SUBMIT_OPTS": "{{ night_submit_opts(task.application_args[1], task.application_args[3]) }}"},
    ).expand(application_args=targets)
    retrain = watch_champion(targets)
    scored >> retrain
    scored >> flag_suspect_predictions(targets)
    TriggerDagRunOperator.partial(
        task_id="trigger_retraining",
        trigger_dag_id="nightshift_nightly",
        doc_md="Starts the nightly DAG for a day on which the champion watch raised an alert.",
    ).expand(conf=retrain)


nightshift_scoring()
