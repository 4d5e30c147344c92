"""Mask regexes: refused at source load when they can backtrack catastrophically, and compiled by
Java (Spark's regex engine) at the start of every Spark job."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from nightshift.jobrunner import check_java_regexes
from nightshift.regexopt import backtracking_risk
from nightshift.settings import PROJECT_ROOT
from nightshift.sources import Mask, SourceConfigError, load_source, parse_source

HDFS_YAML = PROJECT_ROOT / "sources" / "hdfs.yaml"


def _with_mask(name: str, regex: str):
    raw = yaml.safe_load(HDFS_YAML.read_text())
    raw["masks"].append({"name": name, "regex": regex})
    return raw


@pytest.mark.parametrize("regex", [r"(.*\d){10}Z", r"(a+)+$", r"(\w+\s?)+$", r"(-?\d+)+x", r"(\d{1,3})+x",
                                   r"((ab)+)+c"])
def test_masks_that_can_backtrack_catastrophically_are_refused_at_load(regex):
    with pytest.raises(SourceConfigError) as info:
        parse_source(_with_mask("evil", regex), HDFS_YAML)
    message = str(info.value)
    assert "mask 'evil'" in message and str(HDFS_YAML) in message and repr(regex) in message
    assert "repeated group can also match what follows it" in message


def test_session_id_regex_is_checked_too():
    raw = yaml.safe_load(HDFS_YAML.read_text())
    raw["session"]["id_regex"] = r"blk_(\d+-?)+"
    with pytest.raises(SourceConfigError, match=r"session.id_regex.*refused"):
        parse_source(raw, HDFS_YAML)


@pytest.mark.parametrize("name", ["hdfs", "bgl"])
def test_shipped_sources_load_and_their_masks_are_not_refused(name):
    source = load_source(name, PROJECT_ROOT / "sources")
    assert source.masks
    assert all(backtracking_risk(m.regex) is None for m in source.masks)


@pytest.mark.parametrize("regex", [
    r"/?(\d{1,3}\.){3}\d{1,3}(:\d+)?", r"(?<=blk_)-?\d+(\s+blk_-?\d+)*", r"(?<![A-Za-z0-9])-?\d+",
    r"(?:[a-z]+\.)+[a-z]+", r"(\w+,)*\w+", r"([a-z]+ )+x", r"(\d+)",
])
def test_unambiguous_repeats_are_accepted(regex):
    assert backtracking_risk(regex) is None


def test_a_mask_only_python_can_compile_fails_at_job_start_with_its_name(spark, hdfs_source):
    check_java_regexes(spark, hdfs_source)                         # the shipped source compiles in Java
    check_java_regexes(spark, load_source("bgl", PROJECT_ROOT / "sources"))
    python_only = r"(?P<pid>\d+)"                                  # Python named group; Java wants (?<pid>...)
    source = dataclasses.replace(hdfs_source, masks=(*hdfs_source.masks, Mask("pid", python_only)))
    with pytest.raises(SourceConfigError) as info:
        check_java_regexes(spark, source)
    message = str(info.value)
    assert "mask 'pid'" in message and str(hdfs_source.path) in message and "Java cannot compile" in message


def test_the_java_check_runs_at_the_start_of_every_spark_job(monkeypatch, tmp_path):
    """run_spark_job compiles the source's regexes in Java before calling the job's body."""
    import nightshift.jobrunner as jobrunner
    import nightshift.spark

    calls = []
    monkeypatch.setattr(nightshift.spark, "get_spark", lambda name: type("S", (), {"stop": lambda self: None})())
    monkeypatch.setattr(jobrunner, "check_java_regexes", lambda spark, source: calls.append(("check", source.name)))
    monkeypatch.setenv("NIGHTSHIFT_DATA_ROOT", str(tmp_path))
    jobrunner.run_spark_job("probe", ["--source", "hdfs", "--day", "2026-11-01"],
                            lambda spark, lake, source, day, args: calls.append(("body", day)))
    assert calls == [("check", "hdfs"), ("body", "2026-11-01")]
