"""Labels files: one reader (nightshift.labels) for features, training (and so the gate) and the
champion watch; bad rows, duplicates, conflicts and late labels validated with GX."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from nightshift import labels as L
from nightshift.lake import Lake

DAY = "2026-11-01"


def _write_labels(lake: Lake, day: str, text: str, source: str = "hdfs"):
    path = lake.labels_file(source, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _good_rows(n: int) -> list[str]:
    return [f"blk_{i},{1 if i % 10 == 0 else 0}" for i in range(n)]


def _features(lake: Lake, day: str, n: int, source: str = "hdfs", label=None):
    out = lake.features_dir(source, day)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"session_id": [f"blk_{i}" for i in range(n)], "line_count": 3,
                  "label": pd.Series([label] * n, dtype="float64")}).to_parquet(out / "part-0.parquet")


def _predictions(lake: Lake, day: str, predictions: dict[str, int], source: str = "hdfs"):
    out = lake.predictions_dir(source, day)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"session_id": list(predictions), "prediction": list(predictions.values()),
                  "model_version": "3"}).to_parquet(out / "part-0.parquet")


def test_labels_are_coerced_trimmed_and_bad_rows_counted(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("session_id,label\n blk_1 , 1 \nblk_2,1.0\nblk_3,0\nblk_4,maybe\nblk_5,2\n,1\nblk_6\n\n")
    labels = L.read_labels_file(path, max_bad_row_share=0.9)
    assert dict(zip(labels.frame["session_id"], labels.frame["label"])) == {"blk_1": 1, "blk_2": 1, "blk_3": 0}
    assert (labels.stats.rows, labels.stats.bad_rows, labels.stats.labelled) == (7, 4, 3)
    assert "blk_4,maybe" in labels.stats.bad_examples[0]
    assert L.read_labels_file(tmp_path / "missing.csv") is None


def test_one_garbage_row_in_1000_is_seen_the_same_way_by_features_training_and_the_watch(spark, lake):
    from nightshift.features import read_labels_with_stats
    from nightshift.monitoring import realized_metrics
    from nightshift.training import load_labelled_sessions

    rows = _good_rows(1000)
    rows[500] = "blk_500,not-a-label"
    path = _write_labels(lake, DAY, "session_id,label\n" + "\n".join(rows) + "\n")
    expected = {(f"blk_{i}", 1 if i % 10 == 0 else 0) for i in range(1000) if i != 500}

    spark_labels, stats = read_labels_with_stats(spark, path)                     # features job
    assert {(r.session_id, r.label) for r in spark_labels.collect()} == expected
    assert (stats["rows"], stats["bad_rows"], stats["labelled"]) == (1000, 1, 999)

    _features(lake, DAY, 1000)                                                   # training (and the gate)
    train = load_labelled_sessions(lake, "hdfs", [DAY])
    assert set(zip(train["session_id"], train["label"])) == expected and len(train) == 999

    _predictions(lake, DAY, {f"blk_{i}": 1 if i % 10 == 0 else 0 for i in range(1000)})   # the watch
    realized = realized_metrics(lake, "hdfs", DAY)
    assert realized["sessions"] == 999 and realized["label_bad_rows"] == 1
    assert realized["recall"] == realized["precision"] == 1.0

    report = lake.read_report("hdfs", DAY, L.REPORT_STEP)                        # validated, bad rows reported
    assert report["success"] and report["stats"]["bad_rows"] == 1
    assert report["fingerprint"]["sha256"] == L.parse_labels_bytes(path.read_bytes()).stats.sha256


def test_bad_rows_over_the_bound_fail_loudly(spark, lake, tmp_path):
    from nightshift.features import read_labels

    rows = _good_rows(1000) + [f"blk_x{i},??" for i in range(20)]
    path = _write_labels(lake, DAY, "session_id,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(L.LabelsRejected, match=r"20 of 1020 rows .*max_bad_row_share 1\.00%") as info:
        L.read_labels(lake, "hdfs", DAY)
    assert str(path) in str(info.value) and "blk_x0,??" in str(info.value)
    with pytest.raises(L.LabelsRejected):
        read_labels(spark, path)
    # the bound is per source: validation.labels.max_bad_row_share in sources/<s>.yaml
    sources = tmp_path / "sources"
    sources.mkdir()
    from nightshift.settings import PROJECT_ROOT, load_settings
    import dataclasses
    import yaml

    raw = yaml.safe_load((PROJECT_ROOT / "sources" / "hdfs.yaml").read_text())
    raw["validation"]["labels"] = {"max_bad_row_share": 0.05}
    (sources / "hdfs.yaml").write_text(yaml.safe_dump(raw))
    settings = dataclasses.replace(load_settings(), sources_dir=sources)
    assert L.read_labels(lake, "hdfs", DAY, settings).stats.labelled == 1000


def test_exact_duplicates_count_once_in_the_watch(lake):
    from nightshift.monitoring import realized_metrics

    _predictions(lake, DAY, {"s0": 1, "s1": 1, "s2": 0, "s3": 0})                 # perfect predictions
    _write_labels(lake, DAY, "session_id,label\ns0,1\ns0, 1 \ns0,1.0\ns1,1\ns2,0\ns2,0\ns3,0\n")
    realized = realized_metrics(lake, "hdfs", DAY)
    assert realized["recall"] == 1.0 and realized["precision"] == 1.0
    assert realized["sessions"] == 4 and realized["positives"] == 2
    assert L.read_labels(lake, "hdfs", DAY).stats.duplicates_dropped == 3


def test_conflicting_duplicates_are_rejected_naming_the_session_and_file(lake):
    from nightshift.monitoring import realized_metrics
    from nightshift.training import load_labelled_sessions

    path = _write_labels(lake, DAY, "session_id,label\n" + "\n".join(_good_rows(100)) + "\nblk_7,1\n")
    with pytest.raises(L.LabelsRejected, match=r"labelled both 0 and 1, e\.g\. blk_7") as info:
        L.read_labels(lake, "hdfs", DAY)
    assert str(path) in str(info.value)
    _features(lake, DAY, 100)
    with pytest.raises(L.LabelsRejected, match="blk_7"):
        load_labelled_sessions(lake, "hdfs", [DAY])
    _predictions(lake, DAY, {f"blk_{i}": 0 for i in range(100)})
    assert realized_metrics(lake, "hdfs", DAY) is None                           # left out, logged as an error


def _validated_day(lake: Lake, day: str, n: int = 50):
    _features(lake, day, n)
    for suite in ("parsed_lines", "session_features"):
        report = {"success": True, "failures": []}
        try:   # validation reports carry the fingerprint of the data they validated
            from nightshift.validation import data_fingerprint

            report["data_fingerprint"] = data_fingerprint(lake, "hdfs", day, suite)
        except ImportError:
            pass
        lake.write_report("hdfs", day, f"validation_{suite}", report)


def test_gx_labels_suite_fails_a_bad_file_and_training_excludes_the_day(lake, monkeypatch):
    from nightshift.training import TrainingConfig, load_labelled_sessions, plan_training

    config = TrainingConfig("log_anomaly", "nightshift", 7, "f1", ({"name": "lr", "kind": "logreg"},))
    days = ["2026-11-01", "2026-11-02", "2026-11-03"]
    for d in days:
        _validated_day(lake, d)
        _write_labels(lake, d, "session_id,label\n" + "\n".join(_good_rows(50)) + "\n")
    _write_labels(lake, days[1], "session_id,label\n" + "\n".join(_good_rows(50)) + "\nblk_3,1\nblk_4,bad\n")

    plan = plan_training(lake, "hdfs", days[-1], config, holdout_days=1)
    assert plan.train_days == (days[0],) and plan.holdout_days == (days[2],)
    assert "labels rejected" in plan.excluded_days[days[1]] and "blk_3" in plan.excluded_days[days[1]]
    report = lake.read_report("hdfs", days[1], L.REPORT_STEP)
    assert report["success"] is False and report["fingerprint"]["sha256"]
    assert any("expect_column_values_to_be_unique" in f for f in report["failures"])
    assert any("conflicting_sessions" in f for f in report["failures"])
    with pytest.raises(L.LabelsRejected, match="failed validation"):
        load_labelled_sessions(lake, "hdfs", [days[1]])

    # the same content is not validated again; new content is
    monkeypatch.setattr(L, "run_labels_validation", lambda *a, **k: pytest.fail("validated twice"))
    assert plan_training(lake, "hdfs", days[-1], config, holdout_days=1).train_days == (days[0],)
    monkeypatch.undo()
    _write_labels(lake, days[1], "session_id,label\n" + "\n".join(_good_rows(50)) + "\n")
    plan = plan_training(lake, "hdfs", days[-1], config, holdout_days=1)
    assert plan.train_days == tuple(days[:2]) and days[1] not in plan.excluded_days
    assert lake.read_report("hdfs", days[1], L.REPORT_STEP)["success"] is True


def test_inline_labels_need_no_file(lake):
    from nightshift.training import labels_problem, load_labelled_sessions

    _features(lake, DAY, 10, source="bgl", label=1.0)
    lake.write_report("bgl", DAY, "features", {"labelled_sessions": 10})
    assert L.validated_labels(None, lake, "bgl", DAY) is None
    assert labels_problem(lake, "bgl", DAY) is None
    assert len(load_labelled_sessions(lake, "bgl", [DAY])) == 10


def test_reading_labels_does_not_import_great_expectations(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("session_id,label\nblk_1,1\n")
    probe = (f"import sys; from nightshift.labels import read_labels_file; read_labels_file({str(path)!r}); "
             "print(json.dumps('great_expectations' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", "import json; " + probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip()) is False
