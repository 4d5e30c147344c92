"""A night's Spark part (:func:`run_spark_night`: ingest, features, validation in one Spark
application) and where a night's wall time went: Airflow, Spark start-up, Spark work, training.

The nightly DAG's last task (``report_night``, run whatever happened before it) writes the day's
``night`` report from what the night left behind: the Spark job's ``spark_ingest`` report (JVM
launch to a ready session, each step's time) and the candidates' training times, against the DAG
run's start. What is left over is Airflow's share (task processes, scheduling gaps) plus the small
Python tasks (plan, evaluate, promote), which Airflow does not let a task time from inside.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging

log = logging.getLogger("nightshift.night")


def run_spark_night(spark, settings, lake, source, day: str, with_features: bool = True, validate: bool = True,
                    timer=None) -> dict[str, dict | None]:
    """The Spark work of one night for one source and day, in the given session: ingest (parse,
    mask, template ids, quarantine), then optionally the session features, then optionally both
    Great Expectations suites (``session_features`` only after ``parsed_lines`` passed). Each step
    is timed by ``timer`` (``nightshift.jobrunner.JobTimer``) when given. Returns the reports;
    the verdicts are also in the day's ``validation_*`` reports."""
    from nightshift.features import run_features
    from nightshift.ingest import run_ingest
    from nightshift.validation import run_validation

    step = timer.step if timer is not None else (lambda name: contextlib.nullcontext())
    out: dict[str, dict | None] = {}
    with step("ingest"):
        # finish any commit a crashed run left (ingest and features also do this for their day)
        for journal in lake.recover(source.name, day):
            log.warning("finished an interrupted commit: %s", journal)
        out["ingest"] = run_ingest(spark, lake, source, day, settings=settings)   # settings: the lock backend
    if with_features:
        with step("features"):
            out["features"] = run_features(spark, lake, source.name, day)
    if validate:
        for suite in ("parsed_lines", "session_features"):
            with step(f"validate_{suite}"):
                report = out[f"validation_{suite}"] = run_validation(spark, settings, lake, source, day, suite)
            if not report["success"]:
                print(f"VALIDATION FAILED ({suite}, {source.name} {day}):", *report["failures"], sep="\n  ")
                break
            print(f"validation passed ({suite}, {source.name} {day})")
        else:
            with step("validate_labels"):
                out["labels"] = prevalidate_labels(settings, lake, source.name, day)
    return out


def prevalidate_labels(settings, lake, source: str, day: str) -> dict[str, str]:
    """Validate the labels files of the training window ending on ``day`` that no report covers
    yet (tonight's, and late arrivals), here where Great Expectations is already loaded: the
    ``plan_training`` task then finds them validated instead of importing GX itself (5-8 s of a
    night's critical path on this machine). The verdicts go to each day's ``validation_labels``
    report, as when training validates them; a rejected file does not fail this job (training
    reports it and leaves the day out). Returns ``{day: "passed" | "rejected: ..."}``."""
    from nightshift.labels import LabelsRejected, labels_need_validation, validated_labels
    from nightshift.training import load_training_config

    window = load_training_config(settings.config_dir).window_days
    last = dt.date.fromisoformat(day)
    verdicts = {}
    for k in range(window):
        d = (last - dt.timedelta(days=k)).isoformat()
        if not labels_need_validation(settings, lake, source, d):
            continue
        try:
            validated_labels(settings, lake, source, d)
            verdicts[d] = "passed"
        except LabelsRejected as exc:
            verdicts[d] = f"rejected: {exc}"
        print(f"labels of {source} {d}: {verdicts[d]}")
    return verdicts


# a run's start_date more than this before its first task is not when it started (see run_start)
MAX_QUEUE_S = 3600.0


def run_start(dag_run_start: dt.datetime | None, first_task_start: dt.datetime | None) -> dt.datetime:
    """When the night started: the DAG run's start, so the wait before its first task counts as
    Airflow's share. ``airflow dags test`` sets a run's start_date to its logical date (possibly
    years ago); a start more than an hour before the first task is such a date, and the first
    task's start is used instead."""
    if first_task_start is None:
        return dag_run_start
    if dag_run_start is None or not (0 <= (first_task_start - dag_run_start).total_seconds() <= MAX_QUEUE_S):
        return first_task_start
    return dag_run_start


