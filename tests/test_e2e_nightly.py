"""End to end: the nightly DAG through real Airflow (``airflow dags test``), real spark-submit,
real Great Expectations and a real MLflow store, over six generated days, then a rollback:

day 0: normal, but only one labelled day exists -> training skipped, recorded
day 1: normal -> first champion promoted (floors pass)
day 2: corrupted (garbage, truncated lines, a format change) -> validation fails, champion unchanged
day 3: drift (a new software version): candidates trained on old days fail the gate -> rejected
days 4-5: after the drift: retrained on the new version, a challenger clearly wins -> promoted
(on day 4 the out-of-sample backtest on the drift day may still hold it back; by day 5 both
backtest days are post-drift)
then the rollback DAG moves the champion back to 'previous', and the promotion log shows all of it.
"""

from __future__ import annotations

import json

import pytest

from nightshift_datagen.hdfs import Scenario, generate
from nightshift.ingest import read_parsed_lines
from nightshift.lake import Lake
from nightshift.localenv import run_dag, run_nightly_dag

pytestmark = pytest.mark.e2e

SCENARIO = Scenario(start_day="2026-03-01", days=6, seed=11, blocks_per_day=400, anomaly_rate=0.05, corrupt_day=2,
                    drift_day=3)
DAYS = [SCENARIO.day(i) for i in range(SCENARIO.days)]


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, airflow_env):
    """Generate the days and run the nightly DAG for each, in order (once for the module)."""
    base = tmp_path_factory.mktemp("e2e")
    data_root, airflow_home = base / "data", base / "airflow"
    summaries = generate(data_root, SCENARIO)
    env = airflow_env(airflow_home, data_root)
    codes = {day: run_nightly_dag(day, env, base / "logs" / f"{day}.log") for day in DAYS}
    codes["rollback"] = run_dag("nightshift_rollback", "2026-03-07", {"source": "hdfs", "reason": "e2e: undo"}, env,
                                base / "logs" / "rollback.log")
    return {"lake": Lake(data_root), "env": env, "codes": codes, "logs": base / "logs",
            "generated": {s.day: s for s in summaries}}


def _log_tail(run, day):
    return (run["logs"] / f"{day}.log").read_text()[-3000:]


def test_good_days_succeed_and_the_corrupted_day_fails(pipeline_run):
    codes = pipeline_run["codes"]
    for day in [DAYS[0], DAYS[1], DAYS[3], DAYS[4], DAYS[5], "rollback"]:
        assert codes[day] == 0, _log_tail(pipeline_run, day)
    assert codes[DAYS[2]] != 0


