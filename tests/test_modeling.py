"""The model input contract and the candidates; what a logged model carries (no Spark)."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nightshift.modeling import EventCountVectorizer, build_candidate, to_model_input


def _features(rows):
    return pd.DataFrame(rows, columns=["line_count", "duration_s", "warn_count", "error_count", "event_counts"])


def test_model_input_accepts_pyarrow_maps_dicts_and_json():
    features = _features([
        (3, 1.5, 0, 0, [("2", 1), ("1", 2)]),          # pyarrow map -> list of pairs
        (1, 0.0, 1, 0, {"3": 1}),
        (2, None, None, 0, '{"1": 2}'),
    ])
    X = to_model_input(features)
    assert list(X["event_counts"]) == ['{"1": 2, "2": 1}', '{"3": 1}', '{"1": 2}']
    assert X["duration_s"].tolist() == [1.5, 0.0, 0.0] and X["warn_count"].tolist() == [0, 1, 0]


def test_unseen_templates_go_to_the_other_bucket():
    train = to_model_input(_features([(3, 1.0, 0, 0, {"1": 2, "2": 1}), (1, 0.0, 0, 1, {"2": 1})]))
    vec = EventCountVectorizer().fit(train)
    assert vec.vocabulary_ == ["1", "2"]
    later = to_model_input(_features([(4, 2.0, 0, 0, {"1": 1, "99": 3})]))
    row = vec.transform(later)[0]
    names = list(vec.get_feature_names_out())
    assert row[names.index("template_1")] == pytest.approx(np.log1p(1))
    assert row[names.index("template_other")] == pytest.approx(np.log1p(3))
    assert row[names.index("template_2")] == 0


@pytest.mark.parametrize("kind", ["logistic_regression", "random_forest", "hist_gradient_boosting", "decision_tree"])
def test_candidates_learn_a_separable_pattern(kind):
    rng = np.random.default_rng(0)
    rows, labels = [], []
    for i in range(200):
        anomalous = i % 5 == 0
        counts = {"1": 3, "2": 3} if not anomalous else {"1": 3, "7": int(rng.integers(1, 3))}
        rows.append((sum(counts.values()), float(rng.random()), int(anomalous), 0, json.dumps(counts)))
        labels.append(int(anomalous))
    X = to_model_input(_features(rows))
    model = build_candidate(kind, {}).fit(X, labels)
    assert (model.predict(X) == np.array(labels)).mean() == 1.0


def test_supervised_candidates_weigh_the_classes_explicitly():
    """Anomalies are ~3% of sessions: every supervised candidate, as configured and as the search
    tries it, is built with ``class_weight="balanced"`` (the logged model too); a params override
    wins; the label-free detectors take no class weights. And it changes what is learned: on 3%
    overlapping positives the balanced logistic regression flags more sessions than an unweighted one."""
    from nightshift.modeling import DETECTOR_KINDS, SUPERVISED_KINDS, ThresholdedClassifier, build_model
    from nightshift.settings import PROJECT_ROOT
    from nightshift.training import load_training_config
    from nightshift.tuning import configurations

    for kind in SUPERVISED_KINDS:
        assert build_candidate(kind).named_steps["classifier"].class_weight == "balanced", kind
        assert build_candidate(kind, {"class_weight": None}).named_steps["classifier"].class_weight is None, kind
        model = build_model(kind)
        assert isinstance(model, ThresholdedClassifier)
        assert model.estimator.named_steps["classifier"].class_weight == "balanced", kind
    config = load_training_config(PROJECT_ROOT / "config")
    supervised = [c for c in config.candidates if c["kind"] in SUPERVISED_KINDS]
    assert {c["kind"] for c in supervised} == set(SUPERVISED_KINDS)
    for c in supervised:
        for params in configurations(c, 10):
            assert build_model(c["kind"], params).estimator.named_steps["classifier"].class_weight == "balanced", (c, params)
    for kind in DETECTOR_KINDS:
        assert "class_weight" not in build_candidate(kind).named_steps["classifier"].get_params(), kind

    rng = np.random.default_rng(0)
    n = 2000
    y = (np.arange(n) % 33 == 0).astype(int)                       # 3% anomalous
    rows = [(int(3 + 2 * a + rng.integers(0, 3)), float(rng.random()), int(rng.random() < (0.5 if a else 0.2)), 0,
             json.dumps({"1": 3, "2": int(rng.integers(0, 2) + a)})) for a in y]
    X = to_model_input(_features(rows))
    flagged = {w: int(build_candidate("logistic_regression", {"class_weight": w}).fit(X, y).predict(X).sum())
               for w in ("balanced", None)}
    assert flagged["balanced"] > flagged[None], flagged


def test_unknown_candidate_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown candidate kind"):
        build_candidate("svm")


# --- the package shape: what a logged model carries --------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _imported_top_level_names(package_dir: Path) -> set[str]:
    names = set()
    for path in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_runtime_package_does_not_import_the_generators_and_the_model_package_is_self_contained():
    assert "nightshift_datagen" not in _imported_top_level_names(ROOT / "nightshift")
    model_imports = _imported_top_level_names(ROOT / "nightshift_model")
    assert not model_imports & {"nightshift", "nightshift_datagen"}, model_imports
    assert model_imports <= {"__future__", "itertools", "json", "typing", "numpy", "pandas", "sklearn"}, model_imports


def test_old_pickles_naming_nightshift_modeling_still_load():
    """Models logged before the split pickled ``nightshift.modeling.EventCountVectorizer``."""
    import cloudpickle

    import nightshift.modeling
    import nightshift_model

    X, y = _separable_training_set()
    model = build_candidate("logistic_regression", {"max_iter": 1000}).fit(X, y)
    assert EventCountVectorizer is nightshift_model.EventCountVectorizer
    assert EventCountVectorizer.__module__ == "nightshift_model"
    EventCountVectorizer.__module__ = "nightshift.modeling"      # pickle it as the old code did
    try:
        old = cloudpickle.dumps(model)
    finally:
        EventCountVectorizer.__module__ = "nightshift_model"
    assert b"nightshift.modeling" in old and b"nightshift_model" not in old
    new = cloudpickle.dumps(model)
    assert b"nightshift_model" in new and b"nightshift.modeling" not in new
    for blob in (old, new):
        loaded = pickle.loads(blob)
        assert type(loaded.named_steps["vectorize"]) is nightshift.modeling.EventCountVectorizer
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def _separable_training_set(n: int = 60):
    rows, labels = [], []
    for i in range(n):
        anomalous = i % 4 == 0
        counts = {"1": 3, "2": 2} if not anomalous else {"1": 3, "7": 1 + i % 3}
        rows.append((sum(counts.values()), float(i % 7), int(anomalous), 0, json.dumps(counts)))
        labels.append(int(anomalous))
    return to_model_input(_features(rows)), np.array(labels)


# Loads a logged model in a fresh interpreter that cannot import any Nightshift code from the
# repository or the installed (editable) packages: only the model's own code/ directory can help.
_LOAD_IN_ISOLATION = r"""
import importlib, importlib.abc, json, sys

