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
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
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


SUPERVISED_KINDS = ("logistic_regression", "random_forest", "hist_gradient_boosting", "decision_tree")
DETECTOR_KINDS = ("pca_detector", "isolation_forest", "invariants_miner")


def build_candidate(kind: str, params: dict[str, Any] | None = None, random_state: int = 0) -> Pipeline:
    """A fresh, unfitted candidate pipeline: vectorizer + classifier (or label-free detector) of the
    given kind. Supervised classifiers weigh the classes explicitly (``class_weight="balanced"``
    unless ``params`` says otherwise): anomalies are ~3% of sessions."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    params = dict(params or {})
    params.setdefault("class_weight", "balanced") if kind in SUPERVISED_KINDS else None
    if kind == "logistic_regression":
        steps = [("scale", StandardScaler()), ("classifier", LogisticRegression(random_state=random_state, **params))]
    elif kind == "random_forest":
        steps = [("classifier", RandomForestClassifier(random_state=random_state, n_jobs=1, **params))]
    elif kind == "hist_gradient_boosting":
        steps = [("classifier", HistGradientBoostingClassifier(random_state=random_state, **params))]
    elif kind == "decision_tree":
        steps = [("classifier", DecisionTreeClassifier(random_state=random_state, **params))]
    elif kind == "pca_detector":
        steps = [("classifier", PCADetector(**params))]
    elif kind == "isolation_forest":
        steps = [("classifier", IsolationForestDetector(random_state=random_state, **params))]
    elif kind == "invariants_miner":
        steps = [("classifier", InvariantsMiner(**params))]
    else:
        raise ValueError(f"unknown candidate kind {kind!r}; known: {', '.join(SUPERVISED_KINDS + DETECTOR_KINDS)}")
    return Pipeline([("vectorize", EventCountVectorizer()), *steps])


# --- the decision threshold, inside the model ----------------------------------------------------

def remap_scores(raw: np.ndarray, threshold: float) -> np.ndarray:
    """Monotone map of raw scores in [0, 1] such that ``raw >= threshold`` iff ``result >= 0.5``:
    [0, t) -> [0, 0.5) and [t, 1] -> [0.5, 1], both linear."""
    raw = np.clip(np.asarray(raw, dtype=np.float64), 0.0, 1.0)
    t = float(threshold)
    below = np.minimum(0.5 * raw / t if t > 0 else np.zeros_like(raw), np.nextafter(0.5, 0.0))
    above = 0.5 + 0.5 * (raw - t) / (1.0 - t) if t < 1 else np.full_like(raw, 0.5)
    return np.where(raw >= t, np.clip(above, 0.5, 1.0), below)


def best_f1_threshold(y, scores) -> tuple[float, float]:
    """The threshold that maximises F1 of ``scores >= threshold`` on ``(y, scores)``, placed
    half-way between the lowest score it flags and the next lower score (a margin for new data).
    Returns ``(threshold, f1)``; ``(0.5, 0.0)`` when ``y`` has no positive."""
    y = np.asarray(y).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if not y.any() or len(y) == 0:
        return 0.5, 0.0
    order = np.argsort(-scores, kind="mergesort")
    s, yy = scores[order], y[order]
    tp, fp = np.cumsum(yy), np.cumsum(~yy)
    last = np.r_[s[1:] != s[:-1], True]               # cut only between distinct scores
    f1 = np.where(last, 2 * tp / (2 * tp + fp + (yy.sum() - tp)), -1.0)
    i = int(np.argmax(f1))
    below = s[i + 1] if i + 1 < len(s) else 0.0
    return float((s[i] + below) / 2 if s[i] > below else s[i]), float(f1[i])


class ThresholdedClassifier(BaseEstimator, ClassifierMixin):
    """A classifier whose decision threshold is chosen for F1 on out-of-fold predictions of its
    own training data and folded into its probabilities.

    ``predict_proba`` returns ``[1 - p, p]`` with ``p = remap_scores(raw P(anomalous), threshold_)``,
    so ``p >= 0.5`` iff the raw score reaches the chosen threshold: batch scoring (``score >=
    0.5``), MLflow's pyfunc / model server and ``predict`` all make the same decision with no
    extra lookup. ``fit(X, y, days=...)``: with two or more training days the out-of-fold scores
    are time-ordered (fit on the days before each of the latest ``max_oof_days`` days, score that
    day); otherwise stratified ``folds``-fold. ``threshold`` fixes it instead (no out-of-fold fits).
    """

    def __init__(self, estimator=None, threshold: float | None = None, folds: int = 3, max_oof_days: int = 2,
                 random_state: int = 0):
        self.estimator = estimator
        self.threshold = threshold
        self.folds = folds
        self.max_oof_days = max_oof_days
        self.random_state = random_state

    def fit(self, X, y, days=None):
        from sklearn.base import clone

        y = np.asarray(y).astype(int)
        if self.threshold is not None:
            self.threshold_, self.threshold_f1_, self.threshold_source_ = float(self.threshold), None, "fixed"
        else:
            oof_y, oof_s, how = self._out_of_fold(X, y, days)
            if len(oof_y) and oof_y.any():
                self.threshold_, self.threshold_f1_ = best_f1_threshold(oof_y, oof_s)
                self.threshold_source_ = how
            else:
                self.threshold_, self.threshold_f1_, self.threshold_source_ = 0.5, None, "default (no out-of-fold positives)"
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = np.array([0, 1])
        return self

    def _out_of_fold(self, X, y, days):
        from sklearn.base import clone
        from sklearn.model_selection import StratifiedKFold

        scores, ys = [], []
        distinct = sorted(set(days)) if days is not None else []
        if len(distinct) >= 2:
            days = np.asarray(days)
            targets = distinct[1:][-max(1, self.max_oof_days):]
            for d in targets:
                train, test = days < d, days == d
                if len(set(y[train])) < 2:
                    continue
                model = clone(self.estimator).fit(_rows(X, train), y[train])
                scores.append(model.predict_proba(_rows(X, test))[:, 1])
                ys.append(y[test])
            if ys:
                return np.concatenate(ys), np.concatenate(scores), "time-ordered out-of-fold (" + ", ".join(targets) + ")"
        folds = min(self.folds, int(np.bincount(y, minlength=2).min()))
        if folds < 2:
            return np.array([]), np.array([]), "none"
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=self.random_state).split(np.zeros(len(y)), y):
            model = clone(self.estimator).fit(_rows(X, train), y[train])
            scores.append(model.predict_proba(_rows(X, test))[:, 1])
            ys.append(y[test])
        return np.concatenate(ys), np.concatenate(scores), f"stratified {folds}-fold out-of-fold"

    def raw_scores(self, X) -> np.ndarray:
        return self.estimator_.predict_proba(X)[:, 1]

    def predict_proba(self, X) -> np.ndarray:
        p = remap_scores(self.raw_scores(X), self.threshold_)
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    @property
    def named_steps(self):
        """The wrapped pipeline's steps (``model.named_steps["vectorize"]`` keeps working)."""
        return self.estimator_.named_steps


