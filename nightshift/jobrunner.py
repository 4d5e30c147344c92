"""Shared entry-point plumbing for the Spark jobs in ``jobs/``: arguments, settings, session."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from nightshift.lake import Lake, check_day
from nightshift.settings import load_settings
from nightshift.sources import load_source


def run_spark_job(name: str, argv: list[str] | None, body: Callable, extra_args: Callable | None = None) -> int:
    """Parse ``--source`` and ``--day``, build the session, call ``body(spark, lake, source, day, args)``.

    Returns the process exit code: 0 on success, 1 on a handled failure (the message is logged).
    """
    parser = argparse.ArgumentParser(prog=f"jobs/{name}.py", description=body.__doc__)
    parser.add_argument("--source", required=True, help="source name: sources/<name>.yaml")
    parser.add_argument("--day", required=True, type=check_day, help="day partition, YYYY-MM-DD")
    if extra_args:
        extra_args(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    for noisy in ("great_expectations", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = load_settings()
    source = load_source(args.source, settings.sources_dir)

    from nightshift.spark import get_spark

    spark = get_spark(f"nightshift-{name}-{args.source}-{args.day}")
    try:
        return int(body(spark, Lake(settings.data_root), source, args.day, args) or 0)
    finally:
        spark.stop()
