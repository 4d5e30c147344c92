"""The Spark jobs' entry-point plumbing: the background imports a job asks for while its JVM starts."""

from __future__ import annotations

import logging
import sys
import textwrap

from nightshift.jobrunner import import_in_background


def test_background_imports_load_the_modules_once_and_report_failures_without_raising(tmp_path, monkeypatch, caplog):
    (tmp_path / "ns_slow_module.py").write_text(textwrap.dedent("""
        import time
        time.sleep(0.3)
        LOADED = object()
    """))
    (tmp_path / "ns_broken_module.py").write_text("raise RuntimeError('broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("ns_slow_module", "ns_broken_module"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    caplog.set_level(logging.INFO, logger="nightshift.jobrunner")

    thread = import_in_background(("ns_slow_module", "ns_broken_module"))
    import ns_slow_module      # noqa: E402 - while (or after) the thread imports it: one module object

    thread.join(timeout=10)
    assert not thread.is_alive()
    assert sys.modules["ns_slow_module"] is ns_slow_module and ns_slow_module.LOADED is not None
    assert "ns_broken_module" not in sys.modules
    assert "background import of ns_broken_module failed: broken on purpose" in caplog.text
    assert import_in_background(()) is None


def test_the_ingest_job_imports_great_expectations_early_only_when_it_validates():
    import argparse

    from jobs import ingest
    from nightshift.validation import VALIDATION_MODULES

    assert ingest._imports(argparse.Namespace(validate=True)) == VALIDATION_MODULES
    assert "great_expectations" in VALIDATION_MODULES
    assert ingest._imports(argparse.Namespace(validate=False)) == ()


def test_a_short_night_s_driver_gets_c1_and_the_serial_collector_a_long_one_the_jvm_defaults(tmp_path, monkeypatch):
    import gzip

    from nightshift.lake import Lake
    from nightshift.spark import (GZIP_RATIO, SHORT_JOB_JVM_OPTIONS, SHORT_JOB_MAX_RAW_BYTES, driver_jvm_options,
                                  night_submit_opts, raw_input_bytes)

    monkeypatch.setenv("NIGHTSHIFT_DATA_ROOT", str(tmp_path / "lake"))
    raw = Lake(tmp_path / "lake").raw_dir("hdfs", "2026-11-01")
    (raw / "sub").mkdir(parents=True)
    (raw / "a.log").write_bytes(b"x" * 1000)
    gz = gzip.compress(b"line\n" * 2000)
    (raw / "sub" / "b.log.gz").write_bytes(gz)
    assert raw_input_bytes(raw) == 1000 + GZIP_RATIO * len(gz)
    assert raw_input_bytes(tmp_path / "missing") == 0

    assert driver_jvm_options(SHORT_JOB_MAX_RAW_BYTES - 1) == SHORT_JOB_JVM_OPTIONS == "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    assert driver_jvm_options(SHORT_JOB_MAX_RAW_BYTES) == ""
    # the environment's options (the class archive) first, then the day's
    archive = "-XX:SharedArchiveFile=/x.jsa -Xshare:auto"
    assert night_submit_opts("hdfs", "2026-11-01", {"SPARK_SUBMIT_OPTS": archive}) == f"{archive} {SHORT_JOB_JVM_OPTIONS}"
    assert night_submit_opts("hdfs", "2026-11-01", {}) == SHORT_JOB_JVM_OPTIONS
    with open(raw / "big.log", "wb") as big:          # sparse: a large day without writing it
        big.truncate(SHORT_JOB_MAX_RAW_BYTES)
    assert night_submit_opts("hdfs", "2026-11-01", {"SPARK_SUBMIT_OPTS": archive}) == archive
