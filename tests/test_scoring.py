"""Batch scoring against a real MLflow registry (SQLite, temp dir) and real Spark UDFs.

The models are real pipelines from ``nightshift.modeling.build_candidate``, logged the way
training logs them (``pyfunc_predict_fn="predict_proba"``, cloudpickle), so the Spark path
(``mlflow.pyfunc.spark_udf``) must give the same scores as the pandas path used in training.
"""

from __future__ import annotations

import datetime as dt
import json
import runpy
import sys

import numpy as np
import pandas as pd
import pytest

from nightshift.lake import Lake
from nightshift.modeling import MODEL_INPUT_COLUMNS, build_candidate, to_model_input
from nightshift.scoring import (
    PREDICTION_COLUMNS,
    NoChampionError,
    model_input,
    run_scoring,
    scoring_targets,
)
from nightshift.settings import PROJECT_ROOT, Settings

MODEL_NAME = "log_anomaly_hdfs"   # config/training.yaml: <model_name_prefix>_<source>
FEATURES_SCHEMA = (
    "session_id string, start_ts timestamp, end_ts timestamp, duration_s double, line_count bigint, "
    "warn_count bigint, error_count bigint, event_counts map<string,bigint>, label int"
)
PREDICTIONS_SCHEMA = (
    "struct<session_id:string,score:double,prediction:boolean,model_name:string,model_version:bigint,"
    "challenger_score:double,challenger_prediction:boolean,challenger_version:bigint,scored_at_day:date,"
    "suspect:boolean>"
)
NORMAL_TEMPLATES, ANOMALY_TEMPLATES, UNSEEN_TEMPLATES = ["1", "2", "3", "4", "5"], ["6", "7"], ["41", "99"]


# --- helpers (also used by tests/test_scoring_dag.py) -------------------------------------------

def synthetic_features(n: int, seed: int, unseen: bool = False) -> list[tuple]:
    """Rows in the features Parquet schema: normal sessions use templates 1-5, anomalous ones also
    6-7 and more warnings/errors; with ``unseen`` some sessions carry templates no model saw."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)
    rows = []
    for i in range(n):
        anomalous = rng.random() < 0.25
        templates = NORMAL_TEMPLATES + (ANOMALY_TEMPLATES if anomalous else []) + (UNSEEN_TEMPLATES if unseen and i % 3 == 0 else [])
        counts = {t: int(rng.integers(1, 12)) for t in templates if rng.random() < 0.8}
        begin = start + dt.timedelta(seconds=int(rng.integers(0, 80_000)))
        end = begin + dt.timedelta(seconds=float(rng.gamma(2.0, 30.0)))
        rows.append((
            f"blk_{seed}_{i}", begin, end, (end - begin).total_seconds(), sum(counts.values()),
            int(rng.integers(0, 6 if anomalous else 2)), int(rng.integers(0, 4)) if anomalous else 0, counts,
            int(anomalous),
        ))
    return rows


def write_features(spark, lake: Lake, day: str, rows: list[tuple], source: str = "hdfs") -> pd.DataFrame:
    """Write rows as the day's features partition; return them as training reads them (pandas)."""
    spark.createDataFrame(rows, FEATURES_SCHEMA).write.mode("overwrite").parquet(str(lake.features_dir(source, day)))
    return pd.read_parquet(lake.features_dir(source, day))


