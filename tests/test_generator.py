"""Tests for the synthetic HDFS log generator (small volumes, tmp_path only)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from nightshift_datagen import hdfs as generator
from nightshift_datagen.hdfs import DaySummary, Scenario, generate, generate_day, main, render_day
from nightshift.lake import Lake

LINE_RE = re.compile(r"^(\d{6}) (\d{6}) (\d+) (INFO|WARN|ERROR) ([^:]+): (.*)$")
BLOCK_RE = re.compile(r"blk_-?\d+")
# the masks of sources/hdfs.yaml, in order
MASKS = (
    (re.compile(r"blk_-?\d+"), "blk_<*>"),
    (re.compile(r"/?(\d{1,3}\.){3}\d{1,3}(:\d+)?"), "<*>"),
    (re.compile(r"(?<![A-Za-z0-9_])-?\d+(?![A-Za-z0-9_])"), "<*>"),
)

BASE = Scenario(start_day="2026-11-01", days=1, seed=7, blocks_per_day=300, anomaly_rate=0.05)


def _log(root: Path, day: str) -> bytes:
    return (Lake(root).raw_dir("hdfs", day) / "hdfs.log").read_bytes()


def _labels(root: Path, day: str) -> dict[str, int]:
    with open(Lake(root).labels_file("hdfs", day), newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["session_id", "label"]
        return {row["session_id"]: int(row["label"]) for row in reader}


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8", errors="replace").split("\n")


def _templates(data: bytes) -> set[str]:
    out = set()
    for line in _lines(data):
        m = LINE_RE.match(line)
        if m:
            message = m.group(6)
            for regex, repl in MASKS:
                message = regex.sub(repl, message)
            out.add(f"{m.group(5)}: {message}")
    return out


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----- scenario


def test_scenario_validates_and_names_days() -> None:
    sc = Scenario(start_day="2026-12-30", days=3, drift_day=1, corrupt_day=2)
    assert [sc.day(i) for i in range(3)] == ["2026-12-30", "2026-12-31", "2027-01-01"]
    assert [sc.is_drifted(i) for i in range(3)] == [False, True, True]
    assert [sc.is_corrupt(i) for i in range(3)] == [False, False, True]
    for bad in (
        {"start_day": "2026-13-01"},
        {"start_day": "2026-11-01", "days": 0},
        {"start_day": "2026-11-01", "anomaly_rate": 1.5},
        {"start_day": "2026-11-01", "blocks_per_day": 0},
        {"start_day": "2026-11-01", "drift_day": -1},
    ):
        with pytest.raises(ValueError):
            Scenario(**bad)


# ----- determinism


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    sc = Scenario(start_day="2026-11-01", days=3, seed=11, blocks_per_day=150, drift_day=1, corrupt_day=2)
    first = generate(tmp_path / "a", sc)
    second = generate(tmp_path / "b", sc)
    assert first == second
    files_a, files_b = _all_files(tmp_path / "a"), _all_files(tmp_path / "b")
    assert len(files_a) == 6
    assert files_a == files_b


def test_different_seed_gives_different_bytes(tmp_path: Path) -> None:
    generate_day(tmp_path / "a", BASE, 0)
    generate_day(tmp_path / "b", Scenario(**{**BASE.__dict__, "seed": BASE.seed + 1}), 0)
    assert _log(tmp_path / "a", "2026-11-01") != _log(tmp_path / "b", "2026-11-01")


def test_days_are_independent_of_other_days() -> None:
    short = Scenario(start_day="2026-11-01", days=2, seed=3, blocks_per_day=100)
    long = Scenario(start_day="2026-11-01", days=5, seed=3, blocks_per_day=100)
    assert render_day(short, 1).lines == render_day(long, 1).lines
    assert render_day(long, 0).lines != render_day(long, 1).lines


# ----- a normal day


def test_normal_day_lines_parse_and_are_sorted(tmp_path: Path) -> None:
    summary = generate_day(tmp_path, BASE, 0)
    data = _log(tmp_path, "2026-11-01")
    assert data.endswith(b"\n")
    lines = data.decode("utf-8").split("\n")[:-1]
    assert len(lines) == summary.lines > 10 * BASE.blocks_per_day
    stamps = []
    for line in lines:
        m = LINE_RE.match(line)
        assert m, line
        assert m.group(1) == "261101"
        stamps.append(m.group(2))
    assert stamps == sorted(stamps)
    components = {LINE_RE.match(line).group(5) for line in lines}
    expected = {"dfs.FSNamesystem", "dfs.DataNode$DataXceiver", "dfs.DataNode$PacketResponder", "dfs.FSDataset"}
    assert expected <= components
    # a few percent of housekeeping lines without a block id
    without_block = sum(1 for line in lines if "blk_" not in line)
    assert 0.01 < without_block / len(lines) < 0.06


def test_normal_day_uses_the_real_hdfs_message_shapes(tmp_path: Path) -> None:
    generate_day(tmp_path, Scenario(**{**BASE.__dict__, "blocks_per_day": 1500}), 0)
    templates = _templates(_log(tmp_path, "2026-11-01"))
    expected = {
        "dfs.DataNode$PacketResponder: PacketResponder <*> for block blk_<*> terminating",
        "dfs.DataNode$PacketResponder: Received block blk_<*> of size <*> from <*>",
        "dfs.DataNode$DataXceiver: Receiving block blk_<*> src: <*> dest: <*>",
        "dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: blockMap updated: <*> is added to blk_<*> size <*>",
        "dfs.FSNamesystem: BLOCK* NameSystem.delete: blk_<*> is added to invalidSet of <*>",
        "dfs.FSNamesystem: BLOCK* ask <*> to delete  blk_<*>",
        "dfs.FSNamesystem: BLOCK* ask <*> to replicate blk_<*> to datanode(s) <*>",
        "dfs.DataNode$DataXceiver: <*> Served block blk_<*> to <*>",
        "dfs.DataNode$DataXceiver: <*>:Got exception while serving blk_<*> to <*>:",
        "dfs.DataNode: <*> Starting thread to transfer block blk_<*> to <*>",
        "dfs.DataNode$DataXceiver: Received block blk_<*> src: <*> dest: <*> of size <*>",
        "dfs.DataBlockScanner: Verification succeeded for blk_<*>",
        "dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: Redundant addStoredBlock request received for"
        " blk_<*> on <*> size <*>",
        "dfs.FSDataset: Unexpected error trying to delete block blk_<*>. BlockInfo not found in volumeMap.",
    }
    assert expected <= templates, expected - templates
    assert any(t.startswith("dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /user/root/") for t in templates)
    deleting = "dfs.FSDataset: Deleting block blk_<*> file /mnt/hadoop/dfs/data/current/"
    assert any(t.startswith(deleting) for t in templates)


def test_labels_match_the_blocks_in_the_log(tmp_path: Path) -> None:
    summary = generate_day(tmp_path, BASE, 0)
    labels = _labels(tmp_path, "2026-11-01")
    ids = set(BLOCK_RE.findall(_log(tmp_path, "2026-11-01").decode()))
    assert len(labels) == summary.blocks == BASE.blocks_per_day
    assert set(labels) == ids
    assert set(labels.values()) <= {0, 1}
    assert sum(labels.values()) == summary.anomalies


def test_block_lifecycle_of_a_normal_block(tmp_path: Path) -> None:
    generate_day(tmp_path, Scenario(**{**BASE.__dict__, "anomaly_rate": 0.0}), 0)
    lines = _lines(_log(tmp_path, "2026-11-01"))
    labels = _labels(tmp_path, "2026-11-01")
    assert sum(labels.values()) == 0
    by_block: dict[str, list[str]] = {}
    for line in lines:
        m = BLOCK_RE.search(line)
        if m:
            by_block.setdefault(m.group(0), []).append(line)
    for blk, block_lines in by_block.items():
        assert "allocateBlock" in block_lines[0], blk
        receiving = sum("Receiving block" in x and "src:" in x for x in block_lines)
        terminating = sum(x.endswith(" terminating") for x in block_lines)
        stored = sum("blockMap updated" in x for x in block_lines)
        transfers = sum("to replicate" in x for x in block_lines)
        assert terminating == receiving - transfers, blk
        assert stored == receiving, blk


def test_anomaly_rate_is_close_to_the_knob() -> None:
    sc = Scenario(start_day="2026-11-01", days=2, seed=5, blocks_per_day=2000, anomaly_rate=0.05, drift_day=1)
    for index in range(2):
        rendered = render_day(sc, index)
        rate = rendered.summary.anomalies / rendered.summary.blocks
        assert abs(rate - 0.05) < 0.015, (index, rate)
        assert rendered.summary.anomalies == sum(label for _, label in rendered.labels)


def test_anomalous_blocks_look_different() -> None:
    rendered = render_day(Scenario(start_day="2026-11-01", seed=2, blocks_per_day=1000, anomaly_rate=0.2), 0)
    anomalous = {blk for blk, label in rendered.labels if label}
    warn_blocks = set()
    short_ack_blocks = set()
    per_block: dict[str, list[str]] = {}
    for line in rendered.lines:
        m = BLOCK_RE.search(line)
        if m:
            per_block.setdefault(m.group(0), []).append(line)
    for blk, lines in per_block.items():
        if any(" WARN " in x for x in lines):
            warn_blocks.add(blk)
        receiving = sum("Receiving block" in x for x in lines)
        if sum(x.endswith(" terminating") for x in lines) < receiving - sum("to replicate" in x for x in lines):
            short_ack_blocks.add(blk)
    flagged = warn_blocks | short_ack_blocks
    assert len(flagged & anomalous) > 0.6 * len(anomalous)
    assert len(flagged - anomalous) < 0.02 * (len(rendered.labels) - len(anomalous))


# ----- drift


def test_drift_day_has_new_templates_and_persists() -> None:
    sc = Scenario(start_day="2026-11-01", days=4, seed=9, blocks_per_day=600, anomaly_rate=0.05, drift_day=2)
    days = [render_day(sc, i) for i in range(4)]
    texts = ["\n".join(d.lines).encode() for d in days]
    before = _templates(texts[0]) | _templates(texts[1])
    for index in (2, 3):
        assert days[index].summary.drift
        after = _templates(texts[index])
        new = after - before
        assert "dfs.DataNode$PacketResponder: PacketResponder <*> for block blk_<*> closed" in new
        assert any(t.startswith("dfs.DataNode.clienttrace:") for t in new)
        assert "dfs.DataNode$PacketResponder: PacketResponder <*> for block blk_<*> terminating" not in after
        # new anomaly patterns
        assert any("ChecksumException" in t or "SocketTimeoutException" in t or "recovery started" in t for t in new)
    assert not days[0].summary.drift and not days[1].summary.drift
    assert b" closed\n" not in texts[0] and b" closed\n" not in texts[1]


# ----- corruption


def test_corrupt_day(tmp_path: Path) -> None:
    sc = Scenario(start_day="2026-11-01", days=2, seed=4, blocks_per_day=800, corrupt_day=1)
    summaries = generate(tmp_path, sc)
    assert summaries[0].corrupted_lines == 0
    summary = summaries[1]
    data = _log(tmp_path, "2026-11-02")
    assert not data.endswith(b"\n")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    lines = _lines(data)
    assert len(lines) == summary.lines
    bad = [line for line in lines if not LINE_RE.match(line)]
    assert len(bad) > 0.02 * len(lines)
    assert summary.corrupted_lines >= len(bad)
    assert any(re.match(r"^2026-11-02T\d\d:\d\d:\d\d \d+ (INFO|WARN) ", line) for line in bad)
    assert any(line.startswith("\tat ") for line in bad)
    # no half block id: every id in the file is a labelled block
    assert set(BLOCK_RE.findall(data.decode("utf-8", errors="replace"))) <= set(_labels(tmp_path, "2026-11-02"))
    # the day before is clean
    assert all(LINE_RE.match(line) for line in _log(tmp_path, "2026-11-01").decode().split("\n")[:-1])


# ----- writing


def test_regeneration_overwrites_the_partition(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    generate_day(tmp_path, BASE, 0)
    stray_raw = lake.raw_dir("hdfs", "2026-11-01") / "old.log"
    stray_labels = lake.labels_dir("hdfs", "2026-11-01") / "old.csv"
    stray_raw.write_text("old\n")
    stray_labels.write_text("old\n")
    other = Scenario(**{**BASE.__dict__, "seed": 99, "blocks_per_day": 50})
    summary = generate_day(tmp_path, other, 0)
    assert not stray_raw.exists() and not stray_labels.exists()
    assert sorted(p.name for p in lake.raw_dir("hdfs", "2026-11-01").iterdir()) == ["hdfs.log"]
    assert len(_labels(tmp_path, "2026-11-01")) == summary.blocks == 50
    fresh = tmp_path / "fresh"
    generate_day(fresh, other, 0)
    assert _log(tmp_path, "2026-11-01") == _log(fresh, "2026-11-01")


def test_cli_prints_one_line_per_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--root", str(tmp_path), "--start-day", "2026-11-01", "--days", "3", "--seed", "7",
        "--blocks-per-day", "40", "--anomaly-rate", "0.1", "--drift-day", "1", "--corrupt-day", "2",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().split("\n")
    assert len(out) == 3
    assert out[0].startswith("2026-11-01 ") and "drift=no" in out[0]
    assert out[2].startswith("2026-11-03 ") and "drift=yes" in out[2]
    assert Lake(tmp_path).days_with("raw", "hdfs") == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert Lake(tmp_path).days_with("labels", "hdfs") == ["2026-11-01", "2026-11-02", "2026-11-03"]


def test_cli_rejects_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--start-day", "2026-02-30"]) == 2
    assert "error" in capsys.readouterr().err


def test_summary_is_a_plain_record() -> None:
    s = render_day(BASE, 0).summary
    assert isinstance(s, DaySummary)
    assert s.day == "2026-11-01" and s.index == 0 and s.blocks == 300 and not s.drift
    assert "blocks=300" in s.describe()
    assert generator.SOURCE == "hdfs"
