"""The promotion gate on constructed cases where the right decision is known."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from nightshift.gate import (
    check_backtest, check_bootstrap, check_floors, check_slices, decision_reason, is_stale, judged_interval, length_bucket,
    load_policy, metrics, paired_bootstrap_f1_diff, pooled_bootstrap_f1_diff, slice_table, waive_backtest_for_broken_champion,
)
from nightshift.settings import PROJECT_ROOT

POLICY = dataclasses.replace(load_policy(PROJECT_ROOT / "config"), margin=0.0, bootstrap_resamples=500)
STRICT = dataclasses.replace(POLICY, rule="strict")
NON_INFERIOR = dataclasses.replace(POLICY, rule="non_inferior", non_inferiority_delta=0.02, stale_after_days=7)


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
    assert not check_bootstrap(interval, STRICT)["passed"]


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


def test_a_champion_below_the_floors_does_not_keep_its_place_through_the_backtest():
    """The demo's night after the drift: the champion flags nearly everything (precision 0.03); a
    challenger trained on the new version passes the floors and is far better tonight, but loses
    on a pre-drift backtest day. Without the waiver the broken champion would stay."""
    backtest = check_backtest([{"day": "2026-11-03", "challenger_f1": 0.945, "champion_f1": 0.970},
                               {"day": "2026-11-04", "challenger_f1": 0.409, "champion_f1": 0.050}], POLICY)
    assert not backtest["passed"]
    floors = check_floors({"precision": 0.93, "recall": 0.91}, POLICY)
    broken = {"precision": 0.031, "recall": 1.0}
    better = {"lower": 0.80, "upper": 0.89}
    waived = waive_backtest_for_broken_champion(backtest, floors, broken, better, POLICY)
    assert waived["passed"] and waived["waived"]
    assert waived["detail"].startswith("waived: the champion is below the floors on tonight's holdout (precision 0.031")
    assert "loses on 2026-11-03" in waived["detail"]
    # a healthy champion, a challenger below the floors, one not better tonight, or the setting off: no waiver
    assert waive_backtest_for_broken_champion(backtest, floors, {"precision": 0.9, "recall": 0.9}, better, POLICY) is backtest
    assert waive_backtest_for_broken_champion(backtest, check_floors({"precision": 0.3, "recall": 0.6}, POLICY), broken,
                                              better, POLICY) is backtest
    assert waive_backtest_for_broken_champion(backtest, floors, broken, {"lower": -0.01, "upper": 0.2}, POLICY) is backtest
    off = dataclasses.replace(POLICY, broken_champion_yields=False)
    assert waive_backtest_for_broken_champion(backtest, floors, broken, better, off) is backtest


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


# --- weighing all the evidence: pooled days, non-inferiority, staleness ---------------------------

def _day(seed, n=1500, positives=45, champion_misses=6, challenger_misses=3, false_alarms=5):
    """One night shaped like the real HDFS data: ~1,500 sessions, 45 anomalous. Both models raise
    the same false alarms; the champion misses ``champion_misses`` anomalies, the challenger
    ``challenger_misses`` (its misses are a subset of the champion's when it misses fewer)."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=bool)
    y[rng.choice(n, positives, replace=False)] = True
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    alarms = rng.choice(neg, false_alarms, replace=False)
    order = rng.permutation(pos)
    champion, challenger = y.copy(), y.copy()
    champion[order[:champion_misses]] = False
    challenger[order[:challenger_misses]] = False
    champion[alarms] = challenger[alarms] = True
    return y, challenger, champion


def test_a_small_improvement_repeated_over_three_days_is_significant_when_pooled():
    days = [_day(seed) for seed in (1, 2, 3)]            # the challenger catches 3 more anomalies every night
    one = pooled_bootstrap_f1_diff(days[:1], 1000, 0.95, seed=0)
    pooled = pooled_bootstrap_f1_diff(days, 1000, 0.95, seed=0, names=["d3", "d1", "d2"])
    assert one["observed"] > 0.02 and one["lower"] <= 0.0      # one holdout day: the "+0.000"
    assert not check_bootstrap(one, STRICT)["passed"]
    assert pooled["lower"] > 0.0 and pooled["days"] == ["d3", "d1", "d2"] and pooled["sessions"] == [1500] * 3
    assert check_bootstrap(pooled, STRICT)["passed"]           # even the strict rule promotes it
    check = check_bootstrap(pooled, NON_INFERIOR)
    assert check["passed"] and check["via"] == "superior" and "pooled" in check["detail"]


def test_a_one_day_fluke_is_not_promoted():
    fluke = _day(1)                                             # better on the holdout ...
    worse = [_day(s, champion_misses=3, challenger_misses=6) for s in (2, 3)]   # ... worse on the two nights before
    pooled = pooled_bootstrap_f1_diff([fluke, *worse], 1000, 0.95, seed=0)
    assert pooled["observed"] < 0
    for policy in (STRICT, NON_INFERIOR):
        assert not check_bootstrap(pooled, policy)["passed"]


def test_a_non_inferior_challenger_replaces_a_stale_champion_only():
    # the challenger misses one more anomaly than the champion on one of three days: a hair worse
    days = [_day(1, champion_misses=3, challenger_misses=4), _day(2, champion_misses=3, challenger_misses=3), _day(3, champion_misses=3, challenger_misses=3)]
    interval = pooled_bootstrap_f1_diff(days, 1000, 0.95, seed=0)
    assert interval["observed"] < 0 and interval["lower"] > -NON_INFERIOR.non_inferiority_delta
    fresh = is_stale(["2026-11-01", "2026-11-02", "2026-11-03"], ["2026-11-02", "2026-11-03", "2026-11-04"],
                     "2026-11-05", NON_INFERIOR)
    assert not fresh["stale"]
    assert not check_bootstrap(interval, NON_INFERIOR, fresh)["passed"]
    one_day = is_stale(["2026-11-01"], ["2026-11-01", "2026-11-02", "2026-11-03"], "2026-11-04", NON_INFERIOR)
    assert one_day["stale"] and "1 day(s) vs the challenger's 3" in one_day["detail"]
    check = check_bootstrap(interval, NON_INFERIOR, one_day)
    assert check["passed"] and check["via"] == "non_inferior+stale"
    old = is_stale(["2026-10-01", "2026-10-02"], ["2026-11-01", "2026-11-02"], "2026-11-03", NON_INFERIOR)
    assert old["stale"] and old["champion_age_days"] == 32
    assert check_bootstrap(interval, NON_INFERIOR, old)["passed"]
    assert not check_bootstrap(interval, STRICT, one_day)["passed"]    # strict ignores staleness
    # not stale when the challenger's data is not more recent, or the champion's days are unknown
    assert not is_stale(["2026-11-01"], ["2026-10-30", "2026-10-31"], "2026-11-02", NON_INFERIOR)["stale"]
    assert not is_stale(None, ["2026-11-01"], "2026-11-02", NON_INFERIOR)["stale"]


def test_non_inferior_with_a_better_point_estimate_passes_but_a_clearly_worse_one_does_not():
    better = pooled_bootstrap_f1_diff([_day(1, champion_misses=4, challenger_misses=3)], 1000, 0.95, seed=0)     # one more catch on one day
    assert better["observed"] > 0 and better["lower"] <= 0
    check = check_bootstrap(better, NON_INFERIOR)
    assert check["passed"] and check["via"] == "non_inferior+better"
    assert not check_bootstrap(better, STRICT)["passed"]
    worse = pooled_bootstrap_f1_diff([_day(s, champion_misses=3, challenger_misses=9) for s in (1, 2, 3)], 1000, 0.95, seed=0)
    assert worse["lower"] < -NON_INFERIOR.non_inferiority_delta
    stale = {"stale": True, "detail": "champion stale"}
    assert not check_bootstrap(worse, NON_INFERIOR, stale)["passed"]


def test_strict_rule_is_todays_rule():
    for lower, observed in ((0.0, 0.03), (0.001, 0.03), (-0.01, 0.02), (0.05, 0.08)):
        interval = {"observed": observed, "lower": lower, "upper": observed + 0.02, "resamples": 10, "confidence": 0.95}
        for margin in (0.0, 0.01):
            policy = dataclasses.replace(STRICT, margin=margin)
            assert check_bootstrap(interval, policy)["passed"] == (lower > margin)
    # one day pooled = the plain paired bootstrap
    y, a, b = _day(4)
    assert pooled_bootstrap_f1_diff([(y, a, b)], 300, 0.9, 5) == paired_bootstrap_f1_diff(y, a, b, 300, 0.9, 5)


def test_the_old_gate_is_strict_on_the_holdout_and_keeps_the_champion_at_a_lower_bound_of_exactly_zero():
    """Issue 13's real case: tonight the challenger catches one anomaly more than the champion and is
    otherwise the same, so the holdout bootstrap's lower bound is exactly +0.000 (a resample without
    that session is a tie). The old gate (``rule: strict`` + ``bootstrap_days: holdout``) keeps the
    champion; the shipped default (``non_inferior``, pooled with backtest days where the two are
    equal) promotes the non-inferior challenger for its better point estimate. And ``rule: strict``
    alone is not the old gate: it judges the pooled interval."""
    shipped = load_policy(PROJECT_ROOT / "config")
    assert shipped.rule == "non_inferior" and shipped.bootstrap_days == "pooled" and shipped.margin == 0.0
    old_gate = dataclasses.replace(shipped, rule="strict", bootstrap_days="holdout")
    floors = {"name": "floors", "passed": True, "detail": "floors passed"}
    holdout = _day(1, champion_misses=4, challenger_misses=3)
    names = ["d3", "d1", "d2"]

    def judged(policy, backtest_days):
        holdout_interval = pooled_bootstrap_f1_diff([holdout], policy.bootstrap_resamples, policy.confidence,
                                                    policy.seed, names[:1])
        interval = judged_interval(policy, holdout_interval, [holdout, *backtest_days], names)
        return holdout_interval, interval, check_bootstrap(interval, policy)

    equal = [_day(s, champion_misses=3, challenger_misses=3) for s in (2, 3)]
    holdout_interval, interval, check = judged(old_gate, equal)
    assert interval is holdout_interval and holdout_interval["days"] == ["d3"]
    assert holdout_interval["lower"] == 0.0 and holdout_interval["observed"] > 0
    assert not check["passed"] and "(holdout)" in check["detail"] and "[+0.000," in check["detail"]
    assert decision_reason([floors, check]) == (False, f"bootstrap failed: {check['detail']}")    # kept

    _, interval, check = judged(shipped, equal)
    assert interval["days"] == names and interval["observed"] > 0 and interval["lower"] == 0.0
    assert check["passed"] and check["via"] == "non_inferior+better" and "pooled" in check["detail"]
    assert decision_reason([floors, check])[0]                                                   # promoted

    # the same holdout after two nights on which the challenger caught three more each: the pooled
    # interval clears 0, so strict on pooled days promotes where the old gate (holdout only) keeps
    better = [_day(s) for s in (2, 3)]
    assert judged(dataclasses.replace(shipped, rule="strict"), better)[2]["passed"]
    assert not judged(old_gate, better)[2]["passed"]


def test_policy_rejects_an_unknown_rule(tmp_path):
    text = (PROJECT_ROOT / "config" / "promotion.yaml").read_text().replace("rule: non_inferior", "rule: lenient")
    (tmp_path / "promotion.yaml").write_text(text)
    with pytest.raises(ValueError, match="rule must be one of"):
        load_policy(tmp_path)


def test_backtest_days_the_champion_trained_on_are_shown_not_judged():
    rows = [{"day": "d1", "challenger_f1": 0.90, "champion_f1": 1.00, "champion_in_sample": True},
            {"day": "d2", "challenger_f1": 0.95, "champion_f1": 0.94, "champion_in_sample": False}]
    check = check_backtest(rows, POLICY)
    assert check["passed"] and "d1: 0.900 vs 1.000 (champion in sample, not judged)" in check["detail"]
    rows[0]["champion_in_sample"] = False
    assert not check_backtest(rows, POLICY)["passed"]
