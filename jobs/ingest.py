"""Spark job: ingest one day of raw logs (parse, mask, template ids, quarantine).

    spark-submit jobs/ingest.py --source hdfs --day 2026-11-01
"""

import sys

from nightshift.ingest import run_ingest
from nightshift.jobrunner import run_spark_job


def _ingest(spark, lake, source, day, args):
    """Parse one day of raw log lines into the parsed and quarantine partitions."""
    run_ingest(spark, lake, source, day)


def main(argv=None) -> int:
    return run_spark_job("ingest", argv, _ingest)


if __name__ == "__main__":
    sys.exit(main())