def night_report(lake, source: str, day: str, run_started: dt.datetime, now: dt.datetime,
                 trained: list[dict] | None = None, run_id: str | None = None) -> dict:
    """The ``night`` report for ``day``: the run's wall time split into parts (seconds)."""
    wall = max(0.0, (now - run_started).total_seconds())
    spark = lake.read_report(source, day, "spark_ingest") or {}
    if not _same_run(spark, run_started, run_id):    # left by an earlier run of the day
        spark = {}
    startup = float(spark.get("startup_s", 0.0))
    work = float(spark.get("work_s", 0.0))
    spark_other = max(0.0, float(spark.get("wall_s", 0.0)) - startup - work)   # stop, Python imports, report
    windows = [r["window"] for r in (trained or []) if isinstance(r, dict) and r.get("window")]
    # mapped training tasks may run at once (AIRFLOW__CORE__PARALLELISM): the night spends the
    # union of their windows, not the sum
    training_s = _union_seconds(windows)
    parts = {
        "spark_startup_s": round(startup, 1),
        "spark_work_s": round(work, 1),
        "spark_other_s": round(spark_other, 1),
        "training_s": round(training_s, 1),
    }
    parts["airflow_and_other_s"] = round(max(0.0, wall - sum(parts.values())), 1)
    return {
        "source": source,
        "day": day,
        "run_id": run_id,
        "wall_s": round(wall, 1),
        "parts": parts,
        "spark_steps_s": spark.get("steps_s", {}),
        "spark_exit_code": spark.get("exit_code"),
        "candidates_trained": len(windows),
    }


# psutil's process start times derive from the boot time in whole seconds: a JVM launched just
# after the run's clock started can look up to a second or two older
CLOCK_SLACK_S = 5.0


def _same_run(spark: dict, run_started: dt.datetime, run_id: str | None) -> bool:
    """Whether a ``spark_ingest`` report belongs to this run: by the Airflow run id it recorded,
    else (older reports, a job run outside Airflow) by its start time."""
    if not spark:
        return False
    if spark.get("airflow_run_id") and run_id:
        return spark["airflow_run_id"] == run_id
    return spark.get("started_at", 0) >= run_started.timestamp() - CLOCK_SLACK_S


def describe(report: dict) -> str:
    """One line: ``night 38.2 s = Spark start-up 9.1 + Spark work 11.3 + ... + Airflow and other 12.0``."""
    names = {"airflow_and_other_s": "Airflow and other", "spark_startup_s": "Spark start-up",
             "spark_work_s": "Spark work", "spark_other_s": "Spark shutdown/other", "training_s": "training"}
    parts = " + ".join(f"{names[k]} {v:.1f}" for k, v in report["parts"].items())
    return f"night {report['wall_s']:.1f} s = {parts}"


def _union_seconds(windows: list[list[float]]) -> float:
    """Seconds covered by the union of ``[start, end]`` intervals."""
    total, reach = 0.0, None
    for start, end in sorted(windows):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def record_failed_night(lake, source: str, day: str, run_started: dt.datetime, run_id: str | None = None) -> dict | None:
    """When this run ended without a decision for the day (validation failed, a task failed),
    write the day's decision report as ``failed`` with the reason in one line, so every night
    has a decision record; returns it (None when the run made its decision)."""
    from nightshift.lake import report_mtime

    decided_at = report_mtime(lake, source, day, "decision")
    if decided_at is not None and decided_at >= run_started.timestamp():
        return None
    reason = "the run stopped before a decision (see the failed task's log)"
    spark = lake.read_report(source, day, "spark_ingest") or {}
    if not _same_run(spark, run_started, run_id) or spark.get("exit_code") != 0:
        reason = "the Spark job (ingest, features, validation) did not finish: see ingest_and_validate's log"
    for suite in ("parsed_lines", "session_features"):
        report = lake.read_report(source, day, f"validation_{suite}")
        if report and not report["success"]:
            reason = f"validation failed: {suite}: " + "; ".join(report["failures"][:2])
            break
    record = {"source": source, "day": day, "decision": "failed", "reason": reason, "run_id": run_id}
    lake.write_report(source, day, "decision", record)
    return record
