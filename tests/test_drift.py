"""Input drift statistics (nightshift.drift) on constructed distributions, and the day's drift
report from profiles in the lake."""

from __future__ import annotations

import math

import pytest

from nightshift.drift import (DriftThresholds, compare, day_drift, js_distance, load_thresholds, psi,
                              robust_bounds, unseen_share)
from nightshift.lake import Lake


def test_js_distance_identical_disjoint_and_known_values():
    assert js_distance({"a": 5, "b": 5}, {"a": 50, "b": 50}) == 0.0           # same shares, other volume
    assert js_distance({"a": 10}, {"b": 3}) == pytest.approx(1.0)             # disjoint: the maximum
    # p = (1, 0), q = (1/2, 1/2): JSD = 1/2 KL(p||m) + 1/2 KL(q||m), m = (3/4, 1/4)
    expected = 0.5 * math.log2(1 / 0.75) + 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25))
    assert js_distance({"a": 1}, {"a": 1, "b": 1}) == pytest.approx(math.sqrt(expected))
    assert js_distance({"a": 1}, {"a": 1, "b": 1}) == pytest.approx(js_distance({"a": 1, "b": 1}, {"a": 1}))


def test_psi_known_value_and_new_bins_count():
    assert psi({"a": 1, "b": 1}, {"a": 1, "b": 1}) == 0.0
    # (0.6 - 0.4) ln(0.6/0.4) + (0.4 - 0.6) ln(0.4/0.6) = 0.4 ln 1.5
    assert psi({"a": 6, "b": 4}, {"a": 4, "b": 6}) == pytest.approx(0.4 * math.log(1.5))
    assert psi({"a": 1, "new": 1}, {"a": 1}) > 2.0         # a template never seen: large, finite


def test_unseen_share_and_robust_bounds():
    assert unseen_share({"a": 3, "b": 1}, {"a": 10}) == 0.25
    assert unseen_share({}, {"a": 1}) == 0.0
    assert robust_bounds([1.0, 2.0], 3) is None                               # too few days: fixed fallbacks
    low, high = robust_bounds([100.0, 102.0, 98.0, 101.0, 99.0], 3)
    assert low < 98.0 and high > 102.0 and low > 90.0 and high < 110.0


def _profile(templates: dict[str, int], sessions: int = 100, sets: dict[str, int] | None = None) -> dict:
    lines = sum(templates.values())
    profile = {"lines": lines, "sessions": sessions, "templates": templates, "mean_session_length": lines / sessions,
               "warn_share": 0.01, "error_share": 0.001}
    if sets is not None:
        profile["session_template_sets"] = sets
    return profile


def test_unseen_session_share_identical_disjoint_mixed_and_not_available():
    from nightshift.drift import unseen_session_share

    reference = {"1": 500, "2": 300, "3": 200}
    assert unseen_session_share({"1,2": 60, "1,2,3": 40}, reference) == 0.0          # every set seen: 0
    assert unseen_session_share({"8": 30, "8,9": 70}, reference) == 1.0              # disjoint: every session
    # 3 sessions with 9 next to seen templates, 1 with 9 alone: 4 of 10, whatever their line counts
    assert unseen_session_share({"1,2": 6, "1,2,9": 3, "9": 1}, reference) == pytest.approx(0.4)
    assert unseen_session_share({"1,10": 5, "1": 5}, reference) == 0.5               # "10" is not "1" (ids, not text)
    assert unseen_session_share({}, reference) == 0.0
    assert unseen_session_share(None, reference) is None                              # older profile: not available


