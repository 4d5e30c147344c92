"""End to end: the nightly DAG through real Airflow (``airflow dags test``), real spark-submit,
real Great Expectations and a real MLflow store, over three generated days:

day 0: normal, but only one labelled day exists -> training skipped, recorded
day 1: normal -> first champion promoted (floor passes)
day 2: corrupted (garbage, truncated lines, a format change) -> validation fails, champion unchanged
"""

from __future__ import annotations

import json

import pytest

from nightshift.generator import Scenario, generate
from nightshift.lake import Lake
from nightshift.localenv import local_environment, migrate_airflow_db, run_nightly_dag

pytestmark = pytest.mark.e2e

SCENARIO = Scenario(start_day="2026-03-01", days=3, seed=11, blocks_per_day=400, anomaly_rate=0.05, corrupt_day=2)
DAYS = [SCENARIO.day(i) for i in range(SCENARIO.days)]


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    """Generate the days and run the nightly DAG for each, in order (once for the module)."""
    base = tmp_path_factory.mktemp("e2e")
    data_root, airflow_home = base / "data", base / "airflow"
    summaries = generate(data_root, SCENARIO)
    env = local_environment(airflow_home=airflow_home, data_root=data_root)
    migrate_airflow_db(env, base / "logs" / "migrate.log")
    codes = {day: run_nightly_dag(day, env, base / "logs" / f"{day}.log") for day in DAYS}
    return {"lake": Lake(data_root), "env": env, "codes": codes, "logs": base / "logs",
            "generated": {s.day: s for s in summaries}}


def _log_tail(run, day):
    return (run["logs"] / f"{day}.log").read_text()[-3000:]


def test_good_days_succeed_and_the_corrupted_day_fails(pipeline_run):
    codes = pipeline_run["codes"]
    assert codes[DAYS[0]] == 0, _log_tail(pipeline_run, DAYS[0])
    assert codes[DAYS[1]] == 0, _log_tail(pipeline_run, DAYS[1])
    assert codes[DAYS[2]] != 0


def test_every_input_line_is_parsed_or_quarantined(pipeline_run, spark):
    lake = pipeline_run["lake"]
    for day in DAYS:
        raw_lines = sum(len(p.read_bytes().splitlines()) for p in lake.raw_dir("hdfs", day).iterdir())
        parsed = spark.read.parquet(str(lake.parsed_dir("hdfs", day))).count()
        quarantined = spark.read.parquet(str(lake.quarantine_dir("hdfs", day))).count()
        assert parsed + quarantined == raw_lines == pipeline_run["generated"][day].lines
        report = lake.read_report("hdfs", day, "ingest")
        assert (report["parsed_lines"], report["quarantined_lines"]) == (parsed, quarantined)
    assert lake.read_report("hdfs", DAYS[0], "ingest")["quarantined_lines"] == 0


def test_validation_results(pipeline_run):
    lake = pipeline_run["lake"]
    for day in DAYS[:2]:
        for suite in ("parsed_lines", "session_features"):
            assert lake.read_report("hdfs", day, f"validation_{suite}")["success"] is True
    failed = lake.read_report("hdfs", DAYS[2], "validation_parsed_lines")
    assert failed["success"] is False
    assert any("quarantine_rate" in reason for reason in failed["failures"]), failed["failures"]
    # the failed day keeps its data and goes no further
    assert lake.parsed_dir("hdfs", DAYS[2]).exists() and lake.quarantine_dir("hdfs", DAYS[2]).exists()
    assert not lake.features_dir("hdfs", DAYS[2]).exists()
    assert lake.read_report("hdfs", DAYS[2], "decision") is None
    assert (lake.gx_dir / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()


def test_training_decisions_and_champion_alias(pipeline_run):
    import mlflow
    from mlflow import MlflowClient

    lake = pipeline_run["lake"]
    first = lake.read_report("hdfs", DAYS[0], "decision")
    assert first["decision"] == "skipped" and "need 2" in first["reason"]
    second = lake.read_report("hdfs", DAYS[1], "decision")
    assert second["decision"] == "promoted", second["reason"]
    assert second["holdout_days"] == [DAYS[1]] and second["train_days"] == [DAYS[0]]
    assert set(second["candidates"]) == {"baseline_logreg", "random_forest", "gradient_boosting"}

    mlflow.set_tracking_uri(pipeline_run["env"]["MLFLOW_TRACKING_URI"])
    client = MlflowClient()
    runs = mlflow.search_runs(experiment_names=["nightshift-hdfs"], output_format="list")
    assert len(runs) == 3 and {r.data.tags["nightshift.candidate"] for r in runs} == set(second["candidates"])
    for r in runs:
        assert r.data.metrics["holdout_f1"] == pytest.approx(second["candidates"][r.data.tags["nightshift.candidate"]]["f1"])
    champion = client.get_model_version_by_alias("log_anomaly_hdfs", "champion")
    assert str(champion.version) == str(second["champion_after"]) == str(second["challenger_version"])
    assert champion.tags["nightshift.decision"] == "promoted"
    decision_artifact = json.loads(
        open(mlflow.artifacts.download_artifacts(run_id=second["best_run_id"], artifact_path="decision.json")).read()
    )
    assert decision_artifact["decision"] == "promoted"
    # the corrupted day changed nothing in the registry
    assert len(client.search_model_versions("name='log_anomaly_hdfs'")) == 1

    # the champion scores raw session event counts, including templates it never saw
    import pandas as pd

    model = mlflow.pyfunc.load_model("models:/log_anomaly_hdfs@champion")
    unseen = pd.DataFrame([{"line_count": 3, "duration_s": 1.0, "warn_count": 0, "error_count": 0,
                            "event_counts": json.dumps({"999999": 3})}])
    probabilities = model.predict(unseen)
    assert probabilities.shape == (1, 2) and abs(probabilities.sum() - 1.0) < 1e-9