def register_models(tracking_uri: str, artifacts_dir, kinds=("logistic_regression", "random_forest"), seed: int = 1) -> list:
    """Train one pipeline per kind on synthetic features, log and register each as a version of
    ``MODEL_NAME`` (as training does); returns ``[(version, fitted model), ...]`` in order."""
    import mlflow
    from mlflow.models import infer_signature

    params = {"logistic_regression": {"max_iter": 1000}, "random_forest": {"n_estimators": 25, "max_depth": 5}}
    train = pd.DataFrame(synthetic_features(200, seed), columns=[f.split()[0] for f in FEATURES_SCHEMA.split(", ")])
    X, y = to_model_input(train), train["label"].to_numpy()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)     # earlier tests may have pointed the registry elsewhere
    experiment = mlflow.get_experiment_by_name("scoring-tests")
    experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(
        "scoring-tests", artifact_location=artifacts_dir.as_uri())
    registered = []
    for kind in kinds:
        model = build_candidate(kind, params.get(kind)).fit(X, y)
        with mlflow.start_run(experiment_id=experiment_id):
            info = mlflow.sklearn.log_model(
                model, name="model", signature=infer_signature(X, model.predict_proba(X.head(5))),
                pyfunc_predict_fn="predict_proba", serialization_format="cloudpickle",
                registered_model_name=MODEL_NAME, pip_requirements=["scikit-learn", "pandas", "numpy"],
            )
        registered.append((int(info.registered_model_version), model))
    return registered