def test_compare_flags_unseen_sessions_when_the_threshold_is_set():
    reference = [_profile({"1": 500, "2": 300, "3": 200}, sets={"1,2,3": 100})]
    # one new template on few lines (0.5%) but in 30 of 100 sessions: under the line threshold
    tonight = _profile({"1": 500, "2": 300, "3": 195, "9": 5}, sets={"1,2,3": 70, "1,2,3,9": 30})
    unchecked = compare(tonight, reference, DriftThresholds())
    assert unchecked["stats"]["unseen_session_share"] == 0.3 and unchecked["stats"]["unseen_line_share"] == 0.005
    assert unchecked["exceeded"] == []                                 # no session threshold: reported only
    checked = compare(tonight, reference, DriftThresholds(unseen_session_share_max=0.05))
    assert checked["exceeded"] == ["unseen templates: 30.0% of sessions > 5.0%"]
    assert compare(_profile({"1": 500, "2": 300, "3": 200}, sets={"1,2,3": 100}), reference,
                   DriftThresholds(unseen_session_share_max=0.05))["exceeded"] == []
    # a profile written before the per-session sets existed: not available, never flagged
    old = compare(_profile({"1": 500, "2": 300, "3": 195, "9": 5}), reference, DriftThresholds(unseen_session_share_max=0.05))
    assert old["stats"]["unseen_session_share"] is None and old["exceeded"] == []


def test_the_shipped_session_threshold_flags_a_drift_like_the_demo_s_and_not_a_normal_day():
    from nightshift.settings import PROJECT_ROOT

    thresholds = load_thresholds(PROJECT_ROOT / "config", "hdfs")
    assert thresholds.unseen_session_share_max is not None
    reference = [_profile({"1": 500, "2": 300, "3": 200}, sets={"1,2,3": 90, "1,3": 10})]
    normal = compare(_profile({"1": 510, "2": 290, "3": 200}, sets={"1,2,3": 88, "1,3": 12}), reference, thresholds)
    assert normal["stats"]["unseen_session_share"] == 0.0 and normal["exceeded"] == []
    # the demo's drift day: a renamed template in most sessions (31% of lines, far more sessions)
    drifted = compare(_profile({"1": 500, "3": 200, "7": 300}, sets={"1,3,7": 90, "1,3": 10}), reference, thresholds)
    assert drifted["stats"]["unseen_session_share"] == 0.9
    assert any("of sessions" in e for e in drifted["exceeded"])


def test_compare_flags_new_templates_and_volume_but_not_a_normal_day():
    normal = _profile({"1": 500, "2": 300, "3": 200})
    reference = [_profile({"1": 510, "2": 290, "3": 200}), _profile({"1": 490, "2": 310, "3": 200})]
    quiet = compare(normal, reference, DriftThresholds())
    assert quiet["exceeded"] == [] and quiet["stats"]["js_distance"] < 0.05
    drifted = compare(_profile({"1": 300, "2": 100, "9": 400, "8": 200}), reference, DriftThresholds())
    assert any("unseen templates" in e for e in drifted["exceeded"])
    assert any("JS distance" in e for e in drifted["exceeded"])
    assert drifted["stats"]["unseen_templates"] == ["8", "9"]
    small = compare(_profile({"1": 50, "2": 30, "3": 20}, sessions=10), reference, DriftThresholds())
    assert small["exceeded"] == ["volume: 0.10x the reference median of lines (allowed 0.5-2.0x)",
                                 "volume: 0.10x the reference median of sessions (allowed 0.5-2.0x)"]


def test_compare_flags_session_length_and_level_shares_beyond_their_bounds():
    reference = [_profile({"1": 500, "2": 300, "3": 200})]                     # 10 lines per session, warn 1%
    longer = compare(_profile({"1": 1000, "2": 600, "3": 400}), reference, DriftThresholds())   # 20 per session
    assert longer["exceeded"] == ["session length: 20.0 lines per session vs 10.0 (allowed within 1.5x either way)"]
    shorter = compare(_profile({"1": 250, "2": 150, "3": 100}, sessions=100), reference,
                      DriftThresholds(volume_ratio_min=0.1))                     # 5 per session: 2x shorter
    assert shorter["exceeded"] == ["session length: 5.0 lines per session vs 10.0 (allowed within 1.5x either way)"]
    assert compare(_profile({"1": 500, "2": 300, "3": 200}), reference,
                   DriftThresholds(session_length_ratio_max=None, level_share_change_max=None))["exceeded"] == []
    errors = {**_profile({"1": 500, "2": 300, "3": 200}), "error_share": 0.081}
    assert compare(errors, reference, DriftThresholds())["exceeded"] == [
        "error share: 8.1% of lines vs 0.1% (allowed +-5% points)"]
    assert compare(errors, reference, DriftThresholds(level_share_change_max=0.1))["exceeded"] == []


