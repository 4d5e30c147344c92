"""Detectors that need no labels (loglizer family) and sources declared `labels: none`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from nightshift.gate import check_flag_rate, load_policy
from nightshift.lake import Lake
from nightshift.modeling import DETECTOR_KINDS, build_model, to_model_input
from nightshift.promotion import KEPT, NO_LABELS_LIMITS, PROMOTED, apply_decision, evaluate_candidates, judge
from nightshift.settings import PROJECT_ROOT, load_settings
from nightshift.sources import parse_source
from nightshift.training import TrainingPlan, load_training_config, plan_training, train_candidate
from tests.test_promotion import _sessions

DAYS = ["2026-06-01", "2026-06-02", "2026-06-03"]


def _workflows(n: int, rate: float, seed: int):
    """Sessions that follow one of two workflows (templates 1-5 or 6-10, each ``k`` times: the
    correlated counts of real block lifecycles); an anomalous session skips a step and logs an
    error template. Returns the model input and the (hidden) labels."""
    import json

    import pandas as pd

    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for _ in range(n):
        anomalous = rng.random() < rate
        k, first = int(rng.integers(1, 6)), (1 if rng.random() < 0.5 else 6)
        counts = {str(t): k for t in range(first, first + 5)}
        if anomalous:
            counts.pop(str(first + 2))
            counts["99"] = 1
        rows.append((sum(counts.values()), float(rng.random()), 0, 0, json.dumps(counts)))
        labels.append(int(anomalous))
    frame = pd.DataFrame(rows, columns=["line_count", "duration_s", "warn_count", "error_count", "event_counts"])
    return to_model_input(frame), np.array(labels)


@pytest.mark.parametrize("kind", ["pca_detector", "isolation_forest", "invariants_miner"])
def test_detectors_flag_a_rare_pattern_without_labels(kind):
    X, y = _workflows(2000, 0.02, seed=0)
    # an invariant must hold in `percentage` of the training sessions: here one anomaly pattern
    # makes 2% of them, so below 98% (the shipped 99% suits many rarer patterns, as in HDFS)
    params = {"percentage": 0.97} if kind == "invariants_miner" else {}
    model = build_model(kind, params).fit(X, None)                  # no labels
    proba = model.predict_proba(X)
    np.testing.assert_array_equal(proba[:, 1] >= 0.5, model.predict(X) == 1)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    flagged = proba[:, 1] >= 0.5
    recall, precision = flagged[y == 1].mean(), y[flagged].mean() if flagged.any() else 0.0
    assert recall > 0.9 and precision > 0.5, (kind, recall, precision)


def test_pca_threshold_is_the_q_statistic():
    X, _ = _workflows(1000, 0.02, seed=1)
    model = build_model("pca_detector", {"variance": 0.95}).fit(X)
    pca = model.named_steps["classifier"]
    spe = pca.spe(model.named_steps["vectorize"].transform(X))
    assert pca.q_ > 0 and pca.n_components_ == 3                  # normal space: few dimensions
    np.testing.assert_array_equal(model.predict_proba(X)[:, 1] >= 0.5, spe >= pca.q_)


def test_invariants_are_the_workflows_relations_and_a_violation_is_an_anomaly():
    X, y = _workflows(2000, 0.02, seed=2)
    model = build_model("invariants_miner", {"percentage": 0.97}).fit(X)
    miner = model.named_steps["classifier"]
    vocabulary = model.named_steps["vectorize"].vocabulary_
    found = {tuple(vocabulary[j] for j in combo): tuple(int(c) for c in coefficients)
             for combo, coefficients in miner.invariants_}
    # the error template never happens in (98% of) sessions, and within a workflow every step is
    # logged as often as the one before it (count(1) - count(2) = 0, ...)
    assert found[("99",)] == (1,)
    assert found[("1", "2")] in ((1, -1), (-1, 1)) and found[("6", "7")] in ((1, -1), (-1, 1))
    assert all(len(combo) <= 3 and max(abs(c) for c in coefficients) <= 10 for combo, coefficients in found.items())
    flagged = model.predict(X) == 1
    np.testing.assert_array_equal(flagged, y == 1)                # skipping a step breaks an invariant
    proba = model.predict_proba(X)[:, 1]
    assert proba[~flagged].max() == 0.0 and proba[flagged].min() >= 0.5


def test_a_source_can_declare_labels_none():
    raw = yaml.safe_load((PROJECT_ROOT / "sources" / "hdfs.yaml").read_text())
    assert parse_source(raw).labelled
    raw["labels"] = "none"
    assert not parse_source(raw).labelled and parse_source(raw).label_field is None


def _local_settings(tmp_path):
    """A lake and an MLflow store (SQLite) under ``tmp_path``."""
    return dataclasses.replace(load_settings(), data_root=tmp_path / "lake",
                               mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def _write_unlabelled_day(lake: Lake, source: str, day: str, seed: int) -> None:
    frame = _sessions(day, 600, seed=seed, anomaly_template="9").drop(columns=["label"])
    out = lake.features_dir(source, day)
    out.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame.drop(columns=["event_counts"]), preserve_index=False).append_column(
        "event_counts", pa.array(frame["event_counts"].tolist(), type=pa.map_(pa.string(), pa.int64())))
    pq.write_table(table, out / "part-0.parquet")
    import nightshift.validation as validation

    for suite in ("parsed_lines", "session_features"):
        lake.write_report(source, day, f"validation_{suite}", {
            "success": True, "failures": [], "suite": suite,
            "data_fingerprint": validation.data_fingerprint(lake, source, day, suite)})


def test_an_unlabelled_source_trains_detectors_and_gets_a_champion(tmp_path):
    settings = _local_settings(tmp_path)
    lake = Lake(settings.data_root)
    config = load_training_config(PROJECT_ROOT / "config")
    policy = load_policy(PROJECT_ROOT / "config")
    for i, day in enumerate(DAYS):
        _write_unlabelled_day(lake, "hdfs", day, seed=i)
    # with labels required, these days are unusable
    assert plan_training(lake, "hdfs", DAYS[1], config, 1).skip_reason
    plan = plan_training(lake, "hdfs", DAYS[1], config, 1, labelled=False)
    assert plan.skip_reason is None and not plan.labelled and plan.holdout_days == (DAYS[1],)
    with pytest.raises(ValueError, match="needs labels"):
        train_candidate(settings, config, plan, "random_forest")
    detectors = [c["name"] for c in config.candidates if c["kind"] in DETECTOR_KINDS]
    results = [train_candidate(settings, config, plan, n) for n in detectors]
    assert all(r["metrics"]["f1"] is None and 0 <= r["metrics"]["flag_rate"] <= 1 for r in results)
    record = apply_decision(settings, evaluate_candidates(settings, config, policy, plan, results, "auto", "test"))
    assert record["decision"] == PROMOTED and record["champion_after"] == "1", record["reason"]
    assert record["checks"][0]["name"] == "flag_rate" and record["checks"][0]["passed"]
    md = (lake.reports_dir("hdfs", DAYS[1]) / "decision_record" / "decision.md").read_text()
    assert "What this decision cannot know" in md and "no F1" in md and "flag rate" in md

    # the next night: the champion is scored by the same contract ([P(normal), P(anomalous)], 0.5)
    plan = plan_training(lake, "hdfs", DAYS[2], config, 1, labelled=False)
    results = [train_candidate(settings, config, plan, n) for n in detectors]
    second = apply_decision(settings, evaluate_candidates(settings, config, policy, plan, results, "auto", "test"))
    assert second["champion_before"] == "1" and second["staleness"] is not None
    assert any(c["name"] == "champion_flag_rate" for c in second["checks"])
    import mlflow

    champion = mlflow.pyfunc.load_model(f"models:/{config.model_name('hdfs')}@champion")
    out = np.asarray(champion.predict(to_model_input(_sessions("x", 50, seed=9, anomaly_template="9"))))
    assert out.shape == (50, 2) and np.allclose(out.sum(axis=1), 1.0)


def _labelled_lake(tmp_path, days) -> Lake:
    """A lake whose hdfs days carry validated labels files (``tests.test_promotion._write_day``)."""
    from tests.test_promotion import _write_day

    lake = Lake(tmp_path / "labelled")
    for i, day in enumerate(days):
        _write_day(lake, day, _sessions(day, 300, seed=i, anomaly_template="9"))
    return lake


def test_an_unlabelled_source_gets_a_plan_from_its_first_validated_day_a_labelled_one_does_not(tmp_path):
    config = load_training_config(PROJECT_ROOT / "config")
    lake = Lake(tmp_path / "lake")
    nothing = plan_training(lake, "hdfs", DAYS[0], config, 1, labelled=False)
    assert nothing.skip_reason == (f"need 1 validated day in the {config.window_days}-day window (source without "
                                   f"labels), have 0")
    _write_unlabelled_day(lake, "hdfs", DAYS[0], seed=0)

    # one validated day: trained on and held out, in sample
    first = plan_training(lake, "hdfs", DAYS[0], config, 1, labelled=False)
    assert first.skip_reason is None and not first.labelled and first.in_sample
    assert first.train_days == first.holdout_days == (DAYS[0],) and first.labelled_days == (DAYS[0],)
    assert TrainingPlan.from_dict(first.to_dict()).in_sample          # survives the XCom round trip
    # from the second validated day on: the newest is held out, out of sample, as before
    _write_unlabelled_day(lake, "hdfs", DAYS[1], seed=1)
    second = plan_training(lake, "hdfs", DAYS[1], config, 1, labelled=False)
    assert second.skip_reason is None and not second.in_sample
    assert second.holdout_days == (DAYS[1],) and second.train_days == (DAYS[0],)

    # labelled: unchanged, two labelled days needed (one validated labelled day is skipped, same reason as before)
    labelled = _labelled_lake(tmp_path, DAYS[:1])
    skipped = plan_training(labelled, "hdfs", DAYS[0], config, 1)
    assert skipped.skip_reason == (f"need 2 validated labelled days in the {config.window_days}-day window "
                                   f"(1 holdout + 1 training), have 1")
    assert skipped.train_days == skipped.holdout_days == () and not skipped.in_sample
    assert plan_training(lake, "hdfs", DAYS[0], config, 1).skip_reason.endswith("have 0")   # no labels at all
    two = _labelled_lake(tmp_path / "two", DAYS[:2])
    plan = plan_training(two, "hdfs", DAYS[1], config, 1)
    assert plan.holdout_days == (DAYS[1],) and plan.train_days == (DAYS[0],) and not plan.in_sample


def test_check_flag_rate_in_sample_judges_the_bounds_only():
    policy = dataclasses.replace(load_policy(PROJECT_ROOT / "config"), unlabelled_min_flag_rate=0.01,
                                 unlabelled_max_flag_rate=0.10, unlabelled_max_rate_change=0.0)
    inside = check_flag_rate({DAYS[0]: 0.05}, DAYS[0], policy, in_sample=True)
    assert inside["passed"] and inside["in_sample"] and not inside["stability_judged"]
    assert inside["detail"].startswith("in sample, flags 5.00% of ") and "stability not judged" in inside["detail"]
    assert not check_flag_rate({DAYS[0]: 0.20}, DAYS[0], policy, in_sample=True)["passed"]
    # out of sample the same change limit judges stability against the earlier nights
    later = check_flag_rate({DAYS[0]: 0.04, DAYS[1]: 0.05}, DAYS[1], policy)
    assert not later["passed"] and later["stability_judged"] and "UNSTABLE" in later["detail"]


def test_the_first_night_of_an_unlabelled_source_is_judged_in_sample_by_flag_rate(tmp_path):
    import mlflow

    settings = _local_settings(tmp_path)
    lake = Lake(settings.data_root)
    config = load_training_config(PROJECT_ROOT / "config")
    _write_unlabelled_day(lake, "hdfs", DAYS[0], seed=0)
    plan = plan_training(lake, "hdfs", DAYS[0], config, 1, labelled=False)
    results = [train_candidate(settings, config, plan, "pca_detector")]
    rate = results[0]["metrics"]["flag_rate"]
    assert results[0]["flag_rates"] == {DAYS[0]: rate}                  # the one day, once
    run = mlflow.get_run(results[0]["run_id"])
    assert run.data.tags["nightshift.in_sample"] == "true"
    assert run.data.params["train_days"] == run.data.params["holdout_days"] == DAYS[0]
    policy = load_policy(PROJECT_ROOT / "config")

    # flag rate outside the bounds: refused, nothing promoted (the record still says in sample)
    outside = dataclasses.replace(policy, unlabelled_min_flag_rate=min(rate + 0.05, 1.0), unlabelled_max_flag_rate=1.0)
    refused = judge(settings, config, outside, plan, results, "auto", "test").record
    assert refused["decision"] == KEPT and not refused["gate_passed"] and refused["in_sample"] is True
    assert refused["reason"].startswith("judged in sample, by flag rate only: ") and "flag_rate failed: " in refused["reason"]

    # within the bounds (stability cannot fail it: not judged in sample): promoted, and it says how it was judged
    within = dataclasses.replace(policy, unlabelled_min_flag_rate=0.0, unlabelled_max_flag_rate=1.0,
                                 unlabelled_max_rate_change=0.0)
    record = apply_decision(settings, evaluate_candidates(settings, config, within, plan, results, "auto", "test"))
    assert record["decision"] == PROMOTED and record["champion_after"] == "1", record["reason"]
    assert record["in_sample"] is True and record["train_days"] == record["holdout_days"] == [DAYS[0]]
    assert record["reason"].startswith("judged in sample, by flag rate only: the detectors trained on this day")
    assert "stability is not judged tonight" in record["reason"] and "no champion yet; flag_rate: in sample, " in record["reason"]
    check = record["checks"][0]
    assert check["name"] == "flag_rate" and check["passed"] and check["in_sample"] and not check["stability_judged"]
    assert record["limits"].startswith(NO_LABELS_LIMITS) and "in sample" in record["limits"]
    md = (lake.reports_dir("hdfs", DAYS[0]) / "decision_record" / "decision.md").read_text()
    assert "in sample: the same day, judged by the flag-rate bounds only" in md and "Stability is not judged" in md
    assert md.count(f"flag rate {DAYS[0]}") == 1                         # one column for the one day


def test_a_labelled_source_without_labels_yet_gets_the_detectors_until_labels_arrive(tmp_path):
    """plan_for_source: a labelled source's validated days without any label fall back to the
    label-free plan (judged without labels, the record says why) when there is no champion or the
    champion was judged without labels; a champion judged with labels, or any labelled day in the
    window, keeps today's skip; two labelled days give the usual plan."""
    from nightshift.training import plan_for_source

    config = load_training_config(PROJECT_ROOT / "config")
    lake = Lake(tmp_path / "lake")
    asked = []

    def no_champion():
        asked.append(1)
        return None

    for i, day in enumerate(DAYS[:2]):
        _write_unlabelled_day(lake, "hdfs", day, seed=i)
    plan = plan_for_source(lake, "hdfs", DAYS[1], config, 1, True, no_champion)
    assert plan.skip_reason is None and not plan.labelled and asked == [1]
    assert (plan.holdout_days, plan.train_days) == ((DAYS[1],), (DAYS[0],))
    assert plan.fallback.startswith(f"no labelled day yet in the {config.window_days}-day window and no champion")
    assert plan.fallback.endswith("(need 2 validated labelled days in the 7-day window (1 holdout + 1 training), "
                                  "have 0)")
    assert TrainingPlan.from_dict(plan.to_dict()).fallback == plan.fallback
    # the champion came from such a night (judged without labels): the detectors go on nightly
    lake.write_report("hdfs", DAYS[0], "decision", {"challenger_version": "1", "labelled": False})
    again = plan_for_source(lake, "hdfs", DAYS[1], config, 1, True, lambda: "1")
    assert again.skip_reason is None and "champion v1 judged without labels" in again.fallback
    # a champion judged with labels (labels stopped coming for a week): skipped, the champion keeps scoring
    lake.write_report("hdfs", DAYS[0], "decision", {"challenger_version": "1", "labelled": True})
    kept = plan_for_source(lake, "hdfs", DAYS[1], config, 1, True, lambda: "1")
    assert kept.skip_reason and kept.labelled and kept.fallback is None
    # a source declared labels: none never asks for the champion; its plan is the unlabelled one
    assert plan_for_source(lake, "hdfs", DAYS[1], config, 1, False, lambda: 1 / 0).fallback is None
    # one labelled day in the window: the labels flow, wait for the second (today's skip, no fallback)
    one = _labelled_lake(tmp_path, DAYS[:1])
    waiting = plan_for_source(one, "hdfs", DAYS[0], config, 1, True, lambda: 1 / 0)
    assert waiting.skip_reason.endswith("have 1") and waiting.fallback is None
    two = _labelled_lake(tmp_path / "two", DAYS[:2])
    usual = plan_for_source(two, "hdfs", DAYS[1], config, 1, True, lambda: 1 / 0)
    assert usual.skip_reason is None and usual.labelled and usual.fallback is None


def test_the_fallback_s_detectors_are_judged_without_labels_and_the_record_says_why(tmp_path):
    from nightshift.training import plan_for_source

    settings = _local_settings(tmp_path)
    lake = Lake(settings.data_root)
    config = load_training_config(PROJECT_ROOT / "config")
    policy = load_policy(PROJECT_ROOT / "config")
    for i, day in enumerate(DAYS[:2]):
        _write_unlabelled_day(lake, "hdfs", day, seed=i)
    plan = plan_for_source(lake, "hdfs", DAYS[1], config, 1, True, lambda: None)
    detectors = [c["name"] for c in config.candidates if c["kind"] in DETECTOR_KINDS]
    results = [train_candidate(settings, config, plan, n) for n in detectors]
    record = apply_decision(settings, evaluate_candidates(settings, config, policy, plan, results, "auto", "test"))
    assert record["decision"] == PROMOTED and record["labelled"] is False, record["reason"]
    assert record["fallback"] == plan.fallback and record["reason"].startswith(plan.fallback)