def set_aliases(tracking_uri: str, **aliases: int) -> None:
    """Point aliases of ``MODEL_NAME`` at versions: ``set_aliases(uri, champion=1, challenger=2)``."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    for alias, version in aliases.items():
        client.set_registered_model_alias(MODEL_NAME, alias, version)


def read_predictions(spark, lake: Lake, day: str) -> pd.DataFrame:
    return spark.read.parquet(str(lake.predictions_dir("hdfs", day))).toPandas()


def _settings(lake: Lake, tracking_uri: str) -> Settings:
    return Settings(data_root=lake.root, sources_dir=PROJECT_ROOT / "sources", config_dir=PROJECT_ROOT / "config",
                    expectations_dir=PROJECT_ROOT / "expectations", mlflow_tracking_uri=tracking_uri)


# --- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def python_udf_spark(spark):
    """The shared session, with Python UDF workers on this interpreter (the venv: pandas, sklearn,
    nightshift). Spark starts workers with $PYSPARK_PYTHON, default "python3", which may be
    another Python; spark-submit gets it from nightshift.localenv."""
    spark.sparkContext.pythonExec = sys.executable
    return spark


@pytest.fixture(scope="module")
def registry(python_udf_spark, tmp_path_factory):
    """A temp lake and MLflow store with two registered versions (logistic regression, random forest)."""
    base = tmp_path_factory.mktemp("scoring")
    lake = Lake(base / "lake")
    uri = f"sqlite:///{base / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        versions = register_models(uri, base / "artifacts")
        yield {"lake": lake, "uri": uri, "settings": _settings(lake, uri), "versions": versions}


# --- pure functions -------------------------------------------------------------------------------

def test_model_input_follows_the_training_contract(spark):
    rows = synthetic_features(6, seed=3, unseen=True)
    rows[1] = (*rows[1][:7], {}, 0)                                  # no events
    rows[2] = (*rows[2][:7], None, 0)                                # null map
    rows[3] = (rows[3][0], rows[3][1], rows[3][2], None, *rows[3][4:])   # null duration
    df = spark.createDataFrame(rows, FEATURES_SCHEMA)
    spark_input = model_input(df).toPandas()
    pandas_input = to_model_input(df.toPandas())
    assert list(spark_input.columns) == ["session_id", *MODEL_INPUT_COLUMNS]
    pd.testing.assert_frame_equal(
        spark_input[MODEL_INPUT_COLUMNS].drop(columns="event_counts"),
        pandas_input.drop(columns="event_counts"), check_dtype=True,
    )
    # the JSON strings may differ in spacing, never in content
    assert [json.loads(s) for s in spark_input["event_counts"]] == [json.loads(s) for s in pandas_input["event_counts"]]


def test_scoring_targets_from_params_or_asset_events():
    assert scoring_targets({"source": "hdfs", "day": "2026-05-01"}, [{"source": "bgl", "day": "2026-05-02"}]) == [
        {"source": "hdfs", "day": "2026-05-01"}]
    events = [{"source": "hdfs", "day": "2026-05-01"}, {"source": "bgl", "day": "2026-05-01"},
              {"source": "hdfs", "day": "2026-05-01"}]
    assert scoring_targets({"source": "hdfs", "day": None}, events) == events[:2]
    with pytest.raises(ValueError, match="no 'day' parameter and no triggering asset event"):
        scoring_targets({"source": "hdfs", "day": None}, [])
    with pytest.raises(ValueError, match="triggering asset event #0.*day must be a YYYY-MM-DD"):
        scoring_targets({}, [{"source": "hdfs"}])
    with pytest.raises(ValueError, match="source must be"):
        scoring_targets({}, [{"source": "../etc", "day": "2026-05-01"}])


# --- against the registry -------------------------------------------------------------------------

@pytest.mark.usefixtures("python_udf_spark")
def test_spark_scores_equal_the_pandas_path(spark, registry):
    (v1, champion), (v2, challenger) = registry["versions"]
    set_aliases(registry["uri"], champion=v1, challenger=v2)
    lake, day = registry["lake"], "2026-05-01"
    features = write_features(spark, lake, day, synthetic_features(120, seed=5, unseen=True))

    report = run_scoring(spark, registry["settings"], lake, "hdfs", day)

    assert spark.read.parquet(str(lake.predictions_dir("hdfs", day))).schema.simpleString() == PREDICTIONS_SCHEMA
    predictions = read_predictions(spark, lake, day)
    assert list(predictions.columns) == PREDICTION_COLUMNS
    assert sorted(predictions["session_id"]) == sorted(features["session_id"])      # every session, once
    merged = features.merge(predictions, on="session_id", validate="one_to_one")
    X = to_model_input(merged)
    expected = champion.predict_proba(X)[:, 1]
    expected_challenger = challenger.predict_proba(X)[:, 1]
    assert np.abs(merged["score"].to_numpy() - expected).max() <= 1e-12
    assert np.abs(merged["challenger_score"].to_numpy() - expected_challenger).max() <= 1e-12
    assert (merged["prediction"].to_numpy() == (expected >= 0.5)).all()
    assert (merged["challenger_prediction"].to_numpy() == (expected_challenger >= 0.5)).all()
    assert 0 < merged["prediction"].sum() < len(merged)                           # the check can fail
    assert set(merged["model_name"]) == {MODEL_NAME}
    assert set(merged["model_version"]) == {v1} and set(merged["challenger_version"]) == {v2}
    assert set(merged["scored_at_day"]) == {dt.date(2026, 5, 1)}

    assert report == lake.read_report("hdfs", day, "scoring")
    assert (report["sessions"], report["flagged"]) == (len(features), int(merged["prediction"].sum()))
    assert (report["champion_version"], report["challenger_version"]) == (v1, v2)
    assert report["challenger_flagged"] == int(merged["challenger_prediction"].sum())
    assert not lake.staging_dir("scoring", "hdfs", day).exists()


@pytest.mark.usefixtures("python_udf_spark")
def test_challenger_that_is_the_champion_is_not_shadow_scored(spark, registry):
    (v1, _), (v2, random_forest) = registry["versions"]
    set_aliases(registry["uri"], champion=v2, challenger=v2)
    lake, day = registry["lake"], "2026-05-04"
    features = write_features(spark, lake, day, synthetic_features(30, seed=6))

    report = run_scoring(spark, registry["settings"], lake, "hdfs", day)

    predictions = read_predictions(spark, lake, day).set_index("session_id").loc[features["session_id"]]
    assert set(predictions["model_version"]) == {v2}
    assert np.abs(predictions["score"].to_numpy() - random_forest.predict_proba(to_model_input(features))[:, 1]).max() <= 1e-12
    assert predictions[["challenger_score", "challenger_prediction", "challenger_version"]].isna().all().all()
    assert report["challenger_version"] is None and report["champion_version"] == v2
    # no reference flag rate and no input drift recorded for the day: nothing makes it suspect
    assert report["suspect"] is False and not predictions["suspect"].any()


@pytest.mark.usefixtures("python_udf_spark")
def test_a_flag_rate_far_from_the_champion_s_holdout_marks_the_predictions_suspect(spark, registry):
    (v1, champion), _ = registry["versions"]
    set_aliases(registry["uri"], champion=v1)
    lake, day = registry["lake"], "2026-05-06"
    features = write_features(spark, lake, day, synthetic_features(60, seed=9))
    flagged_tonight = int((champion.predict_proba(to_model_input(features))[:, 1] >= 0.5).sum())
    assert flagged_tonight > 3                     # the synthetic day has anomalies for the champion to flag
    # the night that registered v1 saw it flag 1 session in 1,000 on its holdout
    lake.write_report("hdfs", "2026-05-01", "decision", {
        "challenger_version": str(v1), "best_candidate": "lr",
        "candidates": {"lr": {"flagged": 1, "sessions": 1000}}})
    report = run_scoring(spark, registry["settings"], lake, "hdfs", day)
    assert report["suspect"] is True
    assert report["prediction_drift"]["reasons"] == [
        f"flag rate {flagged_tonight / 60:.1%} vs 0.1% on the champion's holdout (2026-05-01)"]
    assert read_predictions(spark, lake, day)["suspect"].all()


@pytest.mark.usefixtures("python_udf_spark")
def test_rerun_replaces_its_day_and_touches_no_other(spark, registry):
    (v1, _), (v2, _) = registry["versions"]
    set_aliases(registry["uri"], champion=v1, challenger=v2)
    lake, day, other_day = registry["lake"], "2026-05-02", "2026-05-03"
    rows = synthetic_features(40, seed=7)
    write_features(spark, lake, day, rows)
    write_features(spark, lake, other_day, synthetic_features(25, seed=8))
    run_scoring(spark, registry["settings"], lake, "hdfs", day)
    run_scoring(spark, registry["settings"], lake, "hdfs", other_day)
    other_files = {p.name: p.read_bytes() for p in lake.predictions_dir("hdfs", other_day).iterdir()}

    # the day's features are rebuilt with fewer sessions and the champion moves: re-score the day
    write_features(spark, lake, day, rows[:15])
    set_aliases(registry["uri"], champion=v2, challenger=v1)
    report = run_scoring(spark, registry["settings"], lake, "hdfs", day)

    rescored = read_predictions(spark, lake, day)
    assert sorted(rescored["session_id"]) == sorted(r[0] for r in rows[:15])
    assert set(rescored["model_version"]) == {v2} and set(rescored["challenger_version"]) == {v1}
    assert report["sessions"] == 15 and report["champion_version"] == v2
    assert {p.name: p.read_bytes() for p in lake.predictions_dir("hdfs", other_day).iterdir()} == other_files
    assert lake.read_report("hdfs", other_day, "scoring")["sessions"] == 25


@pytest.mark.usefixtures("python_udf_spark")
def test_no_champion_is_a_clear_error_and_the_job_skips(spark, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    lake, day, uri = Lake(tmp_path / "lake"), "2026-05-01", f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("NIGHTSHIFT_DATA_ROOT", str(lake.root))
    write_features(spark, lake, day, synthetic_features(10, seed=9))

    with pytest.raises(NoChampionError, match=f"^no champion for {MODEL_NAME}: nothing to score$"):
        run_scoring(spark, _settings(lake, uri), lake, "hdfs", day)          # model not registered at all
    MlflowClient(tracking_uri=uri, registry_uri=uri).create_registered_model(MODEL_NAME)
    with pytest.raises(NoChampionError, match=f"^no champion for {MODEL_NAME}: nothing to score$"):
        run_scoring(spark, _settings(lake, uri), lake, "hdfs", day)          # registered, no champion alias

    job = runpy.run_path(str(PROJECT_ROOT / "jobs" / "score.py"))
    source = type("Source", (), {"name": "hdfs"})()
    assert job["_score"](spark, lake, source, day, None) == 0
    report = lake.read_report("hdfs", day, "scoring")
    assert report["skipped"] == "no champion" and report["reason"] == f"no champion for {MODEL_NAME}: nothing to score"
    assert not lake.predictions_dir("hdfs", day).exists()
