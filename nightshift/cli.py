"""``nightshift`` command line: tools that run outside the nightly schedule.

    nightshift try-source SOURCE LOGFILE [--output lines.csv] [--show 20]
    nightshift promotions --source hdfs [--json]
    nightshift rollback --source hdfs [--to-version N] [--force] --reason "..."

``try-source`` parses one log file with a source definition (a name from ``sources/`` or a path to
a YAML file you are writing) on a local Spark session, with a fresh template store (the lake is not
touched), and reports each line's number with its template id (or its quarantine reason).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path


def _load_source(spec: str):
    from nightshift.settings import load_settings
    from nightshift.sources import load_source, load_source_file

    if spec.endswith((".yaml", ".yml")) or "/" in spec:
        return load_source_file(Path(spec))
    return load_source(spec, load_settings().sources_dir)


def quarantine_verdict(source, lines: int, quarantined: int) -> str:
    """The quarantine rate next to the source's bound (validation.parsed_lines.max_quarantine_rate),
    saying when the nightly validation would reject the day."""
    rate = quarantined / lines if lines else 0.0
    bound = (source.validation.get("parsed_lines") or {}).get("max_quarantine_rate")
    if bound is None:
        return f"quarantine rate {rate:.2%} (the source sets no bound)"
    verdict = "EXCEEDS the bound: the nightly validation would fail this day" if rate > bound else "within the bound"
    return f"quarantine rate {rate:.2%}, bound {float(bound):.2%} (validation.parsed_lines.max_quarantine_rate): {verdict}"


def try_source(spark, source, log_file: Path, output: Path | None, show: int, out=sys.stdout,
               day: str | None = None) -> dict:
    """Parse ``log_file`` with ``source`` as the lines of ``day`` (default: today, UTC; it dates
    year-less and date-less timestamps); write per-line results to ``output`` (CSV) if given.

    Prints the counts, the quarantine rate next to the source's bound, the quarantine reasons with
    their detail (where lines stopped matching the format), most frequent first, and the first
    ``show`` lines. Returns counts: ``lines``, ``parsed``, ``quarantined``, ``reasons`` (by reason),
    ``details`` (by ``reason: detail``), ``templates``.
    """
    from pyspark.sql import functions as F

    import datetime as dt

    from nightshift.ingest import drain_params, ingest_lines, literal_lookup, read_parsed_lines, read_raw_lines
    from nightshift.lake import check_day
    from nightshift.templates import TemplateStore

    if not log_file.is_file():
        raise FileNotFoundError(f"log file {log_file} does not exist")
    with tempfile.TemporaryDirectory(prefix="nightshift-try-") as tmp:
        store = TemplateStore.load(Path(tmp) / "store.json", **drain_params(source))
        lines = read_raw_lines(spark, [str(log_file.resolve())])
        day = check_day(day) if day else dt.datetime.now(dt.timezone.utc).date().isoformat()
        input_lines, _ = ingest_lines(lines, source, store, day, Path(tmp) / "parsed", Path(tmp) / "quarantine",
                                      Path(tmp) / "scratch")
        parsed = read_parsed_lines(spark, Path(tmp) / "parsed")
        quarantine = spark.read.parquet(str(Path(tmp) / "quarantine"))
        templates = store.templates()
        # each line is in exactly one of the two partitions (the ingest checks it): the counts come
        # from the quarantine's reasons alone, and the per-line result is read once for what is shown
        reasons, details = {}, {}
        for r in quarantine.groupBy("reason", "detail").count().collect():
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + r["count"]
            details[_reason_text(r["reason"], r["detail"])] = r["count"]
        quarantined = sum(reasons.values())
        counts = {"parsed": input_lines - quarantined, "quarantined": quarantined}
        result = (
            parsed.select("line_number", F.lit("parsed").alias("status"), F.lit(None).cast("string").alias("reason"),
                          F.lit(None).cast("string").alias("detail"), "template_id",
                          literal_lookup(templates, F.col("template_id"), "string").alias("template"), "session_id")
            .unionByName(
                quarantine.select("line_number", F.lit("quarantined").alias("status"), "reason", "detail",
                                  F.lit(None).cast("int").alias("template_id"), F.lit(None).cast("string").alias("template"),
                                  F.lit(None).cast("string").alias("session_id"))
            )
            .orderBy("line_number")
        )
        if output:
            csv_dir = Path(tmp) / "csv"
            result.coalesce(1).write.option("header", True).csv(str(csv_dir))
            shutil.move(str(next(csv_dir.glob("part-*.csv"))), output)
        print(f"{log_file}: {sum(counts.values())} lines, {counts.get('parsed', 0)} parsed, "
              f"{counts.get('quarantined', 0)} quarantined {reasons or ''}; {len(templates)} templates", file=out)
        print(quarantine_verdict(source, sum(counts.values()), counts.get("quarantined", 0)), file=out)
        ranked = sorted(details.items(), key=lambda kv: (-kv[1], kv[0]))
        for text, n in ranked[:DETAILS_SHOWN]:
            print(f"{n:>8}  quarantined: {text}", file=out)
        if len(ranked) > DETAILS_SHOWN:
            print(f"{'':>8}  ... {len(ranked) - DETAILS_SHOWN} more (see --output)", file=out)
        for row in result.limit(show).collect():
            what = (f"T{row.template_id:<5} {row.template}" if row.status == "parsed"
                    else f"QUARANTINED ({_reason_text(row.reason, row.detail)})")
            print(f"{row.line_number:>8}  {what}", file=out)
        if output:
            print(f"all lines: {output}", file=out)
    return {"lines": sum(counts.values()), "parsed": counts.get("parsed", 0),
            "quarantined": counts.get("quarantined", 0), "reasons": reasons, "details": details,
            "templates": templates}


DETAILS_SHOWN = 10


def _reason_text(reason: str, detail: str | None) -> str:
    """``format_mismatch: no ' - ' after <Program>``; the reason alone when it has no detail."""
    return f"{reason}: {detail}" if detail else reason


# a short-lived local JVM: the C1 compiler and the serial collector start faster (measured on a
# 2,000-line file: 15 s -> 12 s), no web UI, and log4j at errors only (no start-up notices)
CLI_JVM_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def _quick_local_spark() -> None:
    """Launch options for the command line's local Spark, unless the user set their own."""
    import os

    from nightshift.jvm_archive import with_archive
    from nightshift.settings import PROJECT_ROOT

    with_archive(os.environ)    # the virtualenv's class archive, when built (make venv; bench/README.md)
    log4j = (PROJECT_ROOT / "nightshift" / "static" / "log4j2-cli.properties").as_uri()
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS",
                          f"--driver-java-options '{CLI_JVM_OPTS} -Dlog4j2.configurationFile={log4j}' "
                          "--conf spark.ui.enabled=false --master local[2] pyspark-shell")


