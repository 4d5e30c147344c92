"""Nothing half-done in the lake: template ids, partition swaps, derived data and raw file names
under races, kills and hostile names (issue 8, lake/ingest part).

Kills use ``nightshift.faults`` points in a real job process (``NIGHTSHIFT_FAULT``); the checks
after a kill read the lake the way every job does (``Lake.recover`` first).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nightshift import faults
from nightshift.ingest import TEMPLATE_IDS_FILE, read_parsed_lines, run_ingest
from nightshift.lake import Lake, partition_fingerprint
from nightshift.settings import PROJECT_ROOT
from tests.conftest import write_raw

DAY, OTHER_DAY = "2026-11-01", "2026-11-02"
LINE = "081109 2036{:02d} 148 {} dfs.DataNode: {}"


@pytest.fixture(autouse=True)
def _fast_job_jvms(spark, spark_conf_dir, monkeypatch):
    """The jobs these tests start (``python jobs/<job>.py``) read the test Spark defaults (C1 JIT,
    serial GC: short-lived JVMs start faster); the shared session (``spark``) is started before."""
    monkeypatch.setenv("SPARK_CONF_DIR", str(spark_conf_dir))


def _log(messages: list[str], level: str = "INFO") -> bytes:
    return ("\n".join(LINE.format(i % 60, level, m) for i, m in enumerate(messages)) + "\n").encode()


def _job(lake: Lake, script: str, day: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NIGHTSHIFT_DATA_ROOT": str(lake.root), "PYTHONPATH": str(PROJECT_ROOT),
           "PYSPARK_PYTHON": sys.executable}
    env.pop(faults.ENV, None)
    if fault:
        env[faults.ENV] = fault
    return subprocess.run([sys.executable, f"jobs/{script}.py", "--source", "hdfs", "--day", day],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)


def _store(lake: Lake) -> dict:
    return json.loads(lake.template_store_file("hdfs").read_text())


def _assert_store_agrees_with_day(lake: Lake, day: str) -> None:
    """Every id in the day's _template_ids.json exists in the store, with a template its message fits."""
    from nightshift.drain import _fits

    templates = {c["id"]: c["template"] for c in _store(lake)["miner"]["clusters"]}
    ids = json.loads((lake.parsed_dir("hdfs", day) / TEMPLATE_IDS_FILE).read_text())
    assert ids
    for masked, tid in ids.items():
        assert tid in templates, f"{day}: id {tid} ({masked!r}) is not in the store"
        assert _fits(templates[tid].split(), masked.split()), f"{day}: id {tid} is {templates[tid]!r}, not {masked!r}"
    messages = _store(lake)["messages"]
    assert {m: messages.get(m) for m in ids} == ids          # one id per message, the same everywhere


# -- template store: one writer per source --------------------------------------------------------

def test_two_ingests_of_one_source_at_once_keep_one_meaning_per_id(lake):
    shared = ["Receiving block blk_1 src: /10.0.0.1:5 dest: /10.0.0.2:50010"]
    day_a = shared + [f"Disk quota exceeded for user u{i} on volume v{i}" for i in range(3)] + \
        ["Deleting block blk_7 file /data/x"]
    day_b = shared + [f"Checksum mismatch in block blk_{i} at offset {i}" for i in range(3)] + \
        ["Verification succeeded for blk_9"]
    write_raw(lake, DAY, "a.log", _log(day_a * 20))
    write_raw(lake, OTHER_DAY, "b.log", _log(day_b * 20))
    env_procs = []
    for day in (DAY, OTHER_DAY):
        env = {**os.environ, "NIGHTSHIFT_DATA_ROOT": str(lake.root), "PYTHONPATH": str(PROJECT_ROOT),
               "PYSPARK_PYTHON": sys.executable}
        env.pop(faults.ENV, None)
        env_procs.append(subprocess.Popen([sys.executable, "jobs/ingest.py", "--source", "hdfs", "--day", day],
                                          cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=300)[0].decode() for p in env_procs]
    assert [p.returncode for p in env_procs] == [0, 0], outputs
    for day in (DAY, OTHER_DAY):
        _assert_store_agrees_with_day(lake, day)
    a = json.loads((lake.parsed_dir("hdfs", DAY) / TEMPLATE_IDS_FILE).read_text())
    b = json.loads((lake.parsed_dir("hdfs", OTHER_DAY) / TEMPLATE_IDS_FILE).read_text())
    quota, checksum = (next(v for k, v in ids.items() if k.startswith(word)) for ids, word in ((a, "Disk"), (b, "Checksum")))
    assert quota != checksum
    shared_masked = next(k for k in a if k.startswith("Receiving"))
    assert a[shared_masked] == b[shared_masked]


def test_saving_a_store_that_lost_an_update_is_refused(tmp_path):
    from nightshift.templates import TemplateStore, TemplateStoreConflict

    path = tmp_path / "store.json"
    TemplateStore.load(path).save(path)
    first, second = TemplateStore.load(path), TemplateStore.load(path)
    first.assign(["Disk quota exceeded for <*>"], DAY)
    second.assign(["Checksum mismatch at offset <*> of block"], OTHER_DAY)
    first.save(path)
    with pytest.raises(TemplateStoreConflict, match="template id 1"):
        second.save(path)
    assert TemplateStore.load(path).templates() == {1: "Disk quota exceeded for <*>"}


