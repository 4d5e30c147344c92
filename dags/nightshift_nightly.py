"""
### Nightshift nightly retraining

Processes one day of one log source, end to end:

`resolve_day` → `ingest_and_validate` (one Spark application: parsed lines, quarantine, template
ids, session features, then both Great Expectations suites) → `validate_parsed_lines` →
`validate_session_features` (each reads its verdict and fails the run with the reasons) →
`publish_features` (Asset event that triggers the scoring DAG) and `plan_training` →
`train_candidate` (one mapped task per candidate, MLflow runs) → `evaluate_candidates` →
`promote_champion` (MLflow registry aliases) → `report_night` (where the night's time went).

* **Day**: the run's data interval start (a scheduled run at midnight processes the day that just
  ended); a manual trigger may set `day` instead.
* **A failed validation** fails the run for that day: nothing is trained or promoted, all data is
  kept, and the reasons are in the task log and in `reports/source=<s>/dt=<day>/validation_*.json`.
* **Promotion mode** (`mode`): as configured, auto, manual (wait for an approval in the UI) or dry
  run (decide and record, move no alias).
* The Spark job runs as a client of the Spark Connect server of the Airflow connection
  `nightshift_spark_connect` when it is defined (`make demo` and `make ui` keep one running: no
  JVM start-up per night); otherwise it is submitted with `spark-submit` to the master of the
  connection `nightshift_spark` (local[2] on a laptop, the Spark master in docker-compose).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import (AsyncCallback, CronDataIntervalTimetable, DeadlineAlert, DeadlineReference, Param, TriggerRule,
                         dag, task)
from airflow.sdk.exceptions import AirflowFailException

from nightshift.assets import VALIDATED_FEATURES
from nightshift.dag_params import day_param, source_param
from nightshift.spark import night_submit_opts   # a template macro (light import: nothing of Spark)
from nightshift.spark_jobs import SparkJobOperator

JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"
SPARK_CONN_ID = "nightshift_spark"
DAY_XCOM = "{{ ti.xcom_pull(task_ids='resolve_day') }}"
# Every task has an execution_timeout, so one hung task (e.g. a regex stuck on a line) fails the
# run instead of stalling the pipeline (max_active_runs=1): Python tasks get the default, Spark jobs
# and training longer. await_approval waits for a person under its own response_timeout.
PYTHON_TASK_TIMEOUT = timedelta(minutes=30)
SPARK_JOB_TIMEOUT = timedelta(hours=2)
PROMOTION_MODES = {
    "config": "as configured (config/promotion.yaml)",
    "auto": "auto: promote when the gate passes",
    "manual": "manual: wait for an approval in this UI",
    "dry_run": "dry run: decide and record, move no alias",
}
TRAINING_TIMEOUT = timedelta(hours=2)


def _spark_job(task_id: str, script: str, *extra_args: str) -> SparkJobOperator:
    return SparkJobOperator(
        task_id=task_id,
        conn_id=SPARK_CONN_ID,
        application=str(JOBS_DIR / script),
        application_args=["--source", "{{ params.source }}", "--day", DAY_XCOM, *extra_args],
        name=f"nightshift-{task_id}",
        doc_md=f"Runs `jobs/{script}`: as a client of the Spark Connect server of the connection "
               f"`nightshift_spark_connect` when it is defined, else with spark-submit.",
        execution_timeout=SPARK_JOB_TIMEOUT,
        # the driver JVM's options, by the day's raw input size (nightshift.spark.night_submit_opts)
        env_vars={"SPARK_SUBMIT_OPTS": "{{ night_submit_opts(params.source, ti.xcom_pull(task_ids='resolve_day')) }}"},
    )


def _night_deadline():
    hours = os.environ.get("NIGHTSHIFT_NIGHT_DEADLINE_HOURS")
    if not hours:
        return None
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(hours=float(hours)),
                         callback=AsyncCallback("nightshift.alerts.night_deadline_missed"))


@dag(
    dag_id="nightshift_nightly",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    # early, so that manual runs and backfills can process historical days (runs with a logical
    # date before start_date would silently run no task); catchup=False keeps the scheduler from
    # creating runs for the past on its own
    # (NIGHTSHIFT_START_DATE / NIGHTSHIFT_CATCHUP, read at parse time, let a deployment or a test
    # have the scheduler create the runs of past days)
    start_date=pendulum.parse(os.environ.get("NIGHTSHIFT_START_DATE") or "2000-01-01", tz="UTC"),
    catchup=os.environ.get("NIGHTSHIFT_CATCHUP", "false").lower() in ("1", "true", "yes"),
    # NIGHTSHIFT_END_DATE (read at parse time): no scheduled run after it (make demo: its
    # generated days are in the past, the scheduler must not add a run for yesterday)
    end_date=pendulum.parse(os.environ["NIGHTSHIFT_END_DATE"], tz="UTC") if os.environ.get("NIGHTSHIFT_END_DATE") else None,
    max_active_runs=1,
    # a night not done this long after it was queued raises a `night_deadline` alert (the triggerer
    # runs the callback). A deployment setting, NIGHTSHIFT_NIGHT_DEADLINE_HOURS, read at parse time
    # (make stack sets it): off by default, because `airflow dags test` (make demo, the tests) fails
    # at the end of a run of a DAG with a deadline in Airflow 3.3.2 (DeadlineAlert.get_by_id is given
    # the deadline's dict instead of its id).
    deadline=_night_deadline(),
    description="Nightly: ingest, validate and retrain one log source's day; promote the challenger only if it is really better",
    doc_md=__doc__,
    tags=["nightshift"],
    user_defined_macros={"night_submit_opts": night_submit_opts},
    default_args={"retries": 0, "execution_timeout": PYTHON_TASK_TIMEOUT},
    params={
        "source": source_param(),
        "day": day_param("Day to process", "YYYY-MM-DD; empty = the run's data interval start"),
        # one switch for how the decision is applied ("config" = what config/promotion.yaml says)
        "mode": Param("config", type="string", enum=list(PROMOTION_MODES), title="Promotion mode",
                      values_display=PROMOTION_MODES,
                      description="How tonight's decision is applied; dry run decides and records but moves no alias"),
        # set by the scoring DAG's champion watch when it asks for retraining
        "retrain_for_version": Param(None, type=["null", "string"], title="Retrain only while this version is champion",
                                     description="Empty for a normal night. The champion watch sets the failing "
                                                 "version; the run does nothing if another version is champion by then"),
    },
)
def nightshift_nightly():
    @task
    def resolve_day(params=None, data_interval_start=None, ti=None) -> str:
        """The day partition this run processes."""
        import time

        from nightshift.lake import check_day

        # the night report's clock (report_night): when this first task started
        ti.xcom_push(key="started_at", value=ti.start_date.timestamp() if ti.start_date else time.time())

        if params.get("retrain_for_version"):
            from airflow.sdk.exceptions import AirflowSkipException

            from nightshift.context import TaskContext
            from nightshift.monitoring import stale_retraining_request

            ctx = TaskContext.load()
            version = params["retrain_for_version"]
            # asked by the scoring DAG's champion watch or by nightshift_retraining (suspect predictions)
            stale = stale_retraining_request(ctx.settings, ctx.model_name(params["source"]), version,
                                             asked=f"this run was asked to retrain while v{version} was champion")
            if stale:
                raise AirflowSkipException(stale)
        if params.get("day"):
            return check_day(params["day"])
        if data_interval_start is None:
            raise ValueError("this run has no data interval: trigger it with the 'day' parameter (YYYY-MM-DD)")
        return data_interval_start.in_timezone("UTC").date().isoformat()

    @task(task_id="validate_parsed_lines")
    def validate_parsed_lines(day: str, params=None) -> dict:
        """The parsed lines' Great Expectations verdict (run inside the Spark job): fails the run,
        with the reasons as the headline, when it failed, is missing or describes other data."""
        return _require_passed(params["source"], day, "parsed_lines")

    @task(task_id="validate_session_features")
    def validate_session_features(day: str, params=None) -> dict:
        """The session features' verdict, checked the same way."""
        return _require_passed(params["source"], day, "session_features")

    @task
    def check_input_drift(day: str, params=None) -> dict:
        """Tonight's data against the champion's training days and the recent validated days, before
        any label of the day is used (``nightshift.drift``): the ``drift`` report; a flag alerts,
        it does not stop the night (the labels, when they come, judge the models)."""
        from nightshift.alerts import send_alert
        from nightshift.context import TaskContext
        from nightshift.drift import record_day_drift

        ctx = TaskContext.load()
        report = record_day_drift(ctx.settings, ctx.lake, params["source"], day, ctx.model_name(params["source"]))
        print(report["summary"])
        if report["flagged"]:
            send_alert("input_drift", params["source"], day, report["summary"], {"exceeded": report["exceeded"]},
                       data_root=ctx.settings.data_root)
        return {"flagged": report["flagged"], "summary": report["summary"]}

    @task(outlets=[VALIDATED_FEATURES])
    def publish_features(day: str, params=None, outlet_events=None) -> None:
        """Announce the day's validated features (an Asset event); the scoring DAG runs on it."""
        outlet_events[VALIDATED_FEATURES].extra = {"source": params["source"], "day": day}

    @task
    def plan_training(day: str, params=None) -> list[dict]:
        """Pick holdout and training days; one training job per candidate. Skips the rest of the
        run (recording why) when there is not enough validated labelled data. A source without
        labels needs one validated day: on its first, the detectors train on that day and are
        judged on it, in sample, by the flag-rate bounds only. So does a labelled source with no
        labelled day yet, unless its champion was judged with labels (``plan_for_source``)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from nightshift.candidate_kinds import DETECTOR_KINDS
        from nightshift.context import TaskContext
        from nightshift.promotion import record_skip
        from nightshift.sources import load_source
        from nightshift.training import plan_for_source

        ctx = TaskContext.load()
        config = ctx.training
        # a source declared `labels: none` trains the label-free detectors only; so does a labelled
        # source without a labelled day yet, unless its champion was judged with labels (plan.fallback)
        labelled = load_source(params["source"], ctx.settings.sources_dir).labelled

        def champion_version() -> str | None:
            from nightshift import registry

            champion = registry.champion(ctx.settings, ctx.model_name(params["source"]))
            return str(champion.version) if champion is not None else None

        plan = plan_for_source(ctx.lake, params["source"], day, config, ctx.policy.holdout_days, labelled,
                               champion_version)
        if plan.skip_reason:
            record_skip(ctx.settings, params["source"], day, plan.skip_reason, plan.to_dict())
            raise AirflowSkipException(plan.skip_reason)
        if plan.fallback:
            print(plan.fallback)
        return [{"plan": plan.to_dict(), "candidate": c["name"]} for c in config.candidates
                if plan.labelled or c["kind"] in DETECTOR_KINDS]

    @task(map_index_template="{{ candidate }}", execution_timeout=TRAINING_TIMEOUT)
    def train_candidate(job: dict) -> dict:
        """Train one candidate and log it to MLflow."""
        from airflow.sdk import get_current_context

        from nightshift.context import TaskContext
        from nightshift.training import TrainingPlan, train_candidate as train

        get_current_context()["candidate"] = job["candidate"]
        ctx = TaskContext.load()
        return train(ctx.settings, ctx.training, TrainingPlan.from_dict(job["plan"]), job["candidate"])

    @task(retries=2, retry_delay=timedelta(minutes=1))
    def evaluate_candidates(jobs: list[dict], results: list[dict], params=None, run_id=None) -> dict:
        """Run the promotion gate for the best candidate against the champion; register it (once per
        run: a retry or re-run reuses the version); decide. Fails (and is retried) when the registry
        is unreachable, rather than judging as if there were no champion."""
        from nightshift.context import TaskContext
        from nightshift.promotion import evaluate_candidates as evaluate
        from nightshift.training import TrainingPlan

        ctx = TaskContext.load()
        mode = ctx.policy.mode if params.get("mode") in (None, "config") else params["mode"]
        plan = TrainingPlan.from_dict(jobs[0]["plan"])
        return evaluate(ctx.settings, ctx.training, ctx.policy, plan, list(results), mode,
                        decided_by=f"airflow:{run_id}")

    @task.branch
    def route_decision(record: dict) -> str:
        """Manual mode with a passed gate waits for an operator; everything else is applied directly."""
        from nightshift.promotion import PENDING

        return "await_approval" if record["decision"] == PENDING else "promote_champion"

    await_approval = ApprovalOperator(
        task_id="await_approval",
        subject="Promote {{ ti.xcom_pull(task_ids='evaluate_candidates')['model_name'] }} "
                "v{{ ti.xcom_pull(task_ids='evaluate_candidates')['challenger_version'] }} to champion?",
        body="{{ ti.xcom_pull(task_ids='evaluate_candidates')['reason'] }}\n\nDecision record: "
             "{{ ti.xcom_pull(task_ids='evaluate_candidates')['decision_record']['path'] }}",
        response_timeout=timedelta(days=1),
    )

    # retried when the registry is unreachable; a re-run is a no-op once the alias has moved
    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, retries=3, retry_delay=timedelta(minutes=1),
          retry_exponential_backoff=2.0)
    def promote_champion(record: dict) -> dict:
        """Move the champion alias if the decision (or an operator's approval) says so; record it.
        Refused without retries when the champion changed since the evaluation (compare-and-swap)."""
        from airflow.sdk import get_current_context

        from nightshift.promotion import PENDING, apply_decision
        from nightshift.registry import ChampionChanged
        from nightshift.settings import load_settings

        approved_by = None
        if record["decision"] == PENDING:
            response = get_current_context()["ti"].xcom_pull(task_ids="await_approval") or {}
            approved_by = f"airflow-user:{(response.get('responded_by_user') or {}).get('name', 'unknown')}"
        try:
            return apply_decision(load_settings(), record, approved_by=approved_by)
        except ChampionChanged as exc:
            raise AirflowFailException(str(exc)) from exc

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report_night(params=None, dag_run=None, ti=None) -> dict:
        """Write the night report: the run's wall time so far, split into Airflow, Spark start-up,
        Spark work and training (runs whatever happened before it); a night that ended without a
        decision gets a ``failed`` decision report with the reason."""
        import datetime as dt

        from nightshift.context import TaskContext
        from nightshift.night import describe, night_report, record_failed_night, run_start

        day = ti.xcom_pull(task_ids="resolve_day")
        if not day:  # resolve_day failed or had nothing to do (its log says why): no night to report
            print("no day resolved: nothing to report")
            return {}
        ctx = TaskContext.load()
        trained = ti.xcom_pull(task_ids="train_candidate", default=None) or []   # none when training skipped
        trained = [trained] if isinstance(trained, dict) else [r for r in trained if isinstance(r, dict)]
        first_task = ti.xcom_pull(task_ids="resolve_day", key="started_at")
        started = run_start(dag_run.start_date, dt.datetime.fromtimestamp(first_task, dt.timezone.utc) if first_task else None)
        report = night_report(ctx.lake, params["source"], day, started, dt.datetime.now(dt.timezone.utc),
                              trained, run_id=dag_run.run_id)
        ctx.lake.write_report(params["source"], day, "night", report)
        print(describe(report))
        failed = record_failed_night(ctx.lake, params["source"], day, started, run_id=dag_run.run_id)
        if failed:
            from nightshift.alerts import send_alert

            print(f"no decision tonight: {failed['reason']}")
            send_alert("failed_night", params["source"], day, failed["reason"], {"run_id": dag_run.run_id},
                       data_root=ctx.settings.data_root)
        return report

    day = resolve_day()
    # one Spark application per night: ingest, features and both validations (a spark-submit
    # costs a JVM start-up, 9-13 s on 2 cores; see jobs/ingest.py); the two validate_* tasks
    # read the verdicts it wrote, so a failed validation fails the run with its reasons
    spark_night = _spark_job("ingest_and_validate", "ingest.py", "--with-features", "--validate")
    validated_parsed = validate_parsed_lines(day)
    validated_features = validate_session_features(day)
    jobs = plan_training(day)
    # drift is recorded before the scoring DAG is told the day is ready (it reads the drift report)
    drift = check_input_drift(day)
    day >> spark_night >> validated_parsed >> validated_features >> drift >> [publish_features(day), jobs]
    results = train_candidate.expand(job=jobs)
    record = evaluate_candidates(jobs, results)
    promoted = promote_champion(record)
    route_decision(record) >> [await_approval, promoted]
    await_approval >> promoted
    promoted >> report_night()


def _require_passed(source: str, day: str, suite: str) -> dict:
    """``nightshift.validation.require_passed``, failing the task without retries on a failed suite."""
    from nightshift.context import TaskContext
    from nightshift.validation import ValidationFailed, require_passed

    try:
        report = require_passed(TaskContext.load().lake, source, day, suite)
    except ValidationFailed as exc:
        raise AirflowFailException(str(exc)) from None
    for warning in report.get("warnings") or []:    # e.g. a template's share out of its learned bounds
        print(f"validation warning: {warning}")
    return report


def _with_night_links(dag):
    """Extra links on the tasks (``nightshift.task_links``): Data Docs where the data is validated,
    the MLflow run and decision record where the night is decided."""
    from nightshift.task_links import DataDocsLink, DecisionRecordLink, MlflowRunLink

    links = {
        "ingest_and_validate": (DataDocsLink(),),
        "validate_parsed_lines": (DataDocsLink(),),
        "validate_session_features": (DataDocsLink(),),
        "evaluate_candidates": (DecisionRecordLink(), MlflowRunLink()),
        "promote_champion": (DecisionRecordLink(), MlflowRunLink()),
        "report_night": (DecisionRecordLink(), MlflowRunLink(), DataDocsLink()),
    }
    for task_id, task_links in links.items():
        dag.get_task(task_id).operator_extra_links = task_links
    return dag


_with_night_links(nightshift_nightly())
