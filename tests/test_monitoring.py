"""Champion watch: realized metrics from predictions + labels, and the K-days-in-a-row rule."""

from __future__ import annotations

import dataclasses

import pandas as pd

from nightshift.gate import load_policy
from nightshift.lake import Lake
from nightshift.monitoring import breach, realized_metrics, watch_champion
from nightshift.settings import PROJECT_ROOT, load_settings

POLICY = dataclasses.replace(load_policy(PROJECT_ROOT / "config"), watch_days=2, floor_precision=0.5, floor_recall=0.5)


def _row(day, precision, recall, version="3"):
    return {"day": day, "model_version": version, "precision": precision, "recall": recall}


def test_breach_needs_k_consecutive_bad_days_of_one_version():
    assert breach([_row("d1", 0.9, 0.9), _row("d2", 0.2, 0.9), _row("d3", 0.9, 0.1)], POLICY)
    assert not breach([_row("d1", 0.2, 0.9), _row("d2", 0.9, 0.9), _row("d3", 0.2, 0.1)], POLICY)
    assert not breach([_row("d2", 0.2, 0.1, "2"), _row("d3", 0.2, 0.1, "3")], POLICY)   # a new champion starts afresh
    assert not breach([_row("d3", 0.1, 0.1)], POLICY)


def _day(lake, day, preds, labels, version="3"):
    out = lake.predictions_dir("hdfs", day)
    out.mkdir(parents=True)
    pd.DataFrame({"session_id": [f"s{i}" for i in range(len(preds))], "prediction": preds,
                  "model_version": version}).to_parquet(out / "part-0.parquet")
    lake.labels_dir("hdfs", day).mkdir(parents=True)
    pd.DataFrame({"session_id": [f"s{i}" for i in range(len(labels))], "label": labels}).to_csv(
        lake.labels_file("hdfs", day), index=False)


def test_watch_alerts_after_k_bad_days_and_writes_a_report(tmp_path):
    settings = dataclasses.replace(load_settings(), data_root=tmp_path)
    lake = Lake(tmp_path)
    _day(lake, "2026-11-01", [1, 0, 0, 1], [1, 0, 0, 1])          # perfect
    _day(lake, "2026-11-02", [0, 0, 1, 0], [1, 1, 0, 0])          # misses everything
    assert realized_metrics(lake, "hdfs", "2026-11-02")["recall"] == 0.0
    assert not watch_champion(settings, "log_anomaly_hdfs", "hdfs", "2026-11-02", POLICY)["alert"]
    _day(lake, "2026-11-03", [0, 0, 0, 0], [1, 1, 0, 0])
    report = watch_champion(settings, "log_anomaly_hdfs", "hdfs", "2026-11-03", POLICY)
    assert report["alert"] and report["retrain"] and "2026-11-02" in report["reason"]
    assert lake.read_report("hdfs", "2026-11-03", "champion_watch")["alert"] is True
    assert realized_metrics(lake, "hdfs", "2026-11-09") is None                       # nothing scored
