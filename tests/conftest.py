"""Shared fixtures: one local SparkSession for the whole run, temporary lakes, the HDFS source."""

from __future__ import annotations

import logging
import os
import sys

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)      # Python UDF workers (spark_udf) use the venv
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
logging.getLogger("py4j").setLevel(logging.WARNING)

from nightshift.lake import Lake  # noqa: E402
from nightshift.settings import PROJECT_ROOT  # noqa: E402
from nightshift.sources import load_source  # noqa: E402


@pytest.fixture(scope="session")
def spark():
    from nightshift.spark import get_spark

    session = get_spark(
        "nightshift-tests", master="local[2]",
        conf={"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false", "spark.driver.bindAddress": "127.0.0.1"},
    )
    yield session
    session.stop()


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture(scope="session")
def hdfs_source():
    return load_source("hdfs", PROJECT_ROOT / "sources")


def write_raw(lake: Lake, day: str, name: str, content: bytes, source: str = "hdfs"):
    """Drop one raw file into the lake, as a log shipper would."""
    path = lake.raw_dir(source, day) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path
