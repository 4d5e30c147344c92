"""Tuned candidates: the search respects its time budget and never sees the holdout."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import pytest

import nightshift_model
from nightshift.lake import Lake
from nightshift.settings import PROJECT_ROOT, load_settings
from nightshift.training import load_training_config, plan_training, train_candidate
from nightshift.tuning import configurations, search, validation_split
from tests.test_promotion import _sessions, _write_day

DAYS = ["2026-05-01", "2026-05-02", "2026-05-03"]
MARKER = 424242.0          # duration_s of every holdout session: must never reach a fit


def _train_frame():
    frames = [_sessions(d, 300, seed=i, anomaly_template="9").assign(day=d) for i, d in enumerate(DAYS[:2])]
    return pd.concat(frames, ignore_index=True)


SPEC = {"name": "rf", "kind": "random_forest", "params": {"n_estimators": 30, "max_depth": 6},
        "search": {"max_depth": [3, None], "min_samples_leaf": [1, 5]}}


def test_configurations_start_with_the_base_params_and_are_capped():
    configs = configurations(SPEC, 3)
    assert configs[0] == SPEC["params"] and len(configs) == 3 and len({str(c) for c in configs}) == 3
    assert configurations({"params": {"a": 1}}, 4) == [{"a": 1}]


def test_search_is_time_ordered_on_the_training_days():
    frame = _train_frame()
    fit, val, how = validation_split(frame)
    assert set(frame["day"][fit]) == {DAYS[0]} and set(frame["day"][val]) == {DAYS[1]}
    assert how.startswith("time-ordered")
    result = search(SPEC, frame, budget_s=600, max_configs=5)
    assert len(result["tried"]) == 5 and not result["cut_by_budget"]
    assert result["params"] in [r["params"] for r in result["tried"]]
    one_day = frame[frame["day"] == DAYS[0]]
    assert "stratified" in validation_split(one_day)[2]


def test_search_respects_a_tiny_budget():
    frame = _train_frame()
    started = time.monotonic()
    result = search(SPEC, frame, budget_s=0.0, max_configs=5)
    assert len(result["tried"]) == 1 and result["cut_by_budget"] and result["params"] == SPEC["params"]
    assert time.monotonic() - started < 30

    # a fake clock advancing 5 s per read: each configuration "takes" 5 s, the search has spent 20 s
    # after two, and a third (20 + 5 s) would still fit in 25 s but its check comes at 35 s: cut
    ticks = iter(np.arange(0, 1000, 5.0))
    result = search(SPEC, frame, budget_s=25, max_configs=5, clock=lambda: float(next(ticks)))
    assert len(result["tried"]) == 2 and result["cut_by_budget"]


@pytest.fixture
def env(tmp_path):
    settings = dataclasses.replace(load_settings(), data_root=tmp_path / "lake",
                                   mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    return settings, Lake(settings.data_root)


def test_tuning_and_threshold_never_see_the_holdout(env, monkeypatch):
    """The holdout day's sessions carry a marker and poisoned (inverted) labels. Every fit AND every
    transform of the vectorizer (so every score: the search's validation, the out-of-fold scores the
    threshold is chosen on, the final fit) is recorded in order. Until the final model is fitted
    (``fit_model`` returns in ``train_candidate``) no holdout row is seen, neither fitted on nor
    scored; after it nothing is fitted, the threshold stays the one the fit chose, and the holdout
    is only scored (the evaluation). The search alone would hide a leak from a fit-only check: it
    fits on earlier days and only *scores* its validation day."""
    import nightshift.modeling

    settings, lake = env
    for i, day in enumerate(DAYS):
        frame = _sessions(day, 300, seed=i, anomaly_template="9")
        if day == DAYS[-1]:
            frame = frame.assign(duration_s=MARKER, label=1 - frame["label"])
        _write_day(lake, day, frame)
    events: list[tuple[str, int, int]] = []      # (what, rows, holdout rows among them)
    final: dict[str, object] = {}
    vectorizer = nightshift_model.EventCountVectorizer
    original_fit, original_transform, original_fit_model = vectorizer.fit, vectorizer.transform, nightshift.modeling.fit_model

    def record(what, X):
        events.append((what, len(X), int((X["duration_s"].to_numpy() == MARKER).sum())))

    def recording_fit(self, X, y=None):
        record("fit", X)
        return original_fit(self, X, y)

    def recording_transform(self, X):
        record("transform", X)
        return original_transform(self, X)

    def recording_fit_model(model, X, y, days=None):
        fitted = original_fit_model(model, X, y, days)
        events.append(("final model fitted", len(X), 0))
        final["threshold"] = getattr(fitted, "threshold_", None)
        return fitted

    monkeypatch.setattr(vectorizer, "fit", recording_fit)
    monkeypatch.setattr(vectorizer, "transform", recording_transform)
    monkeypatch.setattr(nightshift.modeling, "fit_model", recording_fit_model)
    config = load_training_config(PROJECT_ROOT / "config")
    config = dataclasses.replace(config, tuning={"budget_s": 600.0, "max_configs": 3})
    plan = plan_training(lake, "hdfs", DAYS[-1], config, 1)
    assert plan.holdout_days == (DAYS[-1],)
    for name in ("random_forest", "decision_tree", "pca_detector"):
        events.clear()
        final.clear()
        result = train_candidate(settings, config, plan, name)
        boundary = [i for i, e in enumerate(events) if e[0] == "final model fitted"]
        assert len(boundary) == 1, (name, events)
        before, after = events[:boundary[0]], events[boundary[0] + 1:]
        leaks = [e for e in before if e[2]]
        assert not leaks, f"{name}: holdout rows fitted on or scored before the final model was trained: {leaks}"
        fits = [e for e in before if e[0] == "fit"]
        # scoring, not the transform half of a fit_transform: a transform not right after a fit of the same rows
        scored = [e for i, e in enumerate(before) if e[0] == "transform" and (i == 0 or before[i - 1][:2] != ("fit", e[1]))]
        if name != "pca_detector":
            assert len(fits) >= 4 and len(scored) >= 3, (name, before)   # search (>= 2 configurations) + out-of-fold + final
        else:
            assert len(fits) == 1, (name, before)
        assert not [e for e in after if e[0] == "fit"], f"{name}: fitted after the final model: {after}"
        assert any(e[2] == e[1] == 300 for e in after if e[0] == "transform"), (name, after)   # the holdout, scored
        assert result["threshold"] == final["threshold"], \
            f"{name}: threshold changed after the final fit: {final['threshold']} -> {result['threshold']}"
        # reported to the millisecond: a label-free detector on 300 sessions can fit in under one
        assert result["seconds"]["train_seconds"] > 0 if name != "pca_detector" else result["seconds"]["train_seconds"] >= 0
    assert result["metrics"]["sessions"] == 300        # the holdout was scored, only scored


def test_train_candidate_logs_tuning_threshold_and_time_and_respects_the_budget(env):
    import mlflow

    settings, lake = env
    for i, day in enumerate(DAYS):
        _write_day(lake, day, _sessions(day, 300, seed=i, anomaly_template="9"))
    config = load_training_config(PROJECT_ROOT / "config")
    config = dataclasses.replace(config, tuning={"budget_s": 0.0, "max_configs": 4})
    plan = plan_training(lake, "hdfs", DAYS[-1], config, 1)
    result = train_candidate(settings, config, plan, "baseline_logreg")
    run = mlflow.get_run(result["run_id"])
    assert run.data.params["tuning.tried"] == "1" and run.data.params["tuning.cut_by_budget"] == "True"
    assert run.data.params["model.C"] == "1.0" and float(run.data.params["threshold"]) == pytest.approx(result["threshold"], abs=1e-6)
    assert {"train_seconds", "tuning_seconds", "fit_seconds", "threshold"} <= set(run.data.metrics)
    assert run.data.params["train_days"] == ",".join(DAYS[:2])
