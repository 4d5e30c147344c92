"""Promotion, the gate's wiring, modes, rollback and the promotion log, with real scikit-learn
models and a real MLflow store (SQLite) on synthetic feature partitions (no Spark needed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nightshift import promotion_log
from nightshift.gate import load_policy
from nightshift.lake import Lake
from nightshift.promotion import KEPT, PENDING, PROMOTED, apply_decision, evaluate_candidates
from nightshift.rollback import RollbackRefused, rollback
from nightshift.settings import PROJECT_ROOT, load_settings
from nightshift.training import load_training_config, plan_training, train_candidate

DAYS = ["2026-05-01", "2026-05-02", "2026-05-03"]


def _sessions(day: str, n: int, seed: int, anomaly_template: str) -> pd.DataFrame:
    """Normal sessions use templates 1-3; anomalies add ``anomaly_template`` and drop an ack."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        anomalous = rng.random() < 0.1
        counts = {"1": 3, "2": 3, "3": int(rng.integers(1, 3))}
        if anomalous:
            counts[anomaly_template] = 1
            counts["3"] = 0
        rows.append({"session_id": f"blk_{day}_{i}", "component": "dfs.DataNode" if i % 2 else "dfs.FSNamesystem",
                     "line_count": sum(counts.values()), "duration_s": float(rng.integers(1, 60)),
                     "warn_count": int(anomalous and rng.random() < 0.5), "error_count": 0,
                     "event_counts": [(k, v) for k, v in sorted(counts.items()) if v], "label": int(anomalous)})
    return pd.DataFrame(rows)


def _write_day(lake: Lake, day: str, frame: pd.DataFrame) -> None:
    out = lake.features_dir("hdfs", day)
    out.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame.drop(columns=["event_counts"]), preserve_index=False).append_column(
        "event_counts", pa.array(frame["event_counts"].tolist(), type=pa.map_(pa.string(), pa.int64())))
    pq.write_table(table, out / "part-0.parquet")
    lake.labels_dir("hdfs", day).mkdir(parents=True, exist_ok=True)
    frame[["session_id", "label"]].to_csv(lake.labels_file("hdfs", day), index=False)
    import nightshift.validation as validation

    fingerprint = getattr(validation, "data_fingerprint", None)      # reports name the data they validated
    for suite in ("parsed_lines", "session_features"):
        report = {"success": True, "failures": [], "suite": suite}
        if fingerprint is not None:
            report["data_fingerprint"] = fingerprint(lake, "hdfs", day, suite)
        lake.write_report("hdfs", day, f"validation_{suite}", report)


