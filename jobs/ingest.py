"""Spark job: one day of one source in one Spark application: ingest the raw log lines (parse,
mask, template ids, quarantine); with ``--with-features`` build the day's session features; with
``--validate`` also run both Great Expectations suites on what was just written, and then the
``labels`` suite on the training window's labels files that no report covers yet (so that the
nightly DAG's ``plan_training`` finds them validated and does not import GX itself).

    spark-submit jobs/ingest.py --source hdfs --day 2026-11-01 [--with-features [--validate]]

The nightly DAG runs it with ``--with-features --validate``: one JVM start-up per night, with
code already warmed by ingest, instead of one spark-submit per step (a JVM start-up costs
9-13 s on 2 cores). The validation verdicts are written to the day's ``validation_*`` reports;
the DAG's ``validate_*`` tasks read them and fail the run with the reasons. With ``--validate``
the job's exit code is 0 when the data was processed, whatever the verdict (it prints the
verdict); a failed ``parsed_lines`` suite stops before ``session_features`` is validated.
``jobs/features.py`` and ``jobs/validate.py`` still run one step alone (e.g. to rebuild a day's
features after its labels arrived, then re-validate them).

The job writes a ``spark_job`` report with its timings: JVM start-up to a ready session, and
each step (see ``nightshift.night``).
"""

import sys

from nightshift.jobrunner import run_spark_job
from nightshift.night import run_spark_night
from nightshift.settings import load_settings
from nightshift.validation import VALIDATION_MODULES


def _args(parser):
    parser.add_argument("--with-features", action="store_true",
                        help="also build the day's session features (same Spark application)")
    parser.add_argument("--validate", action="store_true",
                        help="then validate parsed lines and session features (needs --with-features)")


def _ingest(spark, lake, source, day, args, timer):
    """Parse one day of raw log lines into the parsed and quarantine partitions (and, with
    --with-features, aggregate them into session features; with --validate, validate both)."""
    if args.validate and not args.with_features:
        raise SystemExit("jobs/ingest.py: --validate needs --with-features (it validates the features too)")
    run_spark_night(spark, load_settings(), lake, source, day, with_features=args.with_features,
                    validate=args.validate, timer=timer)
    return 0


def _imports(args) -> tuple[str, ...]:
    """Great Expectations, which ``--validate`` needs after ingest and features: imported while the
    JVM starts (``nightshift.jobrunner.import_in_background``)."""
    return VALIDATION_MODULES if args.validate else ()


def main(argv=None) -> int:
    return run_spark_job("ingest", argv, _ingest, extra_args=_args, timed=True, imports=_imports)


if __name__ == "__main__":
    sys.exit(main())
