"""The Spark driver's class-data-sharing archive (``nightshift.jvm_archive``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nightshift import jvm_archive


def test_the_options_are_added_once_and_only_for_an_archive_that_exists(tmp_path, monkeypatch):
    archive = tmp_path / "classes.jsa"
    monkeypatch.setenv(jvm_archive.ARCHIVE_ENV, str(archive))
    assert jvm_archive.submit_opts() == ""
    assert jvm_archive.with_archive({"SPARK_SUBMIT_OPTS": "-Dx=1"}) == {"SPARK_SUBMIT_OPTS": "-Dx=1"}

    archive.write_bytes(b"not checked here: the JVM ignores an archive it cannot map")
    env = jvm_archive.with_archive({"SPARK_SUBMIT_OPTS": "-Dx=1"})
    assert env["SPARK_SUBMIT_OPTS"] == f"-Dx=1 -XX:SharedArchiveFile={archive} -Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"
    assert jvm_archive.with_archive(dict(env)) == env                       # not added twice
    dumping = {"SPARK_SUBMIT_OPTS": "-XX:ArchiveClassesAtExit=/tmp/a.jsa"}   # a build in progress keeps its own
    assert jvm_archive.with_archive(dict(dumping)) == dumping

    monkeypatch.setenv(jvm_archive.ARCHIVE_ENV, "off")
    assert jvm_archive.archive_path() is None and jvm_archive.submit_opts() == ""


def test_the_archive_is_per_spark_and_jdk_inside_the_virtualenv(monkeypatch):
    monkeypatch.delenv(jvm_archive.ARCHIVE_ENV, raising=False)
    path = jvm_archive.archive_path()
    assert path.parent == __import__("pathlib").Path(sys.prefix) / "share" / "nightshift"
    assert path.name.startswith("spark-classes-") and path.suffix == ".jsa"


def test_a_build_that_does_not_finish_leaves_no_archive(tmp_path):
    target = tmp_path / "classes.jsa"
    with pytest.raises(subprocess.TimeoutExpired):
        jvm_archive.build(target, timeout=0.5)
    assert list(tmp_path.iterdir()) == []


def test_spark_submit_loads_spark_s_classes_from_the_built_archive(tmp_path, monkeypatch):
    """The archive make venv built is usable by this JDK and this Spark: a spark-submit JVM (the
    launcher the DAGs' Spark tasks, try-source and PySpark use) loads Spark's classes from it."""
    monkeypatch.delenv(jvm_archive.ARCHIVE_ENV, raising=False)
    path = jvm_archive.archive_path()
    assert path.is_file(), f"no class archive at {path}: make venv builds it (python -m nightshift.jvm_archive build)"
    class_log = tmp_path / "classes.log"
    env = {k: v for k, v in os.environ.items() if k != "SPARK_SUBMIT_OPTS"}
    env = jvm_archive.with_archive(env)
    env["SPARK_SUBMIT_OPTS"] += f" -Xlog:class+load=info:file={class_log}"
    spark_submit = os.path.join(os.path.dirname(sys.executable), "spark-submit")
    proc = subprocess.run([spark_submit, "--version"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    shared = [line for line in class_log.read_text().splitlines()
              if "org.apache.spark." in line and "shared objects file (top)" in line]
    assert shared, "no Spark class came from the archive (the JVM did not map it)"
