"""bench/gate_scenario.py's own logic (the runs themselves are the bench: bench/README.md)."""

from __future__ import annotations

import importlib.util

from nightshift.gate import load_policy
from nightshift.settings import PROJECT_ROOT

_spec = importlib.util.spec_from_file_location("gate_scenario", PROJECT_ROOT / "bench" / "gate_scenario.py")
gate_scenario = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gate_scenario)


def test_the_before_configs_differ_from_the_shipped_one_only_in_the_gate_s_settings(tmp_path):
    shipped = load_policy(PROJECT_ROOT / "config")
    assert shipped.rule == "non_inferior" and shipped.bootstrap_days == "pooled"
    assert gate_scenario.config_dir_for("non_inferior", tmp_path) == PROJECT_ROOT / "config"
    for name, settings in (("strict", {"rule": "strict"}),
                           ("old", {"rule": "strict", "bootstrap_days": "holdout", "margin": 0.0})):
        base = tmp_path / name
        config = gate_scenario.config_dir_for(name, base)
        assert config == base / "config"
        assert load_policy(config).to_dict() == {**shipped.to_dict(), **settings}
        for other in ("training.yaml", "drift.yaml"):
            assert (config / other).read_text() == (PROJECT_ROOT / "config" / other).read_text()


def _record(day, decision, champion_before, champion_after, challenger_version, backtest, reason="r"):
    return {"day": day, "decision": decision, "reason": reason, "best_candidate": "random_forest",
            "candidates": {"random_forest": {"f1": 0.989}, "baseline_logreg": {"f1": 0.95}},
            "champion_before": champion_before, "champion_after": champion_after,
            "challenger_version": challenger_version, "champion_metrics": {"f1": 0.967} if champion_before else None,
            "train_days": ["d1", "d2", "d3"], "backtest": backtest, "policy": {"non_inferiority_delta": 0.02},
            "bootstrap": {"observed": 0.02, "lower": 0.0, "upper": 0.05, "confidence": 0.95, "days": [day]},
            "checks": [{"name": "bootstrap", "passed": decision == "promoted", "detail": "d"}]}


def _result(last):
    first = _record("d2", "promoted", None, "1", "1", [])
    return {"rule": "strict", "base": "/x", "nights": [
        {"day": "d2", "exit_code": 0, "seconds": 1, "blocks": 1500, "anomalies": 45, "record": first},
        {"day": "d4", "exit_code": 0, "seconds": 1, "blocks": 1500, "anomalies": 45, "record": last}]}


def test_the_report_says_whether_the_final_champion_is_the_best_candidate_and_why_not():
    rows = [{"day": "d3", "challenger_f1": 0.97, "champion_f1": 0.98}, {"day": "d4", "challenger_f1": 0.989,
                                                                          "champion_f1": 0.967}]
    kept = gate_scenario.report(_result(_record("d4", "kept", "1", "1", "2", rows, reason="bootstrap failed: x")))
    assert "final champion is the last night's best candidate: NO" in kept
    assert "best candidate non-inferior on every day compared: YES" in kept
    assert "is NOT the champion: bootstrap failed: x" in kept
    assert "| d4 | 0 | 1 | random_forest (0.989) | kept | v1 random_forest (0.967) |" in kept

    promoted = gate_scenario.report(_result(_record("d4", "promoted", "1", "2", "2", rows)))
    assert "final champion is the last night's best candidate: YES" in promoted and "NOT" not in promoted
    assert "| d4 | 0 | 1 | random_forest (0.989) | promoted | v2 random_forest (0.989) |" in promoted

    worse = [{"day": "d3", "challenger_f1": 0.95, "champion_f1": 0.98}]
    assert "non-inferior on every day compared: NO" in gate_scenario.report(
        _result(_record("d4", "kept", "1", "1", "2", worse)))
