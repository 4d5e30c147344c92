"""The model's input contract and the scikit-learn candidates: re-exported from ``nightshift_model``.

The code lives in the self-contained top-level package ``nightshift_model`` (the only code a logged
model carries). This module keeps the old import path for callers and for models logged before the
split, whose pickles name ``nightshift.modeling.EventCountVectorizer``: unpickling looks the name
up here and gets the same class object.
"""

from __future__ import annotations

from nightshift_model import (
    DETECTOR_KINDS,
    MODEL_INPUT_COLUMNS,
    STAT_COLUMNS,
    SUPERVISED_KINDS,
    EventCountVectorizer,
    InvariantsMiner,
    IsolationForestDetector,
    PCADetector,
    ThresholdedClassifier,
    best_f1_threshold,
    build_candidate,
    build_model,
    fit_model,
    remap_scores,
    to_model_input,
)

__all__ = ["DETECTOR_KINDS", "MODEL_INPUT_COLUMNS", "STAT_COLUMNS", "SUPERVISED_KINDS", "EventCountVectorizer",
           "InvariantsMiner", "IsolationForestDetector", "PCADetector", "ThresholdedClassifier", "best_f1_threshold", "build_candidate",
           "build_model", "fit_model", "remap_scores", "to_model_input"]
