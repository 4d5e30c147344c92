"""Great Expectations suites from expectations/, run on real Spark against real ingest output."""

from __future__ import annotations

from pathlib import Path

import dataclasses

import pytest

from nightshift.ingest import run_ingest
from nightshift.settings import load_settings
from nightshift.validation import run_validation
from tests.conftest import write_raw

DAY = "2026-11-01"
LINE = b"081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_%d terminating"


@pytest.fixture
def settings(lake):
    return dataclasses.replace(load_settings(), data_root=lake.root)


def test_good_day_passes_and_builds_data_docs(spark, lake, hdfs_source, settings):
    write_raw(lake, DAY, "a.log", b"\n".join(LINE % i for i in range(50)) + b"\n")
    run_ingest(spark, lake, hdfs_source, DAY)
    report = run_validation(spark, settings, lake, hdfs_source, DAY, "parsed_lines")
    assert report["success"] is True and report["failures"] == []
    assert report["batches"] == {"lines": {"expectations": 8, "failed": 0}, "ingest": {"expectations": 2, "failed": 0}}
    assert (lake.gx_dir / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()
    assert lake.read_report("hdfs", DAY, "validation_parsed_lines") == report
    # each Data Docs result names its source, day and batch
    validations = lake.gx_dir / "uncommitted" / "validations"
    run_dirs = {p.name for p in validations.rglob("*") if p.is_dir()}
    assert f"hdfs {DAY} parsed_lines.lines" in run_dirs and "__none__" not in run_dirs, sorted(run_dirs)
    # ... and the report links each batch's exact result page, which exists
    from urllib.parse import unquote, urlparse

    assert set(report["data_docs_pages"]) == {"lines", "ingest"}
    page = Path(unquote(urlparse(report["data_docs_pages"]["lines"]).path))
    assert page.is_file() and f"hdfs {DAY} parsed_lines.lines" in str(page)


def test_empty_day_fails_with_a_readable_reason(spark, lake, hdfs_source, settings):
    write_raw(lake, DAY, "empty.log", b"")
    run_ingest(spark, lake, hdfs_source, DAY)
    report = run_validation(spark, settings, lake, hdfs_source, DAY, "parsed_lines")
    assert report["success"] is False
    assert any("expect_table_row_count_to_be_between" in f and "observed 0" in f for f in report["failures"]), report


def test_garbage_day_fails_on_quarantine_rate(spark, lake, hdfs_source, settings):
    garbage = [b"\x00\xff garbage %d" % i for i in range(10)]
    write_raw(lake, DAY, "a.log", b"\n".join([LINE % i for i in range(40)] + garbage))
    run_ingest(spark, lake, hdfs_source, DAY)
    report = run_validation(spark, settings, lake, hdfs_source, DAY, "parsed_lines")
    assert report["success"] is False
    (failure,) = report["failures"]
    assert "quarantine_rate" in failure and "observed 0.2" in failure


def test_the_dag_check_trusts_only_a_passed_report_of_the_data_as_it_is(spark, lake, hdfs_source, settings):
    """What the nightly DAG's validate_* tasks check after the Spark job: a pass on this data, a
    failure with its reason first, a missing report, a report of data rewritten since."""
    from nightshift.validation import ValidationFailed, require_passed

    write_raw(lake, DAY, "a.log", b"\n".join(LINE % i for i in range(50)) + b"\n")
    run_ingest(spark, lake, hdfs_source, DAY)
    with pytest.raises(ValidationFailed, match="parsed_lines was not validated for hdfs 2026-11-01"):
        require_passed(lake, "hdfs", DAY, "parsed_lines")
    run_validation(spark, settings, lake, hdfs_source, DAY, "parsed_lines")
    assert require_passed(lake, "hdfs", DAY, "parsed_lines")["success"] is True

    # the day is re-ingested with garbage: the passed report now describes other data
    write_raw(lake, DAY, "b.log", b"\n".join(b"\x00 garbage %d" % i for i in range(30)) + b"\n")
    run_ingest(spark, lake, hdfs_source, DAY)
    with pytest.raises(ValidationFailed, match="describes other data than the day holds now"):
        require_passed(lake, "hdfs", DAY, "parsed_lines")
    run_validation(spark, settings, lake, hdfs_source, DAY, "parsed_lines")
    with pytest.raises(ValidationFailed) as failed:
        require_passed(lake, "hdfs", DAY, "parsed_lines")
    headline = str(failed.value).splitlines()[0]
    assert headline.startswith("parsed_lines validation failed for hdfs 2026-11-01: ingest: ")
    assert "quarantine_rate" in headline


def test_learned_volume_bounds_fail_a_90_percent_drop_that_fixed_bounds_pass(spark, lake, hdfs_source, settings):
    """Three validated days of ~100 parsed lines (their reports), then a day of 10: the fixed bound
    (min_lines: 1) passes it; the bound learned from the history (median +- k MAD, at least +-50%)
    fails it, says where the bound came from, and GX records the bounds (Data Docs)."""
    history = ["2026-10-29", "2026-10-30", "2026-10-31"]
    for d, n in zip(history, (100, 104, 98)):
        lake.write_report("hdfs", d, "ingest", {"parsed_lines": n})
        lake.write_report("hdfs", d, "features", {"sessions": n, "profile": {"lines": n, "sessions": n, "templates": {"1": n}}})
        for suite in ("parsed_lines", "session_features"):
            lake.write_report("hdfs", d, f"validation_{suite}", {"success": True})
    write_raw(lake, DAY, "a.log", b"\n".join(LINE % i for i in range(10)) + b"\n")
    run_ingest(spark, lake, hdfs_source, DAY)
    report = run_validation(spark, settings, lake, hdfs_source, DAY, "parsed_lines")
    assert report["success"] is False
    [failure] = report["failures"]
    assert failure == ("lines: expect_table_row_count_to_be_between(max_value=150, min_value=50) observed 10 "
                       "(bounds learned from 3 recent validated days, median 100)")
    assert report["batches"]["lines"] == {"expectations": 9, "failed": 1}
    # without the history only the fixed bound applies, and the same day passes
    for d in history:
        lake.write_report("hdfs", d, "validation_parsed_lines", {"success": False})
    assert run_validation(spark, settings, lake, hdfs_source, DAY, "parsed_lines")["success"] is True


def test_learned_template_shares_warn_when_the_most_frequent_templates_move(spark, lake, hdfs_source, settings):
    """Three validated days where two templates share the lines half and half, then a day made of
    one of them: both shares are out of the bounds learned from the history (median +- k MAD, at
    least +-50%): two warnings, with where the bounds came from, and the day stays usable."""
    from nightshift.features import run_features

    write_raw(lake, DAY, "a.log", b"\n".join(LINE % i for i in range(50)) + b"\n")
    run_ingest(spark, lake, hdfs_source, DAY)
    tonight = run_features(spark, lake, "hdfs", DAY)["profile"]
    [(template, lines)] = tonight["templates"].items()
    assert lines == 50
    history = ["2026-10-29", "2026-10-30", "2026-10-31"]
    for d, n in zip(history, (50, 52, 49)):
        lake.write_report("hdfs", d, "features", {"sessions": n, "profile": {
            "lines": 2 * n, "sessions": n, "templates": {template: n, "999": n}}})
        for suite in ("parsed_lines", "session_features"):
            lake.write_report("hdfs", d, f"validation_{suite}", {"success": True})
    report = run_validation(spark, settings, lake, hdfs_source, DAY, "session_features")
    assert report["success"] is True and report["failures"] == []
    assert sorted(report["warnings"]) == sorted(
        f"template_shares: expect_column_values_to_be_between(share_t{t}: max_value=0.75, min_value=0.25) "
        f"observed {share} (bounds learned from 3 recent validated days, median 0.5)"
        for t, share in ((template, 1), ("999", 0))), report["warnings"]
    assert report["batches"]["template_shares"] == {"expectations": 2, "failed": 0, "warnings": 2}
    # a day like the history passes without a warning
    lake.write_report("hdfs", DAY, "features", {**lake.read_report("hdfs", DAY, "features"), "profile": {
        **tonight, "lines": 100, "templates": {template: 52, "999": 48}}})
    assert run_validation(spark, settings, lake, hdfs_source, DAY, "session_features")["warnings"] == []
