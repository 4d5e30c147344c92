"""The model input contract and the candidates (no Spark, no MLflow)."""

from __future__ import annotations

import json

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


@pytest.mark.parametrize("kind", ["logistic_regression", "random_forest", "hist_gradient_boosting"])
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


def test_unknown_candidate_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown candidate kind"):
        build_candidate("svm")
