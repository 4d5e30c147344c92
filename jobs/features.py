"""Spark job: build one day's session features (event counts per template, stats, labels).

    spark-submit jobs/features.py --source hdfs --day 2026-11-01
"""

import sys

from nightshift.features import run_features
from nightshift.jobrunner import run_spark_job


def _features(spark, lake, source, day, args):
    """Aggregate one day's parsed lines into session features."""
    run_features(spark, lake, source.name, day)


def main(argv=None) -> int:
    return run_spark_job("features", argv, _features)


if __name__ == "__main__":
    sys.exit(main())