def _rows(X, rows):
    """Rows of ``X`` by a boolean mask or by positions."""
    rows = np.asarray(rows)
    positions = np.flatnonzero(rows) if rows.dtype == bool else rows
    return X.iloc[positions] if hasattr(X, "iloc") else X[positions]


def fit_model(model, X, y, days=None):
    """Fit any candidate: a ``ThresholdedClassifier`` gets the rows' days (time-ordered
    out-of-fold threshold), a label-free detector ignores ``y``."""
    if isinstance(model, ThresholdedClassifier):
        return model.fit(X, y, days=days)
    return model.fit(X, y)


def build_model(kind: str, params: dict[str, Any] | None = None, threshold: float | None = None,
                random_state: int = 0):
    """The logged model of a candidate: supervised kinds wrapped in a ``ThresholdedClassifier``
    (F1 threshold chosen in ``fit`` unless given), detectors as they are (their own threshold)."""
    pipeline = build_candidate(kind, params, random_state)
    if kind in DETECTOR_KINDS:
        return pipeline
    return ThresholdedClassifier(pipeline, threshold=threshold, random_state=random_state)


# --- detectors that need no labels (loglizer family) ---------------------------------------------

class PCADetector(BaseEstimator, ClassifierMixin):
    """PCA anomaly detection on event-count vectors (Xu et al., SOSP 2009; loglizer's ``PCA``).

    Fit (labels ignored), on the event-count columns only (``use_stats`` adds the session
    statistics): TF-IDF-style weighting of the columns, centring, principal components
    explaining ``variance`` of the variance span the normal space; a session's squared prediction
    error (SPE, its squared distance to the normal space) above the Q-statistic threshold
    (Jackson & Mudholkar 1979, confidence from ``c_alpha``: 3.2905 = 99.9%) is anomalous.
    ``predict_proba`` = ``[1 - p, p]`` with ``p = SPE / (SPE + Q)``: ``p >= 0.5`` iff ``SPE >= Q``.
    """

    def __init__(self, variance: float = 0.95, c_alpha: float = 3.2905, idf: bool = True, use_stats: bool = False):
        self.variance = variance
        self.c_alpha = c_alpha
        self.idf = idf
        self.use_stats = use_stats

    def _events(self, X) -> np.ndarray:
        """The event-count columns (``EventCountVectorizer`` puts the session statistics last);
        loglizer's PCA sees event counts only."""
        X = np.asarray(X, dtype=np.float64)
        return X if self.use_stats else X[:, : X.shape[1] - len(STAT_COLUMNS)]

    def fit(self, X, y=None):
        X = self._events(X)
        n = max(len(X), 1)
        self.idf_ = np.log(n / ((X > 0).sum(axis=0) + 1e-8)) if self.idf else np.ones(X.shape[1])
        self.idf_ = np.where(np.isfinite(self.idf_), np.maximum(self.idf_, 0.0), 0.0)
        Z = X * self.idf_
        self.mean_ = Z.mean(axis=0)
        Z = Z - self.mean_
        _, s, vt = np.linalg.svd(Z, full_matrices=False)
        eig = s ** 2 / max(n - 1, 1)
        total = eig.sum()
        k = int(np.searchsorted(np.cumsum(eig) / total, self.variance) + 1) if total > 0 else 0
        k = min(k, len(eig))
        self.components_ = vt[:k]
        rest = eig[k:]
        phi1, phi2, phi3 = rest.sum(), (rest ** 2).sum(), (rest ** 3).sum()
        if phi1 <= 0 or phi2 <= 0:
            self.q_ = 1e-12
        else:
            h0 = 1.0 - 2.0 * phi1 * phi3 / (3.0 * phi2 ** 2)
            h0 = h0 if abs(h0) > 1e-6 else 1e-6
            self.q_ = float(phi1 * (self.c_alpha * np.sqrt(2 * phi2 * h0 ** 2) / phi1 + 1.0
                                    + phi2 * h0 * (h0 - 1.0) / phi1 ** 2) ** (1.0 / h0))
        self.n_components_ = k
        self.classes_ = np.array([0, 1])
        return self

    def spe(self, X) -> np.ndarray:
        Z = self._events(X) * self.idf_ - self.mean_
        residual = Z - (Z @ self.components_.T) @ self.components_
        return (residual ** 2).sum(axis=1)

    def predict_proba(self, X) -> np.ndarray:
        e = self.spe(X)
        p = e / (e + self.q_)
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        return (self.spe(X) >= self.q_).astype(int)


