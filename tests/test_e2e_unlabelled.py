"""End to end for a source declared ``labels: none`` through the nightly DAG (``airflow dags test``,
real spark-submit, GX and MLflow): generated HDFS days with no labels file, the shipped hdfs source
copied into a temporary sources dir with ``labels: none`` (``NIGHTSHIFT_SOURCES_DIR``).

day 0: ingest, features and validation in the test's Spark session (the night a DAG run would
       skip for lack of history; the nightly module covers such a night)
day 1: through the DAG: validated; only the label-free detectors train; the first champion is
       promoted on its flag rate
day 2: through the DAG: the detectors train again and the champion is judged by flag rate and
       stability against the new challenger, without labels
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from nightshift_datagen.hdfs import Scenario, generate
from nightshift.lake import Lake
from nightshift.localenv import run_nightly_dag
from nightshift.settings import PROJECT_ROOT
from tests.conftest import prepare_validated_day

pytestmark = pytest.mark.e2e

SCENARIO = Scenario(start_day="2026-04-01", days=3, seed=21, blocks_per_day=400, anomaly_rate=0.03)
DAYS = [SCENARIO.day(i) for i in range(SCENARIO.days)]
DETECTORS = {"pca_detector", "isolation_forest", "invariants_miner"}


def test_an_unlabelled_source_runs_through_the_nightly_dag(tmp_path, spark, airflow_env, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    from nightshift.sources import load_source

    sources_dir = tmp_path / "sources"
    sources_dir.mkdir()
    declared = yaml.safe_load((PROJECT_ROOT / "sources" / "hdfs.yaml").read_text())
    assert "labels" not in declared     # the shipped hdfs source takes labels from labels.csv
    (sources_dir / "hdfs.yaml").write_text((PROJECT_ROOT / "sources" / "hdfs.yaml").read_text()
                                           + "\n# this test: the source never gets labels\nlabels: none\n")
    assert load_source("hdfs", sources_dir).labelled is False

    data_root = tmp_path / "data"
    generate(data_root, SCENARIO)
    lake = Lake(data_root)
    for day in DAYS:                     # the generator writes labels.csv; this source has none
        shutil.rmtree(lake.labels_file("hdfs", day).parent)
    assert not any(lake.labels_file("hdfs", d).exists() for d in DAYS)

    monkeypatch.setenv("NIGHTSHIFT_SOURCES_DIR", str(sources_dir))
    prepare_validated_day(spark, data_root, "hdfs", DAYS[0])
    env = airflow_env(tmp_path / "airflow", data_root)
    env["NIGHTSHIFT_SOURCES_DIR"] = str(sources_dir)
    for day in DAYS[1:]:
        log = tmp_path / "logs" / f"{day}.log"
        assert run_nightly_dag(day, env, log) == 0, log.read_text()[-3000:]

    # every night validated, with no labels anywhere
    for day in DAYS:
        for suite in ("parsed_lines", "session_features"):
            assert lake.read_report("hdfs", day, f"validation_{suite}")["success"] is True, (day, suite)
        features = lake.read_report("hdfs", day, "features")
        assert features["sessions"] > 300 and features["labelled_sessions"] == 0 and features["label_rate"] is None

    first, second = (lake.read_report("hdfs", d, "decision") for d in DAYS[1:])
    for record, day, train_days in ((first, DAYS[1], DAYS[:1]), (second, DAYS[2], DAYS[:2])):
        assert record["labelled"] is False and record["rule"] == "flag_rate (no labels)", record
        assert record["holdout_days"] == [day] and record["train_days"] == train_days
        assert set(record["candidates"]) == DETECTORS         # no supervised candidate was trained
        assert all(m["f1"] is None and 0 <= m["flag_rate"] <= 1 for m in record["candidates"].values())
        assert record["bootstrap"] is None and record["backtest"] == []
        # it says plainly that no labels judged it: only the flag rate and its stability
        assert "no labels" in record["limits"] and "no F1" in record["limits"] and "flag" in record["limits"]
        assert record["checks"][0]["name"] == "flag_rate" and "flags" in record["checks"][0]["detail"]
        md = (lake.reports_dir("hdfs", day) / "decision_record" / "decision.md").read_text()
        assert "What this decision cannot know" in md and "no F1" in md and "flag rate" in md
    assert first["decision"] == "promoted" and first["reason"].startswith("no champion yet; flag_rate: flags ")
    assert first["champion_before"] is None and first["champion_after"] == first["challenger_version"]
    assert second["champion_before"] == first["champion_after"]
    champion_check = next(c for c in second["checks"] if c["name"] == "champion_flag_rate")
    assert f"champion v{first['champion_after']} flags " in champion_check["detail"]
    assert second["staleness"] is not None
    assert second["decision"] in ("promoted", "kept"), second["reason"]
    assert ("recent nights' median" in second["reason"]
            and ("without labels there is no evidence" in second["reason"] if second["decision"] == "kept"
                 else "stable; champion" in second["reason"]))

    # the detectors were trained and logged to MLflow, each night, as label-free runs
    uri = env["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for record, day in ((first, DAYS[1]), (second, DAYS[2])):
        runs = mlflow.search_runs(experiment_names=["nightshift-hdfs"], output_format="list",
                                  filter_string=f"tags.`nightshift.day` = '{day}'")
        assert {r.data.tags["nightshift.candidate"] for r in runs} == DETECTORS and len(runs) == 3
        for r in runs:
            name = r.data.tags["nightshift.candidate"]
            assert r.data.tags["nightshift.labels"] == "none" and r.data.tags["nightshift.supervised"] == "false"
            assert r.data.tags["airflow.dag_id"] == "nightshift_nightly" and r.data.tags["airflow.task_id"] == "train_candidate"
            assert r.data.params["train_days"] == ",".join(record["train_days"])
            assert r.data.metrics["holdout_flag_rate"] == pytest.approx(record["candidates"][name]["flag_rate"])
            assert "holdout_f1" not in r.data.metrics
            assert record["candidate_runs"][name] == r.info.run_id
            assert "flag_rates.json" in {a.path for a in client.list_artifacts(r.info.run_id)}

    # a champion alias exists after the nights, and it is what the last decision says
    champion = client.get_model_version_by_alias("log_anomaly_hdfs", "champion")
    assert str(champion.version) == second["champion_after"]
    assert champion.tags["nightshift.holdout_f1"] == "unknown (no labels)"
    assert champion.tags["nightshift.gate_passed"] == "true"
    challenger = client.get_model_version("log_anomaly_hdfs", second["challenger_version"])
    assert challenger.tags["nightshift.decision"] == second["decision"]
    # ... and it scores sessions by the same contract as a supervised champion: [P(normal), P(anomalous)]
    import numpy as np
    import pandas as pd

    from nightshift.modeling import to_model_input

    sessions = to_model_input(pd.read_parquet(lake.features_dir("hdfs", DAYS[2])).head(20))
    out = np.asarray(mlflow.pyfunc.load_model("models:/log_anomaly_hdfs@champion").predict(sessions))
    assert out.shape == (20, 2) and np.allclose(out.sum(axis=1), 1.0)
