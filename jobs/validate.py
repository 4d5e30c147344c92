"""Spark job: validate one day's data with a Great Expectations suite from expectations/.

    spark-submit jobs/validate.py --source hdfs --day 2026-11-01 --suite parsed_lines

Exits 1 when the data fails its expectations (the reasons are logged and written to the
day's validation report), so the Airflow task fails and training and promotion do not run.
"""

import sys

from nightshift.jobrunner import run_spark_job
from nightshift.settings import load_settings
from nightshift.validation import SUITES, run_validation


def _add_suite(parser):
    parser.add_argument("--suite", required=True, choices=SUITES)


def _validate(spark, lake, source, day, args):
    """Validate one day's data with one expectation suite."""
    report = run_validation(spark, load_settings(), lake, source, day, args.suite)
    if not report["success"]:
        print(f"VALIDATION FAILED ({args.suite}, {source.name} {day}):", *report["failures"], sep="\n  ")
        return 1
    return 0


def main(argv=None) -> int:
    return run_spark_job("validate", argv, _validate, extra_args=_add_suite)


if __name__ == "__main__":
    sys.exit(main())
