"""Spark job: ingest one day of raw logs (parse, mask, template ids, quarantine), and with
``--with-features`` also build the day's session features in the same Spark application.

    spark-submit jobs/ingest.py --source hdfs --day 2026-11-01 [--with-features]

The nightly DAG runs it with ``--with-features``: one JVM start-up and code already warmed by
ingest, instead of a second spark-submit for features (``jobs/features.py``, still there to
rebuild one day's features, e.g. after its labels arrived). `make bench` on 2 cores: 58.4 s for
a 4M-line day as two processes, 38.9 s as one (see bench/README.md).
"""

import logging
import sys
import time

from nightshift.features import run_features
from nightshift.ingest import run_ingest
from nightshift.jobrunner import run_spark_job
from nightshift.settings import load_settings

log = logging.getLogger("nightshift.jobs.ingest")


def _args(parser):
    parser.add_argument("--with-features", action="store_true",
                        help="also build the day's session features (same Spark application)")


def _ingest(spark, lake, source, day, args):
    """Parse one day of raw log lines into the parsed and quarantine partitions (and, with
    --with-features, aggregate them into session features)."""
    started = time.monotonic()
    # finish any commit a crashed run left (ingest and features also do this for their day)
    for journal in lake.recover(source.name, day):
        log.warning("finished an interrupted commit: %s", journal)
    run_ingest(spark, lake, source, day, settings=load_settings())   # settings: the lock backend
    log.info("step ingest: %.1f s", time.monotonic() - started)
    if args.with_features:
        started = time.monotonic()
        run_features(spark, lake, source.name, day)
        log.info("step features: %.1f s", time.monotonic() - started)


def main(argv=None) -> int:
    return run_spark_job("ingest", argv, _ingest, extra_args=_args)


if __name__ == "__main__":
    sys.exit(main())