def test_day_drift_against_recent_days_and_the_champion_s_training_days(tmp_path):
    lake = Lake(tmp_path)
    days = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    for d in days[:3]:
        lake.write_report("hdfs", d, "features", {"profile": _profile({"1": 500, "2": 300, "3": 200})})
        for s in ("parsed_lines", "session_features"):
            lake.write_report("hdfs", d, f"validation_{s}", {"success": True})
    lake.write_report("hdfs", days[2], "decision", {"challenger_version": "1", "train_days": days[:2]})
    lake.write_report("hdfs", days[3], "features", {"profile": _profile({"1": 300, "9": 700})})
    first = day_drift(lake, "hdfs", days[0], DriftThresholds())
    assert first["flagged"] is False and first["summary"] == "no reference yet (first validated day)"
    normal = day_drift(lake, "hdfs", days[2], DriftThresholds(), champion_version="1")
    assert normal["flagged"] is False and normal["summary"].startswith("no drift (JS 0.000")
    drifted = day_drift(lake, "hdfs", days[3], DriftThresholds(), champion_version="1")
    assert drifted["flagged"] and drifted["summary"].startswith("drift: flagged: vs champion training:")
    assert drifted["references"]["champion_training"]["days"] == days[:2]
    assert drifted["references"]["recent"]["days"] == days[:3]
    assert day_drift(lake, "hdfs", "2026-11-09", DriftThresholds())["summary"].startswith("not computed")


def test_thresholds_are_data_per_source(tmp_path):
    (tmp_path / "drift.yaml").write_text("defaults:\n  js_distance_max: 0.3\nsources:\n  bgl:\n    js_distance_max: 0.4\n")
    assert load_thresholds(tmp_path, "hdfs").js_distance_max == 0.3
    assert load_thresholds(tmp_path, "bgl").js_distance_max == 0.4
    (tmp_path / "drift.yaml").write_text("defaults:\n  js_max: 0.3\n")
    with pytest.raises(ValueError, match="unknown drift setting"):
        load_thresholds(tmp_path, "hdfs")


def test_prediction_drift_against_the_holdout_and_recent_nights(tmp_path):
    from nightshift.drift import prediction_drift

    lake = Lake(tmp_path)
    lake.write_report("hdfs", "2026-11-02", "decision", {"challenger_version": "1", "best_candidate": "lr",
                                                         "candidates": {"lr": {"flagged": 96, "sessions": 3000}}})
    for d, rate in (("2026-11-02", 0.032), ("2026-11-03", 0.027)):
        lake.write_report("hdfs", d, "scoring", {"champion_version": 1, "flag_rate": rate})
    quiet = prediction_drift(lake, "hdfs", "2026-11-04", 1, 0.03, DriftThresholds())
    assert quiet["suspect"] is False and set(quiet["references"]) == {"holdout (2026-11-02)", "median of 2 recent night(s)"}
    flood = prediction_drift(lake, "hdfs", "2026-11-04", 1, 0.994, DriftThresholds())
    assert flood["suspect"] and flood["reasons"][0] == "flag rate 99.4% vs 3.2% on the champion's holdout (2026-11-02)"
    silent = prediction_drift(lake, "hdfs", "2026-11-04", 1, 0.0, DriftThresholds(flag_rate_abs_change_max=0.02))
    assert silent["suspect"]                                             # a champion that stops flagging, too
    lake.write_report("hdfs", "2026-11-04", "drift", {"flagged": True, "summary": "drift: flagged: unseen"})
    assert prediction_drift(lake, "hdfs", "2026-11-04", 1, 0.03, DriftThresholds())["reasons"] == ["input drift: flagged: unseen"]



