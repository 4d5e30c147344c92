from __future__ import annotations

import pytest
import yaml

from nightshift.settings import PROJECT_ROOT
from nightshift.sources import SourceConfigError, load_source, parse_source


def _raw():
    return yaml.safe_load((PROJECT_ROOT / "sources" / "hdfs.yaml").read_text())


def test_shipped_hdfs_source_loads():
    source = load_source("hdfs", PROJECT_ROOT / "sources")
    assert source.log_format.fields == ("Date", "Time", "Pid", "Level", "Component", "Content")
    assert source.message_field == "Content" and source.timestamp_fields == ("Date", "Time")
    assert [m.name for m in source.masks] == ["block_ids", "ip_port", "hex", "number"]
    assert len(source.mask_passes()) == 1          # all masks share <*>: one regex pass per line


def test_unknown_source_names_the_known_ones(tmp_path):
    (tmp_path / "hdfs.yaml").write_text("x: 1")
    with pytest.raises(SourceConfigError, match=r"known sources: \['hdfs'\]"):
        load_source("bgl", tmp_path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.pop("log_format"), "missing required key 'log_format'"),
        (lambda r: r.update(level_field="Severity"), "field 'Severity' is not in log_format"),
        (lambda r: r["masks"].append({"name": "bad", "regex": "(unclosed"}), "invalid regex"),
        (lambda r: r["session"].pop("id_regex"), "session needs either 'id_regex'"),
        (lambda r: r["session"].update(key_field="Pid", window_minutes=0), "session needs either"),
        (lambda r: r.update(session={"key_field": "Pid", "window_minutes": 0}), "window_minutes must be"),
        (lambda r: r.update(session={"key_field": "Node", "window_minutes": 60}), "key_field 'Node' is not"),
        (lambda r: r.update(labels={"field": "Label"}), "labels.field 'Label' is not"),
        (lambda r: r["timestamp"].pop("format"), "timestamp needs"),
        (lambda r: r["validation"].update(labels={"max_bad_row_share": 2}), "max_bad_row_share must be a number"),
        (lambda r: r["masks"].append({"name": "evil", "regex": r"(a+)+$"}), "mask 'evil'.*refused"),
        (lambda r: r["timestamp"].update(format="YYMMdd HHmmss"), r"timestamp\.format: pattern letter 'Y'"),
        (lambda r: r["timestamp"].update(format="epoch_ns"), r"timestamp\.format: unknown format keyword"),
        (lambda r: r["timestamp"].update(timezone="Nowhere/City"), r"timestamp\.timezone: unknown timezone"),
        (lambda r: r.update(session={"key_field": "Pid", "key_fields": ["Pid"], "window_minutes": 5}), "not both"),
        (lambda r: r.update(session={"key_fields": ["Pid", "Node"], "window_minutes": 5}), "key_fields 'Node' is not"),
        (lambda r: r.update(session={"key_fields": [], "window_minutes": 5}), "key_fields must be a non-empty list"),
        (lambda r: r["session"].update(key_field="Pid"), "'id_regex' takes no 'key_field'"),
        (lambda r: r.update(session={"window_minutes": True}), "window_minutes must be"),
        (lambda r: r.update(session={"window": 5}), "unknown keys"),
    ],
)
def test_invalid_source_configs_fail_clearly(change, message):
    raw = _raw()
    change(raw)
    with pytest.raises(SourceConfigError, match=message):
        parse_source(raw)


def test_the_documented_example_source_is_valid(tmp_path):
    """docs/sources.md's example YAML loads, and its format string splits its example lines."""
    import re

    doc = (PROJECT_ROOT / "docs" / "sources.md").read_text()
    example = re.search(r"`sources/linux.yaml`:\n\n```yaml\n(.*?)```", doc, re.S).group(1)
    source = parse_source(yaml.safe_load(example))
    assert source.name == "linux" and source.session_key_field == "Level"
    line = re.search(r"```\n(Jun 14 15:16:01 .*?)\n", doc).group(1)
    fields = source.log_format.python_regex.match(line).groupdict()
    assert fields["Component"] == "sshd(pam_unix)" and fields["PID"] == "19939"
    assert fields["Content"].startswith("authentication failure")


def test_try_source_prints_the_quarantine_bound_and_says_when_it_is_exceeded():
    from nightshift.cli import quarantine_verdict
    from nightshift.settings import PROJECT_ROOT

    hdfs = load_source("hdfs", PROJECT_ROOT / "sources")     # max_quarantine_rate 0.05
    assert "bound 5.00%" in quarantine_verdict(hdfs, 100, 3) and "within the bound" in quarantine_verdict(hdfs, 100, 3)
    assert "EXCEEDS the bound" in quarantine_verdict(hdfs, 2000, 667)


def test_sessions_by_window_alone_or_by_several_key_fields_and_the_timestamp_options_load():
    raw = _raw()
    raw["session"] = {"window_minutes": 15}
    raw["timestamp"] = {"fields": ["Date", "Time"], "format": "yyMMdd HHmmss", "timezone": "Europe/Berlin"}
    source = parse_source(raw)
    assert (source.session_window_minutes, source.session_key_fields, source.session_key_field) == (15, (), None)
    assert source.timestamp_timezone == "Europe/Berlin" and source.timestamp.spark_pattern == "yyMMdd HHmmss VV"
    raw["session"] = {"key_fields": ["Pid", "Component"], "window_minutes": 15}
    raw["timestamp"] = {"fields": ["Date"], "format": "epoch_ms"}
    source = parse_source(raw)
    assert source.session_key_fields == ("Pid", "Component") and source.session_key_field is None
    assert source.timestamp.kind == "epoch_ms" and source.timestamp_timezone == "UTC"
    assert {"Pid", "Component"} <= set(source.used_fields())
    raw["session"] = {"key_field": "Pid", "window_minutes": 15}        # the single-key spelling still works
    assert parse_source(raw).session_key_fields == ("Pid",) and parse_source(raw).session_key_field == "Pid"
