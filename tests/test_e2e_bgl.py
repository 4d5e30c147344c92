"""End to end for the second shipped source: BGL (sessions = node + 1-hour window, labels carried
by the lines themselves) through the whole nightly DAG, not only the ingest job."""

from __future__ import annotations

import json
import sqlite3

import pytest

from nightshift_datagen.bgl import BglScenario, generate
from nightshift.lake import Lake
from nightshift.localenv import run_nightly_dag
from nightshift.spark import SHORT_JOB_JVM_OPTIONS
from tests.conftest import prepare_validated_day

pytestmark = pytest.mark.e2e

SCENARIO = BglScenario(start_day="2005-06-03", days=2, seed=5, lines_per_day=8000, nodes=256, anomaly_rate=0.08)
DAYS = [SCENARIO.day(i) for i in range(SCENARIO.days)]


def test_bgl_runs_through_the_nightly_dag(tmp_path, spark, airflow_env):
    from mlflow import MlflowClient

    data_root = tmp_path / "data"
    generate(data_root, SCENARIO)
    env = airflow_env(tmp_path / "airflow", data_root)
    # the first day's data in-process (the nightly scenario covers a night without enough history);
    # the second night runs through the DAG: BGL's ingest, features, validation, training, promotion
    prepare_validated_day(spark, data_root, "bgl", DAYS[0])
    log = tmp_path / "logs" / f"{DAYS[1]}.log"
    assert run_nightly_dag(DAYS[1], env, log, source="bgl") == 0, log.read_text()[-3000:]

    lake = Lake(data_root)
    for day in DAYS:
        ingest = lake.read_report("bgl", day, "ingest")
        assert ingest["parsed_lines"] + ingest["quarantined_lines"] == ingest["input_lines"]
        features = lake.read_report("bgl", day, "features")
        assert features["labels_file"] is False and features["labelled_sessions"] == features["sessions"] > 0
        assert 0 < features["anomalous_sessions"] < features["sessions"]
    sessions = spark.read.parquet(str(lake.features_dir("bgl", DAYS[1]))).select("session_id").collect()
    assert all("@" + DAYS[1] + "T" in r.session_id for r in sessions)

    # spark-submit (no Spark Connect connection): the driver JVM got the short-job options for its
    # day's size, as Airflow rendered them into SPARK_SUBMIT_OPTS (nightshift.spark.night_submit_opts)
    spark_report = lake.read_report("bgl", DAYS[1], "spark_ingest")
    assert spark_report["spark_connect"] is None
    assert {"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"} <= set(spark_report["jvm_options"]), spark_report
    with sqlite3.connect(tmp_path / "airflow" / "airflow.db") as db:
        rendered = [json.loads(fields)["env_vars"]["SPARK_SUBMIT_OPTS"] for (fields,) in db.execute(
            "SELECT rendered_fields FROM rendered_task_instance_fields WHERE task_id = 'ingest_and_validate'")]
    assert rendered and all(opts.endswith(SHORT_JOB_JVM_OPTIONS) for opts in rendered), rendered

    decision = lake.read_report("bgl", DAYS[1], "decision")
    assert decision["decision"] == "promoted", decision["reason"]
    uri = env["MLFLOW_TRACKING_URI"]
    champion = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias("log_anomaly_bgl", "champion")
    assert str(champion.version) == str(decision["champion_after"])
