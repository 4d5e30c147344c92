"""Spark job: score one day's sessions with the champion model (and shadow-score the challenger).

    spark-submit jobs/score.py --source hdfs --day 2026-11-01

Writes predictions/source=<s>/dt=<day>/ and reports/.../scoring.json. When the model has no
champion yet it scores nothing, writes a report with "skipped": "no champion" and exits 0.
"""

import sys

from nightshift.jobrunner import run_spark_job
from nightshift.scoring import NoChampionError, run_scoring, skipped_report
from nightshift.settings import load_settings


def _score(spark, lake, source, day, args):
    """Score one day's sessions with the registry's champion."""
    try:
        run_scoring(spark, load_settings(), lake, source.name, day)
    except NoChampionError as exc:
        lake.write_report(source.name, day, "scoring", skipped_report(source.name, day, exc.model_name))
        print(f"SCORING SKIPPED ({source.name} {day}): {exc}")
    return 0


def main(argv=None) -> int:
    return run_spark_job("score", argv, _score)


if __name__ == "__main__":
    sys.exit(main())