# -- swaps and the journal ------------------------------------------------------------------------

def test_commit_interrupted_between_swaps_is_rolled_forward_and_asides_stay_hidden(lake, monkeypatch):
    for area in ("parsed", "quarantine"):
        old = lake._partition(area, "hdfs", DAY)
        old.mkdir(parents=True)
        (old / "part-old").write_text("old")
    staged = {}
    for area in ("parsed", "quarantine"):
        staged[area] = lake.new_stage("ingest", "hdfs", DAY) / area
        staged[area].mkdir(parents=True)
        (staged[area] / "part-new").write_text("new")

    def crash(name):
        if name == "ingest:between_swaps":
            raise KeyboardInterrupt(name)        # stands in for SIGKILL: no cleanup runs after it

    monkeypatch.setattr(faults, "point", crash)
    with pytest.raises(KeyboardInterrupt):
        lake.commit("ingest", "hdfs", DAY, [(staged["parsed"], lake.parsed_dir("hdfs", DAY)),
                                            (staged["quarantine"], lake.quarantine_dir("hdfs", DAY))])
    # half-way: parsed is new, quarantine old, the journal says what is left
    assert (lake.parsed_dir("hdfs", DAY) / "part-new").exists()
    assert (lake.quarantine_dir("hdfs", DAY) / "part-old").exists()
    assert lake.days_with("parsed", "hdfs") == [DAY]
    assert len(lake.recover("hdfs", DAY)) == 1
    for area in ("parsed", "quarantine"):
        part = lake._partition(area, "hdfs", DAY)
        assert sorted(p.name for p in part.iterdir()) == ["part-new"]
        assert [p.name for p in part.parent.iterdir()] == [f"dt={DAY}"]      # no aside copy left
    assert lake.recover() == []


def test_days_with_never_lists_an_aside_copy(lake):
    base = lake.parsed_dir("hdfs", DAY).parent
    (base / f".dt={DAY}.old-123").mkdir(parents=True)
    (base / f"dt={OTHER_DAY}").mkdir()
    assert lake.days_with("parsed", "hdfs") == [OTHER_DAY]


def _day_lines(spark, lake: Lake, day: str) -> tuple[set, set]:
    parsed = {r.message for r in read_parsed_lines(spark, lake.parsed_dir("hdfs", day)).collect()}
    quarantined = {r.raw_line for r in spark.read.parquet(str(lake.quarantine_dir("hdfs", day))).collect()}
    return parsed, quarantined


V1 = ["Receiving block blk_1 src: /10.0.0.1:5 dest: /10.0.0.2:50010"] * 3
V2 = ["Disk quota exceeded for user u1 on volume v1", "Checksum mismatch in block blk_2 at offset 7"] * 2


@pytest.mark.parametrize("fault", ["ingest:after_store_save", "ingest:between_swaps"])
def test_ingest_killed_while_committing_leaves_the_day_old_or_new(spark, lake, hdfs_source, fault):
    write_raw(lake, DAY, "a.log", _log(V1) + b"garbage of version one\n")
    run_ingest(spark, lake, hdfs_source, DAY)
    old = _day_lines(spark, lake, DAY)
    write_raw(lake, DAY, "a.log", _log(V2) + b"garbage of version two\n")

    killed = _job(lake, "ingest", DAY, fault)
    assert killed.returncode == -9, killed.stdout[-3000:] + killed.stderr[-3000:]
    assert f"killed at {fault}" in killed.stderr
    lake.recover("hdfs", DAY)                     # what every reader of the day does first
    now = _day_lines(spark, lake, DAY)
    new = ({"Disk quota exceeded for user u1 on volume v1", "Checksum mismatch in block blk_2 at offset 7"},
           {"garbage of version two"})
    assert now == (old if fault == "ingest:after_store_save" else new)
    _assert_store_agrees_with_day(lake, DAY)       # the store was saved before the day became visible

    report = run_ingest(spark, lake, hdfs_source, DAY)   # the next run completes
    assert _day_lines(spark, lake, DAY) == new and report["input_lines"] == 5
    _assert_store_agrees_with_day(lake, DAY)
    assert not any(lake.journal_dir.glob("*.json"))


# -- derived data: features staged and swapped, validation tied to the data it saw ---------------