# what the JVM prints on every start that says nothing to the user: Spark's launcher adds the
# incubating vector module to every JVM (JavaModuleOptions), and the JVM announces it on stderr
_JVM_NOTICES = ("WARNING: Using incubator modules:",)


def _start_jvm_without_notices() -> None:
    """Start PySpark's JVM with its stderr passed on line by line, less :data:`_JVM_NOTICES`
    (errors and everything else still reach the user's stderr as they come)."""
    import subprocess
    import threading

    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway

    gateway = launch_gateway(popen_kwargs={"stderr": subprocess.PIPE})

    def forward(stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            if not line.startswith(_JVM_NOTICES):
                sys.stderr.write(line)
                sys.stderr.flush()

    threading.Thread(target=forward, args=(gateway.proc.stderr,), name="jvm-stderr", daemon=True).start()
    SparkContext._ensure_initialized(gateway=gateway)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nightshift", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_try = sub.add_parser("try-source", help="parse one log file with a source definition, outside the schedule")
    p_try.add_argument("source", help="source name (sources/<name>.yaml) or path to a source YAML file")
    p_try.add_argument("log_file", type=Path, help="a log file (.gz is decompressed)")
    p_try.add_argument("--output", type=Path, help="write every line's result to this CSV file")
    p_try.add_argument("--show", type=int, default=20, help="lines to print (default 20)")
    p_try.add_argument("--day", help="the day the lines belong to, YYYY-MM-DD (default: today, UTC): dates "
                                     "timestamps without a year or date")
    p_log = sub.add_parser("promotions", help="list every move of the champion alias (the promotion log)")
    p_log.add_argument("--source", required=True)
    p_log.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p_rb = sub.add_parser("rollback", help="move the champion alias back (to 'previous' or a given version)")
    p_rb.add_argument("--source", required=True)
    p_rb.add_argument("--to-version", help="registered model version (default: the 'previous' alias)")
    p_rb.add_argument("--force", action="store_true", help="allow a version that never passed the promotion gate")
    p_rb.add_argument("--reason", required=True, help="why; recorded in the promotion log")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.command in ("promotions", "rollback"):
        return _registry_command(args)

    from nightshift.spark import get_spark

    source = _load_source(args.source)
    _quick_local_spark()
    _start_jvm_without_notices()
    spark = get_spark("nightshift-try-source")
    try:
        try_source(spark, source, args.log_file, args.output, args.show, day=args.day)
    finally:
        spark.stop()
    return 0


def _registry_command(args) -> int:
    import getpass
    import json

    from nightshift import promotion_log, registry
    from nightshift.rollback import RollbackRefused, rollback
    from nightshift.settings import load_settings
    from nightshift.training import load_training_config

    settings = load_settings()
    model_name = load_training_config(settings.config_dir).model_name(args.source)
    if args.command == "promotions":
        view = registry.history(settings, model_name)
        if args.json:
            print("\n".join(json.dumps(e, sort_keys=True) for e in view.entries))
            for problem in view.problems:
                print(f"warning: {problem}", file=sys.stderr)
        else:
            print(promotion_log.render(view.entries, view.problems))
        return 0
    try:
        entry = rollback(settings, model_name, to_version=args.to_version, force=args.force,
                         decided_by=f"cli:{getpass.getuser()}", reason=args.reason)
    except (RollbackRefused, registry.ChampionChanged) as exc:
        print(f"rollback refused: {exc}", file=sys.stderr)
        return 2
    except registry.RegistryUnavailable as exc:
        print(f"rollback failed: {exc}", file=sys.stderr)
        return 3
    print(f"{model_name}: champion v{entry['from_version']} -> v{entry['to_version']} ({entry['reason']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
