"""End to end for a source declared ``labels: none`` through the nightly DAG (``airflow dags test``,
real spark-submit, GX and MLflow): generated HDFS days with no labels file, the shipped hdfs source
copied into a temporary sources dir with ``labels: none`` (``NIGHTSHIFT_SOURCES_DIR``).

day 0: through the DAG: the source's first validated day; only the label-free detectors train, on
       that day, and the first champion is promoted on its flag rate on the same day: in sample, by
       the flag-rate bounds only (stability needs a night the detectors did not train on)
day 1: through the DAG: trained on day 0, day 1 held out; the champion of day 0 is judged by flag
       rate and stability against the new challenger, without labels
day 2: the same, trained on days 0-1
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from nightshift_datagen.hdfs import Scenario, generate
from nightshift.lake import Lake
from nightshift.localenv import run_nightly_dag
from nightshift.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e

SCENARIO = Scenario(start_day="2026-04-01", days=3, seed=21, blocks_per_day=400, anomaly_rate=0.03)
DAYS = [SCENARIO.day(i) for i in range(SCENARIO.days)]
DETECTORS = {"pca_detector", "isolation_forest", "invariants_miner"}


def test_an_unlabelled_source_runs_through_the_nightly_dag(tmp_path, airflow_env, monkeypatch):
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
    env = airflow_env(tmp_path / "airflow", data_root, spark_connect=True)
    env["NIGHTSHIFT_SOURCES_DIR"] = str(sources_dir)
    for day in DAYS:
        log = tmp_path / "logs" / f"{day}.log"
        assert run_nightly_dag(day, env, log) == 0, log.read_text()[-3000:]

    # every night validated, with no labels anywhere
    for day in DAYS:
        for suite in ("parsed_lines", "session_features"):
            assert lake.read_report("hdfs", day, f"validation_{suite}")["success"] is True, (day, suite)
        features = lake.read_report("hdfs", day, "features")
        assert features["sessions"] > 300 and features["labelled_sessions"] == 0 and features["label_rate"] is None

    first, second, third = records = [lake.read_report("hdfs", d, "decision") for d in DAYS]
    for record, day, train_days in zip(records, DAYS, (DAYS[:1], DAYS[:1], DAYS[:2])):
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

    # the first validated day: trained on and judged on the same day, in sample, by the bounds only
    assert first["in_sample"] is True and first["train_days"] == first["holdout_days"] == [DAYS[0]]
    assert first["decision"] == "promoted", first["reason"]
    assert first["reason"].startswith("judged in sample, by flag rate only: the detectors trained on this day")
    assert "stability is not judged tonight" in first["reason"]
    assert "no champion yet; flag_rate: in sample, flags " in first["reason"]
    assert first["checks"][0]["in_sample"] and not first["checks"][0]["stability_judged"]
    assert "stability not judged" in first["checks"][0]["detail"] and "Stability is not judged" in first["limits"]
    assert all(m["recent_median"] is None for m in first["candidates"].values())
    md = (lake.reports_dir("hdfs", DAYS[0]) / "decision_record" / "decision.md").read_text()
    assert "in sample: the same day, judged by the flag-rate bounds only" in md
    assert first["champion_before"] is None and first["champion_after"] == first["challenger_version"]

    # the later nights: out of sample, judged by flag rate and stability against the champion, as before
    for before, record in ((first, second), (second, third)):
        assert record["in_sample"] is False and "in sample" not in record["reason"], record["reason"]
        assert record["checks"][0]["stability_judged"] and "Stability is not judged" not in record["limits"]
        assert record["champion_before"] == before["champion_after"]
        champion_check = next(c for c in record["checks"] if c["name"] == "champion_flag_rate")
        assert f"champion v{before['champion_after']} flags " in champion_check["detail"]
        assert record["staleness"] is not None
        assert record["decision"] in ("promoted", "kept"), record["reason"]
        assert ("recent nights' median" in record["reason"]
                and ("without labels there is no evidence" in record["reason"] if record["decision"] == "kept"
                     else "stable; champion" in record["reason"]))
    # day 1's challenger trained on the same day as day 0's champion: not more recent, so not stale
    assert second["staleness"]["stale"] is False

    # the detectors were trained and logged to MLflow, each night, as label-free runs
    uri = env["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for record, day in zip(records, DAYS):
        runs = mlflow.search_runs(experiment_names=["nightshift-hdfs"], output_format="list",
                                  filter_string=f"tags.`nightshift.day` = '{day}'")
        assert {r.data.tags["nightshift.candidate"] for r in runs} == DETECTORS and len(runs) == 3
        for r in runs:
            name = r.data.tags["nightshift.candidate"]
            assert r.data.tags["nightshift.labels"] == "none" and r.data.tags["nightshift.supervised"] == "false"
            assert r.data.tags["nightshift.in_sample"] == str(day == DAYS[0]).lower()
            assert r.data.tags["airflow.dag_id"] == "nightshift_nightly" and r.data.tags["airflow.task_id"] == "train_candidate"
            assert r.data.params["train_days"] == ",".join(record["train_days"])
            assert r.data.metrics["holdout_flag_rate"] == pytest.approx(record["candidates"][name]["flag_rate"])
            assert "holdout_f1" not in r.data.metrics
            assert record["candidate_runs"][name] == r.info.run_id
            assert "flag_rates.json" in {a.path for a in client.list_artifacts(r.info.run_id)}

    # a champion alias exists after the nights, and it is what the last decision says
    champion = client.get_model_version_by_alias("log_anomaly_hdfs", "champion")
    assert str(champion.version) == third["champion_after"]
    assert champion.tags["nightshift.holdout_f1"] == "unknown (no labels)"
    assert champion.tags["nightshift.gate_passed"] == "true"
    challenger = client.get_model_version("log_anomaly_hdfs", third["challenger_version"])
    assert challenger.tags["nightshift.decision"] == third["decision"]
    first_champion = client.get_model_version("log_anomaly_hdfs", first["challenger_version"])
    assert first_champion.tags["nightshift.decision"] == "promoted"
    assert first_champion.tags["nightshift.reason"].startswith("judged in sample, by flag rate only")
    # ... and it scores sessions by the same contract as a supervised champion: [P(normal), P(anomalous)]
    import numpy as np
    import pandas as pd

    from nightshift.modeling import to_model_input

    sessions = to_model_input(pd.read_parquet(lake.features_dir("hdfs", DAYS[2])).head(20))
    out = np.asarray(mlflow.pyfunc.load_model("models:/log_anomaly_hdfs@champion").predict(sessions))
    assert out.shape == (20, 2) and np.allclose(out.sum(axis=1), 1.0)


def test_a_labelled_source_gets_the_detectors_until_its_labels_arrive(tmp_path, airflow_env):
    """The shipped hdfs source (labelled) whose labels come late: its first two nights have none, so
    the label-free detectors train and are judged without labels (the first night in sample), and
    a detector becomes champion; then the labels of those days arrive, and the third night trains
    every candidate and judges the best through the labelled gate against the detector champion."""
    data_root = tmp_path / "data"
    generate(data_root, SCENARIO)
    lake = Lake(data_root)
    late = tmp_path / "late-labels"
    for day in DAYS[:2]:
        shutil.move(str(lake.labels_file("hdfs", day).parent), str(late / day))
    env = airflow_env(tmp_path / "airflow", data_root, spark_connect=True)
    for day in DAYS[:2]:
        log = tmp_path / "logs" / f"{day}.log"
        assert run_nightly_dag(day, env, log) == 0, log.read_text()[-3000:]
    first, second = [lake.read_report("hdfs", d, "decision") for d in DAYS[:2]]
    for record in (first, second):
        assert record["labelled"] is False and set(record["candidates"]) == DETECTORS, record
        assert record["fallback"].startswith("no labelled day yet in the 7-day window and "), record["fallback"]
        assert record["reason"].startswith(record["fallback"])
    assert first["decision"] == "promoted" and first["in_sample"], first["reason"]
    assert "no champion" in first["fallback"] and "judged without labels" in second["fallback"]
    detector_champion = second["champion_after"]

    for day in DAYS[:2]:                                 # the labels arrive, days late
        shutil.move(str(late / day), str(lake.labels_file("hdfs", day).parent))
    log = tmp_path / "logs" / f"{DAYS[2]}.log"
    assert run_nightly_dag(DAYS[2], env, log) == 0, log.read_text()[-3000:]
    third = lake.read_report("hdfs", DAYS[2], "decision")
    assert third.get("labelled") is not False and not third.get("fallback"), third
    assert third["holdout_days"] == [DAYS[2]] and third["train_days"] == DAYS[:2]
    assert DETECTORS < set(third["candidates"]) and len(third["candidates"]) == 7      # supervised ones too
    assert third["champion_before"] == detector_champion and third["champion_metrics"]["f1"] is not None
    assert any(c["name"] == "bootstrap" for c in third["checks"]), third["checks"]
    assert third["decision"] in ("promoted", "kept"), third["reason"]
