"""The promotion gate on constructed cases where the right decision is known."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from nightshift.gate import (
    check_backtest, check_bootstrap, check_floors, check_slices, decision_reason, length_bucket, load_policy, metrics,
    paired_bootstrap_f1_diff, slice_table,
)
from nightshift.settings import PROJECT_ROOT

POLICY = dataclasses.replace(load_policy(PROJECT_ROOT / "config"), margin=0.0, bootstrap_resamples=500)


def _holdout(n=2000, positives=200, seed=0):
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=bool)
    y[rng.choice(n, positives, replace=False)] = True
    return y, rng


def _flip(pred, y, rng, share_fn, share_fp):
    """A model that misses ``share_fn`` of positives and raises ``share_fp`` false alarms."""
    pred = y.copy()
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    pred[rng.choice(pos, int(len(pos) * share_fn), replace=False)] = False
    pred[rng.choice(neg, int(len(neg) * share_fp), replace=False)] = True
    return pred


def test_clearly_better_challenger_has_a_positive_interval():
    y, rng = _holdout()
    champion = _flip(y, y, rng, 0.40, 0.05)
    challenger = _flip(y, y, rng, 0.05, 0.01)
    interval = paired_bootstrap_f1_diff(y, challenger, champion, 500, 0.95, seed=1)
    assert interval["lower"] > 0.2 and interval["lower"] <= interval["observed"] <= interval["upper"]
    assert check_bootstrap(interval, POLICY)["passed"]


def test_equal_models_do_not_pass_the_bootstrap():
    y, rng = _holdout()
    champion = _flip(y, y, rng, 0.10, 0.02)
    challenger = champion.copy()
    flip = rng.choice(len(y), 10, replace=False)        # a few coin-flip differences
    challenger[flip] = ~challenger[flip]
    interval = paired_bootstrap_f1_diff(y, challenger, champion, 500, 0.95, seed=1)
    assert interval["lower"] < 0 < interval["upper"] or interval["lower"] <= POLICY.margin
    assert not check_bootstrap(interval, POLICY)["passed"]


def test_bootstrap_is_reproducible_and_rejects_empty_holdouts():
    y, rng = _holdout(300, 30)
    a, b = _flip(y, y, rng, 0.1, 0.01), _flip(y, y, rng, 0.3, 0.01)
    assert paired_bootstrap_f1_diff(y, a, b, 200, 0.9, 3) == paired_bootstrap_f1_diff(y, a, b, 200, 0.9, 3)
    with pytest.raises(ValueError):
        paired_bootstrap_f1_diff([], [], [], 10, 0.9, 0)


def test_challenger_that_wins_overall_but_collapses_on_a_slice_is_rejected():
    y, rng = _holdout(3000, 300)
    component = np.where(np.arange(3000) % 3 == 0, "dfs.DataNode", "dfs.FSNamesystem")
    frame = pd.DataFrame({"label": y.astype(int), "component": component, "line_count": rng.integers(1, 80, 3000)})
    champion = _flip(y, y, rng, 0.30, 0.02)
    challenger = y.copy()                                            # perfect ...
    datanode = component == "dfs.DataNode"
    challenger[datanode] = False                                     # ... except it never flags DataNode sessions
    assert metrics(y, challenger)["f1"] > metrics(y, champion)["f1"]  # wins overall
    rows = slice_table(frame, challenger, champion, ["component", "length_bucket"], POLICY.slice_min_sessions,
                       POLICY.slice_min_positives)
    check = check_slices(rows, POLICY)
    assert not check["passed"] and "component=dfs.DataNode" in check["detail"]
    assert check_slices(slice_table(frame, y, champion, ["component"], 30, 5), POLICY)["passed"]


def test_small_slices_are_shown_but_not_judged():
    frame = pd.DataFrame({"label": [1, 0, 1], "component": ["a", "a", "b"], "line_count": [3, 4, 60]})
    rows = slice_table(frame, np.array([0, 0, 0]), np.array([1, 0, 1]), ["component"], 30, 5)
    assert [r["judged"] for r in rows] == [False, False]
    assert check_slices(rows, POLICY)["passed"]


def test_challenger_that_wins_one_day_only_fails_the_backtest():
    rows = [
        {"day": "2026-11-03", "challenger_f1": 0.70, "champion_f1": 0.90},
        {"day": "2026-11-04", "challenger_f1": 0.99, "champion_f1": 0.80},
    ]
    check = check_backtest(rows, POLICY)
    assert not check["passed"] and "loses on 2026-11-03" in check["detail"]
    steady = [{"day": "d1", "challenger_f1": 0.89, "champion_f1": 0.90}, {"day": "d2", "challenger_f1": 0.95, "champion_f1": 0.8}]
    assert check_backtest(steady, POLICY)["passed"]              # within the tolerance on d1


def test_floors_and_the_combined_decision():
    assert not check_floors({"precision": 0.9, "recall": 0.3}, POLICY)["passed"]
    ok, reason = decision_reason([{"name": "floors", "passed": True, "detail": ""},
                                {"name": "backtest", "passed": False, "detail": "loses on d1"}])
    assert not ok and reason == "backtest failed: loses on d1"


def test_length_buckets():
    assert list(length_bucket([1, 5, 6, 20, 21, 50, 51, 999])) == ["1-5", "1-5", "6-20", "6-20", "21-50", "21-50", "51+", "51+"]


def test_policy_file_is_strict(tmp_path):
    (tmp_path / "promotion.yaml").write_text((PROJECT_ROOT / "config" / "promotion.yaml").read_text() + "typo_key: 1\n")
    with pytest.raises(ValueError, match="unknown keys \\['typo_key'\\]"):
        load_policy(tmp_path)
