"""Session features on real Spark."""

from __future__ import annotations

import datetime as dt

from nightshift.features import attach_labels, read_labels, session_features


def _parsed(spark, rows, line_labels=None):
    line_labels = line_labels or [None] * len(rows)
    return spark.createDataFrame(
        [(s, dt.datetime(2026, 11, 1, 0, 0, sec), lvl, t, lab, f"comp{t}") for (s, sec, lvl, t), lab in zip(rows, line_labels)],
        "session_id string, ts timestamp, level string, template_id int, line_label int, component string",
    )


def test_counts_templates_levels_and_duration_per_session(spark):
    parsed = _parsed(spark, [
        ("blk_1", 0, "INFO", 1), ("blk_1", 5, "INFO", 1), ("blk_1", 9, "WARN", 2),
        ("blk_2", 3, "ERROR", 3), (None, 4, "INFO", 4),
    ])
    rows = {r.session_id: r for r in session_features(parsed).collect()}
    assert set(rows) == {"blk_1", "blk_2"}                 # lines without a session belong to none
    assert rows["blk_1"].event_counts == {"1": 2, "2": 1}
    assert (rows["blk_1"].line_count, rows["blk_1"].warn_count, rows["blk_1"].error_count) == (3, 1, 0)
    assert rows["blk_1"].duration_s == 9.0
    assert rows["blk_1"].component == "comp1"          # the component of the first line
    assert (rows["blk_2"].error_count, rows["blk_2"].duration_s) == (1, 0.0)


def test_labels_join_where_they_exist_and_bad_labels_become_null(spark, tmp_path):
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text("session_id,label\nblk_1,1\nblk_2,maybe\nblk_9,0\n")
    parsed = _parsed(spark, [("blk_1", 0, "INFO", 1), ("blk_2", 0, "INFO", 1), ("blk_3", 0, "INFO", 1)])
    # one bad row in three is far above the default bound (nightshift.labels): allow it here
    features = attach_labels(session_features(parsed), read_labels(spark, labels_csv, max_bad_row_share=0.5))
    labels = {r.session_id: r.label for r in features.collect()}
    assert labels == {"blk_1": 1, "blk_2": None, "blk_3": None}
    assert read_labels(spark, tmp_path / "missing.csv") is None


def test_inline_line_labels_make_a_session_anomalous_unless_a_labels_file_says_otherwise(spark, tmp_path):
    parsed = _parsed(
        spark,
        [("n1@00", 0, "INFO", 1), ("n1@00", 1, "FATAL", 2), ("n2@00", 0, "INFO", 1), ("n3@00", 0, "INFO", 1)],
        line_labels=[0, 1, 0, 0],
    )
    assert {r.session_id: r.label for r in attach_labels(session_features(parsed), None).collect()} == {
        "n1@00": 1, "n2@00": 0, "n3@00": 0}
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text("session_id,label\nn3@00,1\n")
    with_file = attach_labels(session_features(parsed), read_labels(spark, labels_csv))
    assert {r.session_id: r.label for r in with_file.collect()}["n3@00"] == 1


def test_components_beyond_the_code_limit_aggregate_as_strings_with_the_same_result(spark, monkeypatch):
    import nightshift.features as features

    parsed = _parsed(spark, [
        ("blk_1", 7, "INFO", 3), ("blk_1", 2, "INFO", 1), ("blk_1", 9, "WARN", 2), ("blk_2", 3, "ERROR", 2),
    ])
    coded = sorted(session_features(parsed).collect())
    monkeypatch.setattr(features, "_COMPONENT_CODE_LIMIT", 1)     # 3 distinct components > 1
    assert sorted(session_features(parsed).collect()) == coded
    assert {r.session_id: r.component for r in coded} == {"blk_1": "comp1", "blk_2": "comp2"}


def test_session_template_sets_count_sessions_per_distinct_set_of_template_ids(spark):
    from nightshift.features import session_template_sets

    parsed = _parsed(spark, [
        ("blk_1", 0, "INFO", 2), ("blk_1", 1, "INFO", 10), ("blk_1", 2, "INFO", 2),    # {2, 10}
        ("blk_2", 0, "INFO", 10), ("blk_2", 1, "INFO", 2),                             # {2, 10} again
        ("blk_3", 0, "INFO", 9), (None, 0, "INFO", 4),
    ])
    features = session_features(parsed)
    # ids sorted as numbers (2 before 10), one key per set, sessions counted once whatever their lines
    assert session_template_sets(features) == {"2,10": 2, "9": 1}
    assert session_template_sets(features, limit=1) is None          # more distinct sets than kept: not stored


def test_the_first_component_does_not_depend_on_the_order_spark_meets_the_lines(spark, monkeypatch):
    """Lines of one session in the same first second with different components (and one without a
    component): the session's component is the one that sorts first, in whatever order and
    partitioning the lines arrive (a Spark Connect server and a spark-submit driver partition a day
    differently: min_by kept whichever came first). Same rule on the string path."""
    import nightshift.features as features

    rows = [("blk_1", dt.datetime(2026, 11, 1, 0, 0, 7), "INFO", 1, None, comp) for comp in ("zeta", None, "alpha", "mid")]
    rows += [("blk_1", dt.datetime(2026, 11, 1, 0, 0, 3), "INFO", 2, None, c) for c in ("tie_b", "tie_a")]
    rows += [("blk_2", dt.datetime(1969, 12, 31, 23, 59, 59), "INFO", 2, None, c) for c in ("old_b", "old_a")]
    schema = "session_id string, ts timestamp, level string, template_id int, line_label int, component string"

    def components(ordered, partitions):
        frame = spark.createDataFrame(ordered, schema).repartition(partitions)
        return {r.session_id: r.component for r in session_features(frame).collect()}

    for ordered in (rows, rows[::-1]):
        for partitions in (1, 3):
            assert components(ordered, partitions) == {"blk_1": "tie_a", "blk_2": "old_a"}
    monkeypatch.setattr(features, "_COMPONENT_CODE_LIMIT", 1)
    for ordered in (rows, rows[::-1]):
        assert components(ordered, 2) == {"blk_1": "tie_a", "blk_2": "old_a"}