def test_serving_skew_is_against_the_training_days_of_the_model_that_scored(tmp_path):
    """The night's drift report compared tonight with v2's training days; scoring with v1 (rolled
    back in since) measures the skew against v1's training days instead."""
    from nightshift.drift import prediction_drift, serving_skew

    lake = Lake(tmp_path)
    days = ["2026-11-01", "2026-11-02", "2026-11-03"]
    lake.write_report("hdfs", days[0], "features", {"profile": _profile({"1": 500, "2": 500})})
    lake.write_report("hdfs", days[1], "features", {"profile": _profile({"1": 300, "9": 700})})
    lake.write_report("hdfs", days[2], "features", {"profile": _profile({"1": 300, "9": 700})})
    lake.write_report("hdfs", days[0], "decision", {"challenger_version": "1", "train_days": days[:1]})
    lake.write_report("hdfs", days[1], "decision", {"challenger_version": "2", "train_days": days[1:2]})
    lake.write_report("hdfs", days[2], "drift", day_drift(lake, "hdfs", days[2], DriftThresholds(), champion_version="2"))
    same = serving_skew(lake, "hdfs", days[2], 2, DriftThresholds())
    assert (same["champion_version"], same["reference_days"], same["unseen_line_share"]) == ("2", [days[1]], 0.0)
    other = prediction_drift(lake, "hdfs", days[2], 1, 0.03, DriftThresholds())["skew"]
    assert (other["champion_version"], other["reference_days"], other["unseen_line_share"]) == ("1", [days[0]], 0.7)
    assert serving_skew(lake, "hdfs", days[2], 7, DriftThresholds()) is None        # no training days known

def test_the_decision_record_has_a_drift_and_skew_section_with_the_template_plot(tmp_path):
    from nightshift.decision_record import (DRIFT_IMAGE, DRIFT_TREND_IMAGE, render_drift_image, render_drift_trend,
                                            render_html, render_markdown)
    from tests.test_promotion import KEPT

    lake = Lake(tmp_path)
    days = ["2026-11-01", "2026-11-02", "2026-11-03"]
    for d in days[:2]:
        lake.write_report("hdfs", d, "features", {"profile": _profile({"1": 500, "2": 300, "3": 200})})
        for s in ("parsed_lines", "session_features"):
            lake.write_report("hdfs", d, f"validation_{s}", {"success": True})
    lake.write_report("hdfs", days[1], "decision", {"challenger_version": "1", "train_days": days[:1]})
    lake.write_report("hdfs", days[2], "features", {"profile": _profile({"1": 300, "9": 700})})
    drift = day_drift(lake, "hdfs", days[2], DriftThresholds(), champion_version="1")
    record = {"source": "hdfs", "day": days[2], "decision": KEPT, "reason": "floors failed", "mode": "auto",
              "best_candidate": "rf", "model_name": "m", "challenger_version": "2", "champion_before": "1",
              "labelled": False, "holdout_days": [days[2]], "train_days": days[:2], "policy": {},
              "candidates": {}, "checks": [], "limits": "no labels", "candidate_training": {}}
    record["policy"] = {"unlabelled_min_flag_rate": 0.001, "unlabelled_max_flag_rate": 0.1, "unlabelled_max_rate_change": 0.02}
    md = render_markdown(record, {}, drift)
    assert "## Input drift and training/serving skew" in md and "**drift: flagged: vs champion training:" in md
    assert "champion's training days (skew) | 2026-11-01 |" in md and "70.0% (1 templates)" in md
    assert "| unseen sessions |" in md and "70.0% (1 templates) | n/a |" in md   # profiles without session sets
    image = render_drift_image(tmp_path, lake, drift)
    assert image == tmp_path / DRIFT_IMAGE and image.read_bytes()[:4] == b"\x89PNG"
    lake.write_report("hdfs", days[1], "drift", day_drift(lake, "hdfs", days[1], DriftThresholds()))
    lake.write_report("hdfs", days[2], "drift", drift)
    trend = render_drift_trend(tmp_path, lake, "hdfs", days[2])
    assert trend == tmp_path / DRIFT_TREND_IMAGE and trend.read_bytes()[:4] == b"\x89PNG"
    assert render_drift_trend(tmp_path, lake, "hdfs", days[0]) is None        # no history with a reference yet
    assert "data:image/png;base64," in render_html(md, tmp_path)          # embedded, not a literal link
    assert "No drift report for this night" in render_markdown(record, {}, None)


