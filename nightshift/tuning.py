"""A small hyperparameter search per candidate, on the training days only, within a time budget.

Validation is time-ordered: fit on the earlier training days, validate on the latest training day
(the plan's holdout is never passed here: callers hand over the training sessions only). With a
single training day it falls back to a stratified split of that day. A configuration is scored by
the best F1 any threshold reaches on the validation day (the threshold itself is chosen later,
inside the model: ``nightshift_model.ThresholdedClassifier``). The budget (``config/training.yaml``
``tuning.budget_s``) is respected: a configuration is not started when the time spent plus the
slowest configuration so far would pass it; the base ``params`` are always tried first.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Callable

import numpy as np


def configurations(spec: dict[str, Any], max_configs: int) -> list[dict[str, Any]]:
    """The base params first, then the grid ``spec["search"]`` (each combination over the base),
    without duplicates, at most ``max_configs``."""
    base = dict(spec.get("params") or {})
    grid = spec.get("search") or {}
    out = [base]
    keys = sorted(grid)
    for combo in itertools.product(*(grid[k] for k in keys)):
        params = {**base, **dict(zip(keys, combo))}
        if params not in out:
            out.append(params)
    return out[:max(1, max_configs)]


def validation_split(frame) -> tuple[np.ndarray, np.ndarray, str]:
    """Boolean masks (fit, validate) over ``frame`` (training sessions with ``day`` and ``label``)."""
    y = frame["label"].to_numpy().astype(int)
    days = frame["day"].to_numpy() if "day" in frame.columns else np.full(len(frame), "the training day")
    distinct = sorted(set(days))
    if len(distinct) >= 2:
        fit, val = days < distinct[-1], days == distinct[-1]
        if len(set(y[fit])) == 2 and y[val].any():
            return fit, val, f"time-ordered: fit on {', '.join(distinct[:-1])}, validate on {distinct[-1]}"
    from sklearn.model_selection import StratifiedShuffleSplit

    if np.bincount(y, minlength=2).min() < 2:
        return np.ones(len(y), bool), np.zeros(len(y), bool), "none (too few anomalous sessions)"
    train_idx, val_idx = next(StratifiedShuffleSplit(1, test_size=1 / 3, random_state=0).split(np.zeros(len(y)), y))
    fit, val = np.zeros(len(y), bool), np.zeros(len(y), bool)
    fit[train_idx], val[val_idx] = True, True
    return fit, val, f"stratified 1/3 split of the training day {distinct[0]} (one training day)"


def search(spec: dict[str, Any], train_frame, budget_s: float, max_configs: int = 4,
           clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Choose ``spec``'s params on ``train_frame`` (the training sessions only). Returns the chosen
    params, every configuration tried with its validation F1 and seconds, how it validated, the
    time spent and whether the budget cut the search short."""
    from nightshift_model import best_f1_threshold, build_candidate, to_model_input

    configs = configurations(spec, max_configs)
    fit, val, how = validation_split(train_frame)
    X, y = to_model_input(train_frame), train_frame["label"].to_numpy().astype(int)
    start, slowest, tried = clock(), 0.0, []
    if not val.any() or len(configs) == 1:
        return {"params": configs[0], "tried": [], "validation": how if val.any() else how, "seconds": 0.0,
                "budget_s": budget_s, "cut_by_budget": False, "configurations": len(configs)}
    for params in configs:
        elapsed = clock() - start
        if tried and elapsed + slowest > budget_s:
            break
        t = clock()
        model = build_candidate(spec["kind"], params).fit(X[fit], y[fit])
        scores = model.predict_proba(X[val])[:, 1]
        _, f1 = best_f1_threshold(y[val], scores)
        seconds = clock() - t
        slowest = max(slowest, seconds)
        tried.append({"params": params, "validation_f1": float(f1), "seconds": round(seconds, 3)})
    best = max(tried, key=lambda r: r["validation_f1"])      # first wins ties: the base params
    return {"params": best["params"], "tried": tried, "validation": how, "seconds": round(clock() - start, 3),
            "budget_s": budget_s, "cut_by_budget": len(tried) < len(configs), "configurations": len(configs)}