def test_killed_features_write_leaves_the_old_features_readable(spark, lake, hdfs_source):
    import pandas as pd

    from nightshift.features import run_features

    write_raw(lake, DAY, "a.log", _log(V1 + V2))
    run_ingest(spark, lake, hdfs_source, DAY)
    run_features(spark, lake, "hdfs", DAY)
    before = partition_fingerprint(lake.features_dir("hdfs", DAY))
    sessions = len(pd.read_parquet(lake.features_dir("hdfs", DAY)))
    assert sessions > 0

    killed = _job(lake, "features", DAY, "features:before_swap")
    assert killed.returncode == -9, killed.stdout[-3000:] + killed.stderr[-3000:]
    assert partition_fingerprint(lake.features_dir("hdfs", DAY)) == before      # untouched
    assert len(pd.read_parquet(lake.features_dir("hdfs", DAY))) == sessions
    lake.recover("hdfs", DAY)           # the staged features were complete: rolled forward
    assert partition_fingerprint(lake.features_dir("hdfs", DAY)) != before
    assert len(pd.read_parquet(lake.features_dir("hdfs", DAY))) == sessions
    run_features(spark, lake, "hdfs", DAY)
    assert len(pd.read_parquet(lake.features_dir("hdfs", DAY))) == sessions


def test_features_rewritten_after_validation_make_training_skip_the_day(spark, lake, hdfs_source):
    from nightshift.features import run_features
    from nightshift.settings import load_settings
    from nightshift.training import load_training_config, plan_training
    from nightshift.validation import run_validation

    blocks = [f"Receiving block blk_{i} src: /10.0.0.1:5 dest: /10.0.0.2:50010" for i in range(20)]
    write_raw(lake, DAY, "a.log", _log(blocks + [f"Deleting block blk_{i} file /data/x" for i in range(20)]))
    run_ingest(spark, lake, hdfs_source, DAY)
    run_features(spark, lake, "hdfs", DAY)
    settings = load_settings()
    for suite in ("parsed_lines", "session_features"):
        assert run_validation(spark, settings, lake, hdfs_source, DAY, suite)["success"]
    config = load_training_config(PROJECT_ROOT / "config")
    assert "older version" not in plan_training(lake, "hdfs", DAY, config).excluded_days.get(DAY, "")

    run_features(spark, lake, "hdfs", DAY)           # same input, new files: the validation is stale
    reason = plan_training(lake, "hdfs", DAY, config).excluded_days[DAY]
    assert "session_features validated an older version of the data (re-validate)" in reason
    assert "parsed_lines validated" not in reason

    run_ingest(spark, lake, hdfs_source, DAY)        # re-ingest: the parsed_lines validation is stale too
    assert "parsed_lines validated an older version" in plan_training(lake, "hdfs", DAY, config).excluded_days[DAY]


# -- raw files: names are names, entries that are not plain files are reported ----------------------

def test_raw_file_names_are_never_patterns_and_odd_entries_are_reported(spark, lake, hdfs_source, tmp_path):
    files = {
        "part.log": 3, "part*": 2, "a?.log": 1, "[x].log": 2, "c:d.log": 1, "sp ace {1,2} \u00fc.log": 2,
    }
    for name, n in files.items():
        write_raw(lake, DAY, name, _log([f"line {i} of file {name}" for i in range(1, n + 1)]))
    raw = lake.raw_dir("hdfs", DAY)
    outside = tmp_path / "secret.log"
    outside.write_bytes(_log(["secret line outside the lake"]))
    (raw / "evil.log").symlink_to(outside)
    (raw / "passwd.log").symlink_to("/etc/passwd")
    (raw / "gone.log").symlink_to(raw / "nothing-here.log")
    (raw / "sub").mkdir()
    (raw / "sub" / "inner.log").write_bytes(_log(["line in a sub-directory"]))

    report = run_ingest(spark, lake, hdfs_source, DAY)
    assert report["input_lines"] == sum(files.values()) == report["parsed_lines"]
    assert sorted(report["files"]) == sorted(files)
    skipped = {s["name"]: s["reason"] for s in report["skipped_entries"]}
    assert set(skipped) == {"evil.log", "passwd.log", "gone.log", "sub"}
    assert "outside the raw partition" in skipped["evil.log"] and "outside" in skipped["passwd.log"]
    assert "dangling" in skipped["gone.log"] and "sub-directory" in skipped["sub"]
    rows = read_parsed_lines(spark, lake.parsed_dir("hdfs", DAY)).select("source_file", "line_number", "message").collect()
    got = {(r.source_file, r.line_number): r.message for r in rows}
    assert len(got) == len(rows)
    assert got == {(name, i): f"line {i} of file {name}" for name, n in files.items() for i in range(1, n + 1)}
    assert spark.read.parquet(str(lake.quarantine_dir("hdfs", DAY))).count() == 0


def test_raw_listing_reports_fifos_and_symlink_loops_without_reading_them(tmp_path):
    from nightshift.ingest import list_raw_entries

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.log").write_text("x\n")
    os.mkfifo(raw / "pipe.log")
    (raw / "l1").symlink_to(raw / "l2")
    (raw / "l2").symlink_to(raw / "l1")
    (raw / "inside.log").symlink_to(raw / "a.log")
    (raw / ".hidden.log").write_text("x\n")
    entries = list_raw_entries(raw)
    assert entries.files == [str(raw / "a.log")]
    reasons = {s["name"]: s["reason"] for s in entries.skipped}
    assert reasons["pipe.log"] == "not a regular file" and "loop" in reasons["l1"] and "loop" in reasons["l2"]
    assert "not followed" in reasons["inside.log"] and "hidden" in reasons[".hidden.log"]