@pytest.fixture
def env(tmp_path):
    settings = dataclasses.replace(load_settings(), data_root=tmp_path / "lake",
                                   mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    config = load_training_config(PROJECT_ROOT / "config")
    config = dataclasses.replace(config, candidates=tuple(c for c in config.candidates if c["name"] == "baseline_logreg"))
    # today's gate exactly (strict rule on the holdout alone); the new default is tested below
    policy = dataclasses.replace(load_policy(PROJECT_ROOT / "config"), bootstrap_resamples=300, slice_min_sessions=50,
                                 rule="strict", bootstrap_days="holdout", backtest_days=2)
    return settings, config, policy, Lake(settings.data_root)


def _night(settings, config, policy, lake, day, mode="auto"):
    plan = plan_training(lake, "hdfs", day, config, policy.holdout_days)
    results = [train_candidate(settings, config, plan, c["name"]) for c in config.candidates]
    record = evaluate_candidates(settings, config, policy, plan, results, mode, decided_by="test")
    return record


def test_promote_keep_rollback_and_the_log(env):
    settings, config, policy, lake = env
    for i, day in enumerate(DAYS):
        _write_day(lake, day, _sessions(day, 600, seed=i, anomaly_template="9"))

    first = apply_decision(settings, _night(settings, config, policy, lake, DAYS[1]))
    assert first["decision"] == PROMOTED and first["champion_after"] == "1" and first["reason"].startswith("no champion")
    assert (lake.reports_dir("hdfs", DAYS[1]) / "decision_record" / "confusion_matrix.png").exists()

    # same data distribution: the challenger is not significantly better -> kept, with the bootstrap named
    second = apply_decision(settings, _night(settings, config, policy, lake, DAYS[2]))
    assert second["decision"] == KEPT and "bootstrap failed" in second["reason"]
    assert second["champion_after"] == "1" and [c["name"] for c in second["checks"]] == ["floors", "bootstrap", "backtest", "slices"]
    assert len(second["backtest"]) == policy.backtest_days and second["slices"]
    md = (lake.reports_dir("hdfs", DAYS[2]) / "decision_record" / "decision.md").read_text()
    assert "## Backtest" in md and "## Slices" in md and "bootstrap" in md
    assert "below the floors" not in md             # a healthy champion kept: no warning
    # the same record as a self-contained page (MLflow renders HTML artifacts, not Markdown)
    page = (lake.reports_dir("hdfs", DAYS[2]) / "decision_record" / "decision.html").read_text()
    assert "<table>" in page and page.count('src="data:image/png;base64,') == 2 and "](confusion" not in page

    model = config.model_name("hdfs")
    with pytest.raises(RollbackRefused, match="has no 'previous' alias"):
        rollback(settings, model, decided_by="test", reason="nothing to go back to")
    with pytest.raises(RollbackRefused, match="never passed the promotion gate"):
        rollback(settings, model, to_version="2", decided_by="test", reason="try the kept one")
    forced = rollback(settings, model, to_version="2", force=True, decided_by="test", reason="operator insists")
    assert (forced["from_version"], forced["to_version"]) == ("1", "2") and "forced" in forced["reason"]
    back = rollback(settings, model, decided_by="test", reason="undo")          # to 'previous' = v1
    assert (back["from_version"], back["to_version"]) == ("2", "1")

    entries = promotion_log.read(settings.data_root, model)
    assert [(e["action"], e["from_version"], e["to_version"]) for e in entries] == [
        ("promote", None, "1"), ("rollback", "1", "2"), ("rollback", "2", "1")]
    assert "operator insists" in promotion_log.render(entries)


def test_dry_run_and_manual_modes_move_nothing_until_approved(env):
    settings, config, policy, lake = env
    for i, day in enumerate(DAYS[:2]):
        _write_day(lake, day, _sessions(day, 600, seed=i, anomaly_template="9"))
    dry = apply_decision(settings, _night(settings, config, policy, lake, DAYS[1], mode="dry_run"))
    assert dry["decision"] == PROMOTED and dry["dry_run"] and dry["champion_after"] is None
    assert promotion_log.read(settings.data_root, config.model_name("hdfs")) == []

    pending = _night(settings, config, policy, lake, DAYS[1], mode="manual")
    assert pending["decision"] == PENDING
    assert apply_decision(settings, pending)["champion_after"] is None          # no approval, no move
    approved = apply_decision(settings, pending, approved_by="airflow-user:alice")
    assert approved["decision"] == PROMOTED and approved["champion_after"] == pending["challenger_version"]
    assert promotion_log.read(settings.data_root, config.model_name("hdfs"))[-1]["decided_by"] == "airflow-user:alice"


def test_default_rule_pools_the_backtest_days_and_replaces_a_stale_champion(env):
    """Default gate (rule non_inferior, bootstrap pooled over holdout + backtest days): night 2's
    champion trained on one day; night 3's challenger, trained on two, is non-inferior on the
    pooled days (here the holdout alone: the only other day is the champion's own), so it replaces
    the stale champion; the record carries every rule's numbers."""
    settings, config, _, lake = env
    policy = dataclasses.replace(load_policy(PROJECT_ROOT / "config"), bootstrap_resamples=300, slice_min_sessions=50)
    assert policy.rule == "non_inferior" and policy.bootstrap_days == "pooled"
    for i, day in enumerate(DAYS):
        _write_day(lake, day, _sessions(day, 600, seed=i, anomaly_template="9"))
    first = apply_decision(settings, _night(settings, config, policy, lake, DAYS[1]))
    assert first["decision"] == PROMOTED
    second = apply_decision(settings, _night(settings, config, policy, lake, DAYS[2]))
    assert second["staleness"]["stale"] and second["staleness"]["champion_days"] == 1
    # DAYS[1] was the champion's own holdout, the day it was chosen on as the best of its night: in
    # sample for it (its F1 there is optimistic), so shown in the backtest but neither judged nor pooled
    assert second["bootstrap"]["days"] == [DAYS[2]] and second["bootstrap"]["sessions"] == [600]
    assert [(r["day"], r["champion_in_sample"]) for r in second["backtest"]] == [(DAYS[1], True), (DAYS[2], False)]
    assert second["bootstrap_holdout"]["days"] == [DAYS[2]]
    check = next(c for c in second["checks"] if c["name"] == "bootstrap")
    assert second["decision"] == PROMOTED and check["via"] in ("superior", "non_inferior+better", "non_inferior+stale"), \
        second["reason"]
    assert second["champion_after"] == second["challenger_version"]
    md = (lake.reports_dir("hdfs", DAYS[2]) / "decision_record" / "decision.md").read_text()
    assert "## Promotion rules" in md and "stale champion" in md and "non-inferior" in md


def test_runs_and_versions_name_the_airflow_run_that_made_them(monkeypatch):
    from nightshift.airflow_links import airflow_tags
    from nightshift.promotion import version_description

    assert airflow_tags({}) == {}
    env = {"AIRFLOW_CTX_DAG_ID": "nightshift_nightly", "AIRFLOW_CTX_DAG_RUN_ID": "scheduled__2026-11-02T00:00:00+00:00",
           "AIRFLOW_CTX_TASK_ID": "train_candidate", "AIRFLOW__API__BASE_URL": "https://airflow.example/"}
    tags = airflow_tags(env)
    assert tags == {"airflow.dag_id": "nightshift_nightly", "airflow.run_id": "scheduled__2026-11-02T00:00:00+00:00",
                    "airflow.task_id": "train_candidate",
                    "airflow.url": "https://airflow.example/dags/nightshift_nightly/runs/scheduled__2026-11-02T00%3A00%3A00%2B00%3A00"}
    record = {"decision": "promoted", "dry_run": False, "day": "2026-11-01", "source": "hdfs", "champion_after": "3",
              "reason": "gate passed", "best_candidate": "random_forest", "candidates": {"random_forest": {"f1": 0.9871}},
              "holdout_days": ["2026-11-01"], "train_days": ["2026-10-30", "2026-10-31"], "best_run_id": "abc",
              "airflow": tags}
    text = version_description(record)
    assert text.splitlines()[0] == "**promoted** on the night of 2026-11-01 (hdfs); champion after: v3"
    assert "holdout F1 0.987" in text and "run `abc`" in text and tags["airflow.url"] in text


def test_a_kept_champion_below_the_floors_is_flagged_in_the_record():
    from nightshift.decision_record import render_html, render_markdown

    policy = {"floor_precision": 0.5, "floor_recall": 0.5, "confidence": 0.95, "margin": 0.0}
    weak = {"f1": 0.05, "precision": 0.025, "recall": 1.0, "sessions": 3000, "positives": 75, "flagged": 2999}
    record = {"source": "hdfs", "day": "2026-11-04", "decision": KEPT, "reason": "floors failed", "mode": "auto",
              "best_candidate": "random_forest", "model_name": "m", "challenger_version": "4", "champion_before": "1",
              "labelled": True, "holdout_days": ["2026-11-04"], "train_days": ["2026-11-03"], "policy": policy,
              "candidates": {"random_forest": {**weak, "f1_lower": 0.0, "f1_upper": 0.1}}, "champion_metrics": weak,
              "checks": [{"name": "floors", "passed": False, "detail": "precision 0.025"}]}
    md = render_markdown(record, {"parsed_lines": None, "session_features": None})
    assert "Warning: the champion v1 that stays in production is below the floors tonight" in md
    assert "it flagged 2,999 of 3,000 sessions" in md
    assert "<blockquote>" in render_html(md, Path("/nonexistent"))
    assert "Warning" not in render_markdown({**record, "decision": PROMOTED}, {})
