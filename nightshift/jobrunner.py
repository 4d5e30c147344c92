"""Shared entry-point plumbing for the Spark jobs in ``jobs/``: arguments, settings, session."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from nightshift.lake import Lake, check_day
from nightshift.settings import load_settings
from nightshift.sources import SourceConfig, SourceConfigError, load_source


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
        check_java_regexes(spark, source)
        return int(body(spark, Lake(settings.data_root), source, args.day, args) or 0)
    finally:
        spark.stop()


def source_regexes(source: SourceConfig) -> list[tuple[str, str]]:
    """``(what, regex)`` for every regex a Spark job runs for ``source``: each mask, the mask
    passes as actually run (merged, with their first-character guard), the session id regex and
    the format regex."""
    found = [(f"mask {m.name!r}", m.regex) for m in source.masks]
    found += [(f"mask pass {i} (masks merged with their guard)", regex) for i, (regex, _) in enumerate(source.mask_passes())]
    if source.session_id_regex:
        found.append(("session.id_regex", source.session_id_regex))
    found.append(("log_format", source.log_format.regex))
    return found


def check_java_regexes(spark, source: SourceConfig) -> None:
    """Compile every regex of ``source`` with Java's engine (what Spark runs), before any data is
    read: a regex only Python accepts (``(?P<name>...)``, ``(?#...)``, ...) fails here, naming it
    and the source file, instead of failing (or matching differently) halfway through a job."""
    pattern_class = spark.sparkContext._jvm.java.util.regex.Pattern
    where = str(source.path) if source.path else f"source {source.name!r}"
    problems = []
    for what, regex in source_regexes(source):
        try:
            pattern_class.compile(regex)
        except Exception as exc:  # py4j wraps java.util.regex.PatternSyntaxException
            java_error = getattr(getattr(exc, "java_exception", None), "getMessage", lambda: str(exc))()
            problems.append(f"{what}: Java cannot compile {regex!r}: {java_error}")
    if problems:
        raise SourceConfigError(f"{where}: " + "; ".join(problems))
