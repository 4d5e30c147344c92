"""
### Nightshift nightly retraining

Processes one day of one log source, end to end:

`resolve_day` → `ingest_logs` (Spark) → `validate_parsed_lines` (Great Expectations) →
`build_features` (Spark) → `validate_session_features` → `plan_training` →
`train_candidate` (one mapped task per candidate, MLflow runs) → `evaluate_candidates` →
`promote_champion` (MLflow registry aliases).

* **Day**: the run's data interval start (a scheduled run at midnight processes the day that just
  ended); a manual trigger may set `day` instead.
* **A failed validation** fails the run for that day: nothing is trained or promoted, all data is
  kept, and the reasons are in the task log and in `reports/source=<s>/dt=<day>/validation_*.json`.
* **Dry run** decides and records, but moves no alias.
* Spark jobs are submitted with `spark-submit` to the master of the Airflow connection
  `nightshift_spark` (local[2] on a laptop, the Spark master in docker-compose).
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"
SPARK_CONN_ID = "nightshift_spark"
DAY_XCOM = "{{ ti.xcom_pull(task_ids='resolve_day') }}"


def _spark_job(task_id: str, script: str, *extra_args: str) -> SparkSubmitOperator:
    return SparkSubmitOperator(
        task_id=task_id,
        conn_id=SPARK_CONN_ID,
        application=str(JOBS_DIR / script),
        application_args=["--source", "{{ params.source }}", "--day", DAY_XCOM, *extra_args],
        name=f"nightshift-{task_id}",
        doc_md=f"Runs `jobs/{script}` with spark-submit.",
    )


@dag(
    dag_id="nightshift_nightly",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["nightshift"],
    default_args={"retries": 0},
    params={
        "source": Param("hdfs", type="string", pattern="^[a-z][a-z0-9_]*$", title="Log source",
                        description="Name of a source declared in sources/<name>.yaml"),
        "day": Param(None, type=["null", "string"], format="date", title="Day to process",
                     description="YYYY-MM-DD; empty = the run's data interval start"),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Train and decide, record the decision, but move no registry alias"),
    },
)
def nightshift_nightly():
    @task
    def resolve_day(params=None, data_interval_start=None) -> str:
        """The day partition this run processes."""
        from nightshift.lake import check_day

        if params.get("day"):
            return check_day(params["day"])
        if data_interval_start is None:
            raise ValueError("this run has no data interval: trigger it with the 'day' parameter (YYYY-MM-DD)")
        return data_interval_start.in_timezone("UTC").date().isoformat()

    @task
    def plan_training(day: str, params=None) -> list[dict]:
        """Pick holdout and training days; one training job per candidate. Skips the rest of the
        run (recording why) when there is not enough validated labelled data."""
        from airflow.sdk.exceptions import AirflowSkipException

        from nightshift.lake import Lake
        from nightshift.promotion import record_skip
        from nightshift.settings import load_settings
        from nightshift.training import load_training_config, plan_training as make_plan

        settings = load_settings()
        config = load_training_config(settings.config_dir)
        plan = make_plan(Lake(settings.data_root), params["source"], day, config)
        if plan.skip_reason:
            record_skip(settings, params["source"], day, plan.skip_reason, plan.to_dict())
            raise AirflowSkipException(plan.skip_reason)
        return [{"plan": plan.to_dict(), "candidate": c["name"]} for c in config.candidates]

    @task(map_index_template="{{ candidate }}")
    def train_candidate(job: dict) -> dict:
        """Train one candidate and log it to MLflow."""
        from airflow.sdk import get_current_context

        from nightshift.settings import load_settings
        from nightshift.training import TrainingPlan, load_training_config, train_candidate as train

        get_current_context()["candidate"] = job["candidate"]
        settings = load_settings()
        config = load_training_config(settings.config_dir)
        return train(settings, config, TrainingPlan.from_dict(job["plan"]), job["candidate"])

    @task
    def evaluate_candidates(jobs: list[dict], results: list[dict], params=None) -> dict:
        """Score the champion on the same holdout, register the best candidate, decide."""
        from nightshift.promotion import evaluate_candidates as evaluate
        from nightshift.settings import load_settings
        from nightshift.training import TrainingPlan, load_training_config

        settings = load_settings()
        config = load_training_config(settings.config_dir)
        plan = TrainingPlan.from_dict(jobs[0]["plan"])
        return evaluate(settings, config, plan, list(results), bool(params["dry_run"]))

    @task
    def promote_champion(record: dict) -> dict:
        """Move the champion alias if the decision says so; record the decision."""
        from nightshift.promotion import apply_decision
        from nightshift.settings import load_settings
        from nightshift.training import load_training_config

        settings = load_settings()
        return apply_decision(settings, load_training_config(settings.config_dir), record)

    day = resolve_day()
    ingest = _spark_job("ingest_logs", "ingest.py")
    validate_parsed = _spark_job("validate_parsed_lines", "validate.py", "--suite", "parsed_lines")
    features = _spark_job("build_features", "features.py")
    validate_features = _spark_job("validate_session_features", "validate.py", "--suite", "session_features")
    jobs = plan_training(day)
    day >> ingest >> validate_parsed >> features >> validate_features >> jobs
    results = train_candidate.expand(job=jobs)
    promote_champion(evaluate_candidates(jobs, results))


nightshift_nightly()
