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
    assert report["failing_version"] == report["retrain_for_version"] == "3" and report["rolled_back"] is None
    assert lake.read_report("hdfs", "2026-11-03", "champion_watch")["alert"] is True
    assert realized_metrics(lake, "hdfs", "2026-11-09") is None                       # nothing scored


def test_a_retraining_request_is_stale_once_another_version_is_champion(tmp_path, monkeypatch):
    """The night that scored with a failing champion may promote a better one before the
    retraining run it asked for starts: that run then has nothing to do."""
    from nightshift.monitoring import stale_retraining_request
    from tests.test_promotion_faults import MODEL, _make_versions, _move

    settings = dataclasses.replace(load_settings(), data_root=tmp_path / "lake", lock_url=None,
                                   mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    _make_versions(settings, 2)
    _move(settings, "1", None)
    assert stale_retraining_request(settings, MODEL, "1") is None          # still the champion: retrain
    assert stale_retraining_request(settings, MODEL, None) is None         # not a watch request
    _move(settings, "2", "1")
    assert stale_retraining_request(settings, MODEL, "1") == (
        "the champion watch asked for retraining because v1 was below the floors, but the champion is v2 now: "
        "nothing to retrain")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = dataclasses.replace(settings, mlflow_tracking_uri="http://127.0.0.1:9")   # unreachable: retrain
    assert stale_retraining_request(down, MODEL, "1") is None


def test_an_automatic_rollback_retrains_for_the_version_it_rolled_back_to(tmp_path):
    """watch_auto_rollback: the watch moves the failing v2 back to v1 (real registry, SQLite) and
    the retraining it asks for is for v1, now champion; asking for v2 would make that run stale."""
    from nightshift import registry
    from nightshift.monitoring import stale_retraining_request
    from tests.test_promotion_faults import _make_versions

    settings = dataclasses.replace(load_settings(), data_root=tmp_path / "lake", lock_url=None,
                                   mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    _make_versions(settings, 2, model="log_anomaly_hdfs")
    for version, before in (("1", None), ("2", "1")):
        registry.move_champion(settings, "log_anomaly_hdfs", version, expected_champion=before, action="promote",
                               decided_by="test", reason="test")
    lake = Lake(settings.data_root)
    _day(lake, "2026-11-02", [0, 0, 1, 0], [1, 1, 0, 0], version="2")
    _day(lake, "2026-11-03", [0, 0, 0, 0], [1, 1, 0, 0], version="2")
    report = watch_champion(settings, "log_anomaly_hdfs", "hdfs", "2026-11-03",
                            dataclasses.replace(POLICY, watch_auto_rollback=True))
    assert report["alert"] and report["failing_version"] == "2"
    assert (report["rolled_back"]["action"], report["rolled_back"]["to_version"]) == ("rollback", "1")
    assert report["rolled_back"]["decided_by"] == "nightshift:champion-watch"
    assert str(registry.champion(settings, "log_anomaly_hdfs").version) == "1"
    assert report["retrain_for_version"] == "1"
    assert stale_retraining_request(settings, "log_anomaly_hdfs", report["retrain_for_version"]) is None
    assert stale_retraining_request(settings, "log_anomaly_hdfs", report["failing_version"]) is not None
