"""The night's Spark job as a Spark Connect client (``make demo``'s way, issue 14): the same job
script, run with ``SPARK_REMOTE`` on a server kept running, must give what a job with its own
driver gives, and fail as clearly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nightshift.lake import Lake
from nightshift.settings import PROJECT_ROOT
from nightshift_datagen.hdfs import Scenario, generate
from tests.conftest import prepare_validated_day

SCENARIO = Scenario(start_day="2026-05-01", days=2, seed=23, blocks_per_day=120, anomaly_rate=0.1, drift_day=1)
DAYS = [SCENARIO.day(i) for i in range(SCENARIO.days)]


def _run_client(url: str, data_root: Path, day: str, timeout: float = 600, **env_extra) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPARK_REMOTE": url, "NIGHTSHIFT_DATA_ROOT": str(data_root), **env_extra}
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "jobs" / "ingest.py"), "--source", "hdfs", "--day", day,
                           "--with-features", "--validate"], env=env, capture_output=True, text=True, timeout=timeout)


def _rows(spark, path: Path) -> list[dict]:
    return sorted((row.asDict(recursive=True) for row in spark.read.parquet(str(path)).collect()), key=repr)


@pytest.mark.e2e
def test_the_job_on_a_spark_connect_server_writes_what_a_job_with_its_own_driver_writes(
        spark, spark_connect_server, tmp_path):
    connect_root, classic_root = tmp_path / "connect", tmp_path / "classic"
    generate(connect_root, SCENARIO)
    generate(classic_root, SCENARIO)
    connect, classic = Lake(connect_root), Lake(classic_root)
    for day in DAYS:
        proc = _run_client(spark_connect_server["url"], connect_root, day)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        prepare_validated_day(spark, classic_root, "hdfs", day)

        report = connect.read_report("hdfs", day, "spark_ingest")
        assert report["spark_connect"].rstrip("/") == spark_connect_server["url"] and report["jvm_options"] == []
        assert set(report["steps_s"]) == {"ingest", "features", "validate_parsed_lines", "validate_session_features",
                                          "validate_labels"}
        for name in ("ingest", "features"):
            ours, theirs = connect.read_report("hdfs", day, name), classic.read_report("hdfs", day, name)
            different = {k for k in ours if k not in ("path", "labels") and "_at" not in k and "fingerprint" not in k
                         and ours[k] != theirs.get(k)
                         and not isinstance(ours[k], float)}
            assert not different, {k: (ours[k], theirs.get(k)) for k in different}
        for suite in ("parsed_lines", "session_features"):
            ours = connect.read_report("hdfs", day, f"validation_{suite}")
            theirs = classic.read_report("hdfs", day, f"validation_{suite}")
            assert (ours["success"], ours["failures"]) == (theirs["success"], theirs["failures"])
        assert _rows(spark, connect.features_dir("hdfs", day)) == _rows(spark, classic.features_dir("hdfs", day))
        assert _rows(spark, connect.parsed_dir("hdfs", day)) == _rows(spark, classic.parsed_dir("hdfs", day))
    # the drift day's new templates got the same ids in both lakes' template stores
    from nightshift.templates import TemplateStore

    ours = TemplateStore.load(connect.template_store_file("hdfs")).templates()
    assert ours and ours == TemplateStore.load(classic.template_store_file("hdfs")).templates()


@pytest.mark.e2e
def test_a_regex_only_python_compiles_fails_the_client_job_with_its_name(spark_connect_server, tmp_path):
    """The Java regex check of every job start (nightshift.jobrunner.check_java_regexes) has no
    JVM in a Spark Connect client: it compiles on the server, and still names the mask."""
    sources = tmp_path / "sources"
    sources.mkdir()
    raw = yaml.safe_load((PROJECT_ROOT / "sources" / "hdfs.yaml").read_text())
    raw["masks"].append({"name": "pid", "regex": r"(?P<pid>\d+)"})
    (sources / "hdfs.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    generate(tmp_path / "data", Scenario(start_day="2026-05-01", days=1, seed=1, blocks_per_day=5))
    proc = _run_client(spark_connect_server["url"], tmp_path / "data", "2026-05-01", NIGHTSHIFT_SOURCES_DIR=str(sources))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "mask 'pid'" in out and "Java cannot compile" in out and str(sources / "hdfs.yaml") in out, out[-3000:]
    assert not Lake(tmp_path / "data").parsed_dir("hdfs", "2026-05-01").exists()


def test_no_server_at_the_address_is_a_clear_error(tmp_path):
    from nightshift_stack.stack import free_port

    port = free_port()
    proc = _run_client(f"sc://127.0.0.1:{port}", tmp_path / "data", "2026-05-01", timeout=60)   # not minutes of retries
    assert proc.returncode != 0
    assert f"no Spark Connect server answers at sc://127.0.0.1:{port}" in proc.stdout + proc.stderr, proc.stderr[-3000:]