class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"nightshift", "nightshift_datagen"}:
            raise ImportError(f"blocked: {name}")
        return None

# no editable-install finder, no repository on sys.path, the runtime package and the generators refused
sys.meta_path = [_Blocked()] + [f for f in sys.meta_path if "__editable__" not in str(getattr(f, "__module__", ""))]
sys.path = [p for p in sys.path if p not in ("", ".", REPO)]
for name in ("nightshift", "nightshift_model", "nightshift_datagen"):
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    sys.exit(f"{name} is importable before the model is loaded: the check would prove nothing")

import mlflow.pyfunc, mlflow.sklearn, pandas as pd
flavour, input_path, model_uri = sys.argv[1:4]
X = pd.read_parquet(input_path)
if flavour == "pyfunc":
    proba = mlflow.pyfunc.load_model(model_uri).predict(X)
else:
    proba = mlflow.sklearn.load_model(model_uri).predict_proba(X)
print(json.dumps({"proba": proba.tolist(), "model_module_file": sys.modules["nightshift_model"].__file__}))
"""


def test_logged_model_carries_only_the_model_package_and_loads_without_nightshift(tmp_path, monkeypatch):
    """``train_candidate`` logs the model with ``code_paths`` = the ``nightshift_model`` package only
    (no generators, no ingest or DAG code); a fresh process without Nightshift installed loads it
    (pyfunc and sklearn flavours) from that code/ directory and predicts the same probabilities."""
    import mlflow

    from nightshift import training
    from nightshift.settings import PROJECT_ROOT, load_settings

    monkeypatch.setenv("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
    X, y = _separable_training_set()
    sessions = pd.concat([X, pd.DataFrame({"label": y})], axis=1)
    monkeypatch.setattr(training, "load_labelled_sessions", lambda lake, source, days: sessions.copy())
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = dataclasses.replace(load_settings(), data_root=tmp_path / "lake", mlflow_tracking_uri=tracking_uri)
    config = training.load_training_config(PROJECT_ROOT / "config")
    plan = training.TrainingPlan(source="hdfs", day="2026-11-03", holdout_days=("2026-11-02",), train_days=("2026-11-01",))
    result = training.train_candidate(settings, config, plan, "baseline_logreg")

    mlflow.set_tracking_uri(tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(result["model_uri"], dst_path=str(tmp_path / "download")))
    code = local / "code"
    files = sorted(str(p.relative_to(code)) for p in code.rglob("*") if p.is_file())
    assert files == ["nightshift_model/__init__.py"], files

    loaded = mlflow.sklearn.load_model(result["model_uri"])
    expected = loaded.predict_proba(X)
    # the threshold travels inside the model: P >= 0.5 (what scoring and pyfunc use) iff raw >= threshold
    assert type(loaded).__name__ == "ThresholdedClassifier" and loaded.threshold_ == result["threshold"]
    np.testing.assert_array_equal(expected[:, 1] >= 0.5, loaded.raw_scores(X) >= loaded.threshold_)
    np.testing.assert_array_equal(loaded.predict(X), (expected[:, 1] >= 0.5).astype(int))
    pyfunc = mlflow.pyfunc.load_model(result["model_uri"]).predict(X)
    np.testing.assert_allclose(np.asarray(pyfunc), expected, rtol=0, atol=1e-12)
    X.to_parquet(tmp_path / "X.parquet")
    script = "REPO = " + repr(str(ROOT)) + "\n" + _LOAD_IN_ISOLATION
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPATH": ""}
    for flavour in ("pyfunc", "sklearn"):
        proc = subprocess.run(
            [sys.executable, "-c", script, flavour, str(tmp_path / "X.parquet"), result["model_uri"]],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert Path(out["model_module_file"]).parent.parent.name == "code", out   # <model>/code/nightshift_model/
        np.testing.assert_allclose(np.asarray(out["proba"]), expected, rtol=0, atol=1e-12)


# --- the decision threshold inside the model ----------------------------------------------------

def test_remapped_scores_cross_one_half_exactly_at_the_threshold():
    from nightshift_model import remap_scores

    rng = np.random.default_rng(0)
    for t in (0.01, 0.137, 0.5, 0.83, 0.999):
        raw = np.r_[rng.random(5000), t, np.nextafter(t, 0), np.nextafter(t, 1), 0.0, 1.0]
        p = remap_scores(raw, t)
        np.testing.assert_array_equal(p >= 0.5, raw >= t)
        assert ((0 <= p) & (p <= 1)).all()
        order = np.argsort(raw)
        assert (np.diff(p[order]) >= 0).all()          # monotone: rankings (PR curves, AP) unchanged


def test_best_f1_threshold_separates_the_classes():
    from nightshift_model import best_f1_threshold

    y = np.array([0, 0, 0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.7, 0.05, 0.9])
    t, f1 = best_f1_threshold(y, s)
    assert f1 == 1.0 and 0.35 < t <= 0.4
    assert best_f1_threshold([0, 0], [0.3, 0.4]) == (0.5, 0.0)


def test_thresholded_classifier_chooses_its_threshold_out_of_fold_and_predict_agrees():
    from nightshift_model import ThresholdedClassifier, build_model, fit_model

    X, y = _separable_training_set(120)
    days = np.array(["2026-11-01"] * 40 + ["2026-11-02"] * 40 + ["2026-11-03"] * 40)
    model = fit_model(build_model("random_forest", {"n_estimators": 20}), X, y, days)
    assert isinstance(model, ThresholdedClassifier) and 0 < model.threshold_ < 1
    assert model.threshold_source_.startswith("time-ordered out-of-fold (2026-11-02, 2026-11-03)")
    proba = model.predict_proba(X)
    np.testing.assert_array_equal(proba[:, 1] >= 0.5, model.raw_scores(X) >= model.threshold_)
    np.testing.assert_array_equal(model.predict(X), (proba[:, 1] >= 0.5).astype(int))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    single = fit_model(build_model("logistic_regression", {"max_iter": 500}), X, y, None)
    assert single.threshold_source_.startswith("stratified 3-fold")
    fixed = fit_model(build_model("decision_tree", {}, threshold=0.8), X, y, days)
    assert fixed.threshold_ == 0.8 and fixed.threshold_source_ == "fixed"