def _drift_settings(root):
    import dataclasses

    from nightshift.settings import load_settings

    return dataclasses.replace(load_settings(), data_root=root, lock_url=None)


def test_the_drift_table_has_one_row_per_day_and_reference(tmp_path):
    import pandas as pd

    from nightshift.drift import DRIFT_TABLE_COLUMNS, write_drift_table

    lake = Lake(tmp_path)
    days = ["2026-11-01", "2026-11-02", "2026-11-03"]
    sets = [{"1,2": 100}, {"1,2": 100}, {"1": 20, "1,9": 80}]
    for d, templates, day_sets in zip(days, [{"1": 500, "2": 500}, {"1": 510, "2": 490}, {"1": 100, "9": 900}], sets):
        lake.write_report("hdfs", d, "features", {"profile": _profile(templates, sets=day_sets)})
        for s in ("parsed_lines", "session_features"):
            lake.write_report("hdfs", d, f"validation_{s}", {"success": True})
        lake.write_report("hdfs", d, "drift", day_drift(lake, "hdfs", d, DriftThresholds()))
    path = write_drift_table(_drift_settings(tmp_path), lake, "hdfs")
    assert path == tmp_path / "drift" / "source=hdfs" / "drift.parquet"
    table = pd.read_parquet(path)
    assert list(table.columns) == list(DRIFT_TABLE_COLUMNS)
    assert list(table["day"]) == days
    first, normal, drifted = (table.iloc[i] for i in range(3))
    assert first["summary"] == "no reference yet (first validated day)" and first["recent_days"] == ""
    assert pd.isna(first["recent_js_distance"]) and not first["flagged"]
    assert not normal["flagged"] and normal["recent_js_distance"] < 0.05 and normal["recent_days"] == "2026-11-01"
    assert drifted["flagged"] and drifted["recent_unseen_templates"] == 1 and drifted["recent_js_distance"] > 0.5
    assert drifted["recent_days"] == "2026-11-01,2026-11-02" and "JS distance" in drifted["exceeded"]
    assert drifted["champion_training_days"] == "" and pd.isna(drifted["champion_training_js_distance"])
    assert drifted["mean_session_length"] == 10.0
    assert normal["recent_unseen_session_share"] == 0.0 and drifted["recent_unseen_session_share"] == 0.8
    assert pd.isna(drifted["champion_training_unseen_session_share"])


_TABLE_WRITER = """
import dataclasses, sys
from pathlib import Path
from nightshift.drift import write_drift_table
from nightshift.lake import Lake
from nightshift.settings import load_settings
root = Path(sys.argv[1])
lake = Lake(root)
lake.write_report("hdfs", "2026-11-02", "drift", {"day": "2026-11-02", "flagged": False, "summary": "x", "references": {}})
write_drift_table(dataclasses.replace(load_settings(), data_root=root, lock_url=None), lake, "hdfs")
"""