class IsolationForestDetector(BaseEstimator, ClassifierMixin):
    """Isolation forest (Liu et al., ICDM 2008; loglizer's ``IsolationForest``) on event-count
    vectors, labels ignored. ``contamination`` sets the share of training sessions flagged.
    ``predict_proba`` = ``[1 - p, p]`` with ``p = sigmoid(-scale * decision_function)``: ``p >= 0.5``
    iff sklearn's own ``predict`` says outlier."""

    def __init__(self, n_estimators: int = 100, contamination: float | str = 0.03, max_samples: int | str = "auto",
                 scale: float = 20.0, random_state: int = 0):
        self.n_estimators = n_estimators
        self.contamination = contamination
        self.max_samples = max_samples
        self.scale = scale
        self.random_state = random_state

    def fit(self, X, y=None):
        from sklearn.ensemble import IsolationForest

        self.forest_ = IsolationForest(n_estimators=self.n_estimators, contamination=self.contamination,
                                       max_samples=self.max_samples, random_state=self.random_state, n_jobs=1).fit(X)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X) -> np.ndarray:
        d = self.forest_.decision_function(X)
        p = np.where(d <= 0, 1.0 / (1.0 + np.exp(np.clip(self.scale * d, -50, 50))),
                     np.exp(np.clip(-self.scale * d, -50, 50)) / (1.0 + np.exp(np.clip(-self.scale * d, -50, 50))))
        p = np.where(d <= 0, np.maximum(p, 0.5), np.minimum(p, np.nextafter(0.5, 0.0)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        return (self.forest_.decision_function(X) <= 0).astype(int)


class InvariantsMiner(BaseEstimator, ClassifierMixin):
    """Invariants mining (Lou et al., USENIX ATC 2010; loglizer's ``InvariantsMiner``), labels ignored.

    Fit: linear relations with small integer coefficients among the event counts of a session
    (e.g. ``count(A) - count(B) = 0``: every block received is also stored; ``count(C) = 0``: an
    event normal sessions never have) that hold in at least ``percentage`` of the training
    sessions. Combinations of 1..``max_size`` event columns are searched; for each, the
    eigenvector of the smallest eigenvalue of its block of the Gram matrix ``E^T E`` is the
    candidate, scaled to integers (at most ``max_coefficient``) and kept when it holds exactly often
    enough. Supersets of a kept invariant's columns are skipped (nothing new). Columns never seen
    non-zero in training and the ``other`` column (templates unknown to the model) are not mined.
    Predict: a session violating any invariant is anomalous; ``predict_proba`` gives
    ``p = v / (v + 1)`` for ``v`` violated invariants, so ``p >= 0.5`` iff at least one.
    """

    def __init__(self, percentage: float = 0.99, max_size: int = 3, max_coefficient: int = 10):
        self.percentage = percentage
        self.max_size = max_size
        self.max_coefficient = max_coefficient

    @staticmethod
    def _counts(X) -> np.ndarray:
        """Raw event counts back from ``EventCountVectorizer`` (``log1p``-scaled; the ``other``
        column and the session statistics dropped)."""
        X = np.asarray(X, dtype=np.float64)
        return np.rint(np.expm1(X[:, : X.shape[1] - len(STAT_COLUMNS) - 1]))

    def fit(self, X, y=None):
        import itertools

        E = self._counts(X)
        active = [j for j in range(E.shape[1]) if (E[:, j] != 0).any()]
        gram = E.T @ E
        self.invariants_: list[tuple[tuple[int, ...], np.ndarray]] = []
        for size in range(1, self.max_size + 1):
            combos = [c for c in itertools.combinations(active, size)
                      if not any(set(kept) <= set(c) for kept, _ in self.invariants_)]
            if not combos:
                continue
            idx = np.array(combos)
            _, vectors = np.linalg.eigh(gram[idx[:, :, None], idx[:, None, :]])
            for combo, vec in zip(combos, vectors[:, :, 0]):
                nonzero = np.abs(vec) > 1e-9
                if not nonzero.all():
                    continue              # a smaller combination holds it (or none does)
                theta = vec / np.min(np.abs(vec))
                coefficients = np.rint(theta)
                if np.max(np.abs(coefficients)) > self.max_coefficient or np.max(np.abs(theta - coefficients)) > 0.05:
                    continue
                if np.mean(np.abs(E[:, list(combo)] @ coefficients) < 0.5) >= self.percentage:
                    self.invariants_.append((tuple(int(j) for j in combo), coefficients))
        self.classes_ = np.array([0, 1])
        return self

    def violations(self, X) -> np.ndarray:
        E = self._counts(X)
        v = np.zeros(len(E))
        for combo, coefficients in self.invariants_:
            v += np.abs(E[:, list(combo)] @ coefficients) >= 0.5
        return v

    def predict_proba(self, X) -> np.ndarray:
        v = self.violations(X)
        p = v / (v + 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        return (self.violations(X) > 0).astype(int)
