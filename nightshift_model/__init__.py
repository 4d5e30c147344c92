"""The model's code: input contract and scikit-learn candidates (``nightshift_model``).

A model takes a session's raw statistics and event counts (``MODEL_INPUT_COLUMNS``; event counts
as a JSON object ``{"<template id>": count}``) and predicts 1 for an anomalous session. The
feature vocabulary (template ids seen in training) is fitted inside the pipeline and logged with
it, so unseen templates of later days land in an ``other`` bucket instead of breaking scoring.

This package is self-contained on purpose (numpy, pandas and scikit-learn only; it never imports
``nightshift``): it is the only code a logged model carries (``code_paths`` of ``log_model`` in
``nightshift.training``), and a pickled pipeline refers to its classes by this module's name
(``nightshift_model.EventCountVectorizer``), so the name is part of every logged model's format.
``nightshift.modeling`` re-exports everything here: models logged before the split, which pickled
``nightshift.modeling.EventCountVectorizer``, still load wherever ``nightshift`` is installed.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

STAT_COLUMNS = ["line_count", "duration_s", "warn_count", "error_count"]
MODEL_INPUT_COLUMNS = [*STAT_COLUMNS, "event_counts"]


def to_model_input(features: pd.DataFrame) -> pd.DataFrame:
    """Session features (as read from Parquet) -> the model's input frame.

    ``event_counts`` may be a dict, a list of ``(key, value)`` pairs (pyarrow's map type) or a
    JSON string; it becomes a JSON string with sorted keys.
    """
    def as_json(value: Any) -> str:
        if isinstance(value, str):
            return value
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "{}"
        mapping = dict(value)
        return json.dumps({str(k): int(v) for k, v in sorted(mapping.items())}, sort_keys=True)

    out = pd.DataFrame(
        {
            "line_count": features["line_count"].astype("int64"),
            "duration_s": features["duration_s"].astype("float64").fillna(0.0),
            "warn_count": features["warn_count"].fillna(0).astype("int64"),
            "error_count": features["error_count"].fillna(0).astype("int64"),
            "event_counts": [as_json(v) for v in features["event_counts"]],
        },
        index=features.index,
    )
    return out.reset_index(drop=True)


class EventCountVectorizer(BaseEstimator, TransformerMixin):
    """Turn model input rows into a numeric matrix.

    Columns: one per template id seen in ``fit`` (``vocabulary_``), one ``other`` column for
    templates not in the vocabulary, then the session statistics; all ``log1p``-scaled.
    """

    def __init__(self, min_sessions: int = 1):
        self.min_sessions = min_sessions

    def fit(self, X: pd.DataFrame, y=None):
        seen: dict[str, int] = {}
        for counts in _parse_counts(X["event_counts"]):
            for key in counts:
                seen[key] = seen.get(key, 0) + 1
        self.vocabulary_ = sorted((k for k, n in seen.items() if n >= self.min_sessions), key=_template_sort_key)
        self.n_features_in_ = len(MODEL_INPUT_COLUMNS)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        index = {key: i for i, key in enumerate(self.vocabulary_)}
        width = len(index) + 1 + len(STAT_COLUMNS)
        matrix = np.zeros((len(X), width), dtype=np.float64)
        other = len(index)
        for row, counts in enumerate(_parse_counts(X["event_counts"])):
            for key, n in counts.items():
                matrix[row, index.get(key, other)] += n
        matrix[:, other + 1 :] = X[STAT_COLUMNS].to_numpy(dtype=np.float64)
        return np.log1p(np.clip(matrix, 0, None))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.array([f"template_{k}" for k in self.vocabulary_] + ["template_other", *STAT_COLUMNS], dtype=object)


def _parse_counts(column) -> list[dict[str, int]]:
    return [json.loads(v) if isinstance(v, str) else dict(v or {}) for v in column]


def _template_sort_key(key: str):
    return (0, int(key), key) if key.isdigit() else (1, 0, key)


def build_candidate(kind: str, params: dict[str, Any] | None = None, random_state: int = 0) -> Pipeline:
    """A fresh, unfitted candidate pipeline: vectorizer + classifier of the given kind."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    params = dict(params or {})
    if kind == "logistic_regression":
        steps = [("scale", StandardScaler()), ("classifier", LogisticRegression(class_weight="balanced", random_state=random_state, **params))]
    elif kind == "random_forest":
        steps = [("classifier", RandomForestClassifier(class_weight="balanced", random_state=random_state, n_jobs=1, **params))]
    elif kind == "hist_gradient_boosting":
        steps = [("classifier", HistGradientBoostingClassifier(random_state=random_state, **params))]
    else:
        raise ValueError(f"unknown candidate kind {kind!r}; known: logistic_regression, random_forest, hist_gradient_boosting")
    return Pipeline([("vectorize", EventCountVectorizer()), *steps])