def test_the_drift_table_is_rebuilt_under_the_source_s_lock(tmp_path):
    """Two nights rewriting the table at once: each rebuilds it from the day reports, so without
    the lock one could swap in a table read before the other's day existed. While this test holds
    the lock, another night's writer waits; once released, the table has both days."""
    import subprocess
    import sys
    import time

    import pandas as pd

    from nightshift import locks
    from nightshift.drift import write_drift_table
    from nightshift.settings import PROJECT_ROOT

    settings, lake = _drift_settings(tmp_path), Lake(tmp_path)
    lake.write_report("hdfs", "2026-11-01", "drift", {"day": "2026-11-01", "flagged": False, "summary": "x", "references": {}})
    table = tmp_path / "drift" / "source=hdfs" / "drift.parquet"
    with locks.exclusive(settings, "drift-table:hdfs"):
        writer = subprocess.Popen([sys.executable, "-c", _TABLE_WRITER, str(tmp_path)], cwd=PROJECT_ROOT)
        deadline = time.monotonic() + 60
        while not lake.report_file("hdfs", "2026-11-02", "drift").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3)  # the writer has its report and waits for the lock
        assert writer.poll() is None and not table.exists()
    assert writer.wait(timeout=120) == 0
    assert list(pd.read_parquet(table)["day"]) == ["2026-11-01", "2026-11-02"]
    write_drift_table(settings, lake, "hdfs")  # idempotent
    assert list(pd.read_parquet(table)["day"]) == ["2026-11-01", "2026-11-02"]


def test_learned_template_share_bounds_for_the_most_frequent_templates(tmp_path):
    from nightshift.drift import learned_template_share_bounds, template_shares

    lake = Lake(tmp_path)
    days = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    shares = [(0.50, 0.30), (0.40, 0.30), (0.60, 0.30)]      # template 1 varies, template 2 does not
    for d, (a, b) in zip(days, shares):
        lake.write_report("hdfs", d, "features", {"profile": _profile(
            {"1": int(1000 * a), "2": int(1000 * b), "3": 1000 - int(1000 * a) - int(1000 * b)})})
        for s in ("parsed_lines", "session_features"):
            lake.write_report("hdfs", d, f"validation_{s}", {"success": True})
    assert learned_template_share_bounds(lake, "hdfs", days[2], DriftThresholds()) is None   # 2 days: no bounds yet
    bounds = learned_template_share_bounds(lake, "hdfs", days[3], DriftThresholds(template_share_top=2))
    assert [b["template_id"] for b in bounds] == ["1", "2"]      # the two largest median shares
    one, two = bounds
    # template 1: median 0.5, MAD 0.1 x 1.4826, k = 5: [0.5 - 0.7413, 0.5 + 0.7413] within [0, 1],
    # wider than +-50% of the median
    assert (one["min"], one["max"], one["median"]) == (0.0, 1.0, 0.5)
    # template 2: MAD 0, so +-50% of the median 0.3
    assert (two["min"], two["max"], two["median"]) == (0.15, 0.45, 0.3)
    assert one["days"] == days[:3]
    assert learned_template_share_bounds(lake, "hdfs", days[3], DriftThresholds(template_share_top=0)) is None
    assert template_shares({"lines": 200, "templates": {"1": 50}}, ["1", "7"]) == {"1": 0.25, "7": 0.0}


def test_drift_cell_renders_flagged_none_and_no_reference():
    from nightshift.summary import drift_cell

    stats = {"js_distance": 0.5012, "unseen_line_share": 0.311}
    flagged = {"flagged": True, "summary": "drift: flagged: vs recent: ...",
               "references": {"recent": {"days": ["2026-11-03"], "stats": stats},
                              "champion_training": {"days": [], "note": "no reference days yet"}}}
    assert drift_cell(flagged) == "drift: flagged (JS 0.50, unseen 31.1%)"
    quiet = {"flagged": False, "summary": "no drift (JS 0.020, unseen 0.0%)",
             "references": {"recent": {"days": ["2026-11-02"], "stats": {"js_distance": 0.02, "unseen_line_share": 0.0}},
                            "champion_training": {"days": ["2026-11-01"],
                                                  "stats": {"js_distance": 0.03, "unseen_line_share": 0.001}}}}
    assert drift_cell(quiet) == "none (JS 0.03, unseen 0.1%)"          # the larger of the two references
    first = {"flagged": False, "summary": "no reference yet (first validated day)",
             "references": {"recent": {"days": [], "note": "no reference days yet"}}}
    assert drift_cell(first) == "no reference yet"
    missing = {"flagged": False, "summary": "not computed: no profile for the day (features not built)", "references": {}}
    assert drift_cell(missing) == "not computed: no profile for the day (features not built)"
