"""The night report: a night's wall time split into Airflow, Spark start-up, Spark work, training."""

from __future__ import annotations

import datetime as dt

import pytest

from nightshift.lake import Lake
from nightshift.night import describe, night_report, record_failed_night, run_start

DAY = "2026-11-01"
START = dt.datetime(2026, 11, 2, 0, 0, 0, tzinfo=dt.timezone.utc)


def _spark_report(lake: Lake, started: dt.datetime, startup: float, steps: dict[str, float], wall: float) -> None:
    lake.write_report("hdfs", DAY, "spark_ingest", {
        "job": "ingest", "exit_code": 0, "started_at": started.timestamp(), "ended_at": started.timestamp() + wall,
        "wall_s": wall, "startup_s": startup, "steps_s": steps, "work_s": sum(steps.values())})


def test_parts_add_up_to_the_wall_time_and_parallel_training_counts_once(tmp_path):
    lake = Lake(tmp_path)
    _spark_report(lake, START + dt.timedelta(seconds=3), 9.0, {"ingest": 5.0, "features": 2.0, "validate_parsed_lines": 3.0}, 21.0)
    t0 = START.timestamp()
    # two candidates at once (40-50 s and 45-60 s), one after (70-75 s): 20 + 5 s of training
    trained = [{"window": [t0 + 40, t0 + 50]}, {"window": [t0 + 45, t0 + 60]}, {"window": [t0 + 70, t0 + 75]}]
    report = night_report(lake, "hdfs", DAY, START, START + dt.timedelta(seconds=90), trained, run_id="r1")
    assert report["wall_s"] == 90.0
    assert report["parts"] == {"spark_startup_s": 9.0, "spark_work_s": 10.0, "spark_other_s": 2.0,
                               "training_s": 25.0, "airflow_and_other_s": 44.0}
    assert sum(report["parts"].values()) == pytest.approx(report["wall_s"])
    assert report["candidates_trained"] == 3
    assert describe(report).startswith("night 90.0 s = Spark start-up 9.0 + Spark work 10.0")


def test_a_spark_report_of_an_earlier_run_is_not_counted(tmp_path):
    lake = Lake(tmp_path)
    _spark_report(lake, START - dt.timedelta(hours=5), 9.0, {"ingest": 5.0}, 15.0)
    report = night_report(lake, "hdfs", DAY, START, START + dt.timedelta(seconds=30), [])
    assert report["parts"]["spark_startup_s"] == 0.0 and report["parts"]["airflow_and_other_s"] == 30.0
    assert report["spark_exit_code"] is None


def test_the_night_starts_with_the_run_unless_the_run_start_is_a_logical_date():
    first_task = START + dt.timedelta(seconds=4)
    assert run_start(START, first_task) == START                       # scheduler: queueing counts
    logical = dt.datetime(2005, 6, 5, tzinfo=dt.timezone.utc)           # airflow dags test
    assert run_start(logical, first_task) == first_task
    assert run_start(None, first_task) == first_task and run_start(START, None) == START


def test_a_night_without_a_decision_gets_a_failed_record_with_the_reason(tmp_path):
    lake = Lake(tmp_path)
    _spark_report(lake, START + dt.timedelta(seconds=3), 9.0, {"ingest": 5.0}, 21.0)
    lake.write_report("hdfs", DAY, "validation_parsed_lines", {
        "success": False, "failures": ["ingest: quarantine_rate observed 0.068", "lines: level not in set"]})
    record = record_failed_night(lake, "hdfs", DAY, START, run_id="r1")
    assert record["decision"] == "failed"
    assert record["reason"] == "validation failed: parsed_lines: ingest: quarantine_rate observed 0.068; lines: level not in set"
    assert lake.read_report("hdfs", DAY, "decision") == record
    # a run that decided keeps its decision
    lake.write_report("hdfs", DAY, "decision", {"decision": "kept"})
    assert record_failed_night(lake, "hdfs", DAY, START) is None
    assert lake.read_report("hdfs", DAY, "decision") == {"decision": "kept"}
    # a decision left by an earlier run does not count; no Spark report of this run: the job did not finish
    other = tmp_path / "other"
    lake = Lake(other)
    lake.write_report("hdfs", DAY, "decision", {"decision": "kept"})
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
    assert "Spark job" in record_failed_night(lake, "hdfs", DAY, later)["reason"]


def test_the_spark_report_is_matched_to_its_run_by_run_id_not_by_clocks(tmp_path):
    lake = Lake(tmp_path)
    # psutil's start time of the JVM can read a second before the run's clock: same run id counts
    _spark_report(lake, START - dt.timedelta(seconds=1), 6.0, {"ingest": 9.0}, 20.0)
    report = lake.read_report("hdfs", DAY, "spark_ingest")
    lake.write_report("hdfs", DAY, "spark_ingest", {**report, "airflow_run_id": "r1"})
    assert night_report(lake, "hdfs", DAY, START, START + dt.timedelta(seconds=40), [], run_id="r1")["parts"]["spark_work_s"] == 9.0
    # another run's report (a re-run of the day) never counts, however recent
    assert night_report(lake, "hdfs", DAY, START, START + dt.timedelta(seconds=40), [], run_id="r2")["parts"]["spark_work_s"] == 0.0


def test_the_spark_night_validates_the_window_s_labels_so_that_training_need_not(spark, tmp_path):
    """``run_spark_night`` validates the labels files of the training window that no report covers
    (tonight's, a late correction of an earlier day's), where GX is loaded already; a file already
    validated is left alone, a rejected one is reported and does not fail the night."""
    from nightshift_datagen.hdfs import Scenario, generate
    from nightshift.labels import labels_need_validation
    from tests.conftest import prepare_validated_day

    scenario = Scenario(start_day="2026-03-01", days=2, seed=5, blocks_per_day=60, anomaly_rate=0.1)
    generate(tmp_path, scenario)
    lake = Lake(tmp_path)
    first, second = scenario.day(0), scenario.day(1)
    assert labels_need_validation(None, lake, "hdfs", first)
    assert prepare_validated_day(spark, tmp_path, "hdfs", first)["labels"] == {first: "passed"}
    assert lake.read_report("hdfs", first, "validation_labels")["success"] is True
    assert not labels_need_validation(None, lake, "hdfs", first)
    lake.labels_file("hdfs", first).write_bytes(b"not a labels file\n")      # rewritten since
    verdicts = prepare_validated_day(spark, tmp_path, "hdfs", second)["labels"]
    assert verdicts[second] == "passed" and verdicts[first].startswith("rejected: "), verdicts
    assert lake.read_report("hdfs", first, "validation_labels")["success"] is False