def test_every_input_line_is_parsed_or_quarantined(pipeline_run, spark):
    lake = pipeline_run["lake"]
    for day in DAYS:
        raw_lines = sum(len(p.read_bytes().splitlines()) for p in lake.raw_dir("hdfs", day).iterdir())
        parsed = read_parsed_lines(spark, lake.parsed_dir("hdfs", day)).count()
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
    # the failed day keeps its data (its features were built in the same Spark application as
    # ingest) and goes no further: features not validated, a "failed" decision, never trained on later
    assert lake.parsed_dir("hdfs", DAYS[2]).exists() and lake.quarantine_dir("hdfs", DAYS[2]).exists()
    assert lake.features_dir("hdfs", DAYS[2]).exists()
    assert lake.read_report("hdfs", DAYS[2], "validation_session_features") is None
    failed_night = lake.read_report("hdfs", DAYS[2], "decision")   # every night has a decision record
    assert failed_night["decision"] == "failed" and failed_night["reason"].startswith("validation failed: parsed_lines: ")
    night = lake.read_report("hdfs", DAYS[2], "night")
    assert night["spark_steps_s"].keys() == {"ingest", "features", "validate_parsed_lines"}   # stopped after it failed
    later = [lake.read_report("hdfs", d, "decision") for d in DAYS[3:]]
    trained = [r for r in later if r and r.get("train_days")]
    assert trained, later
    for decision in trained:
        assert DAYS[2] not in decision["train_days"] + decision["holdout_days"], decision
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
    assert set(second["candidates"]) == {"baseline_logreg", "decision_tree", "random_forest", "gradient_boosting",
                                         "pca_detector", "isolation_forest"}

    uri = pipeline_run["env"]["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)      # earlier tests may have left MLflow's global registry URI elsewhere
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    runs = mlflow.search_runs(experiment_names=["nightshift-hdfs"], output_format="list",
                              filter_string=f"tags.`nightshift.day` = '{DAYS[1]}'")
    assert len(runs) == 6 and {r.data.tags["nightshift.candidate"] for r in runs} == set(second["candidates"])
    for r in runs:
        assert r.data.metrics["holdout_f1"] == pytest.approx(second["candidates"][r.data.tags["nightshift.candidate"]]["f1"])
        # every run names the Airflow run and task that trained it
        assert r.data.tags["airflow.dag_id"] == "nightshift_nightly" and r.data.tags["airflow.task_id"] == "train_candidate"
        assert r.data.tags["airflow.url"].endswith(r.data.tags["airflow.run_id"].replace(":", "%3A").replace("+", "%2B"))
    v1 = client.get_model_version("log_anomaly_hdfs", second["challenger_version"])
    assert v1.tags["nightshift.decision"] == "promoted" and v1.tags["nightshift.gate_passed"] == "true"
    assert v1.description.startswith(f"**promoted** on the night of {DAYS[1]} (hdfs); champion after: v{v1.version}")
    decision_artifact = json.loads(
        open(mlflow.artifacts.download_artifacts(run_id=second["best_run_id"], artifact_path="decision.json")).read()
    )
    assert decision_artifact["decision"] == "promoted"
    assert mlflow.artifacts.download_artifacts(run_id=second["best_run_id"], artifact_path="decision_record/precision_recall.png")
    # the corrupted day registered nothing: the next version comes from the drift day
    versions = {v.tags["nightshift.day"]: v.version for v in client.search_model_versions("name='log_anomaly_hdfs'")}
    assert DAYS[2] not in versions and set(versions) == {DAYS[1], DAYS[3], DAYS[4], DAYS[5]}

    # the champion scores raw session event counts, including templates it never saw
    import pandas as pd

    model = mlflow.pyfunc.load_model(f"models:/log_anomaly_hdfs/{second['challenger_version']}")
    unseen = pd.DataFrame([{"line_count": 3, "duration_s": 1.0, "warn_count": 0, "error_count": 0,
                            "event_counts": json.dumps({"999999": 3})}])
    probabilities = model.predict(unseen)
    assert probabilities.shape == (1, 2) and abs(probabilities.sum() - 1.0) < 1e-9


def test_drift_rejection_promotion_rollback_and_the_log(pipeline_run):
    from mlflow import MlflowClient
    import mlflow

    from nightshift import promotion_log

    lake = pipeline_run["lake"]
    drift = lake.read_report("hdfs", DAYS[3], "decision")
    assert drift["decision"] == "kept" and drift["champion_after"] == drift["champion_before"], drift["reason"]
    later = [lake.read_report("hdfs", d, "decision") for d in DAYS[4:]]
    promoted = [r for r in later if r["decision"] == "promoted"]
    assert promoted, [r["reason"] for r in later]
    after = promoted[0]
    # the default rule (non_inferior): significantly better on the pooled days, or non-inferior with a better
    # point estimate or against a stale champion; the check names which clause passed
    bootstrap = next(c for c in after["checks"] if c["name"] == "bootstrap")
    assert bootstrap["via"] and all(c["passed"] for c in after["checks"]), after["reason"]
    assert after["bootstrap"]["lower"] > -after["policy"]["non_inferiority_delta"]
    assert DAYS[3] in after["train_days"]

    # the log holds every alias move, in order: each promotion, then the rollback to 'previous'
    second = lake.read_report("hdfs", DAYS[1], "decision")
    chain = [second["challenger_version"]] + [r["challenger_version"] for r in promoted]
    entries = promotion_log.read(lake.root, "log_anomaly_hdfs")
    expected = [("promote", None, chain[0])] + [("promote", a, b) for a, b in zip(chain, chain[1:])]
    expected.append(("rollback", chain[-1], chain[-2]))
    assert [(e["action"], e["from_version"], e["to_version"]) for e in entries] == expected
    # the rollback is recorded as the user who triggered it (`airflow dags test` runs as dag_test)
    assert entries[-1]["decided_by"].startswith("airflow-user:dag_test") and entries[-1]["reason"] == "e2e: undo"

    uri = pipeline_run["env"]["MLFLOW_TRACKING_URI"]
    champion = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias("log_anomaly_hdfs", "champion")
    assert str(champion.version) == chain[-2]                                  # rolled back one step
