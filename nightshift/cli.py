"""``nightshift`` command line: tools that run outside the nightly schedule.

    nightshift try-source SOURCE LOGFILE [--output lines.csv] [--show 20] [--engine auto|python|spark]
    nightshift promotions --source hdfs [--json]
    nightshift rollback --source hdfs [--to-version N] [--force] --reason "..."

``try-source`` parses one log file with a source definition (a name from ``sources/`` or a path to
a YAML file you are writing), with a fresh template store (the lake is not touched), and reports
each line's number with its template id (or its quarantine reason). Small files are parsed in this
process by the ingest's rules written in Python (seconds); ``--engine spark`` runs the Spark ingest
itself on a local session (what large files and unusual timestamp patterns get by default).
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
    """Parse ``log_file`` with ``source`` on Spark (the ingest's own path) as the lines of ``day``
    (default: today, UTC; it dates year-less and date-less timestamps); write per-line results to
    ``output`` (CSV) if given.

    Prints the counts, the quarantine rate next to the source's bound, the quarantine reasons with
    their detail (where lines stopped matching the format), most frequent first, and the first
    ``show`` lines. Returns counts: ``lines``, ``parsed``, ``quarantined``, ``reasons`` (by reason),
    ``details`` (by ``reason: detail``), ``templates``.
    """
    from pyspark.sql import functions as F

    from nightshift.ingest import drain_params, ingest_lines, literal_lookup, read_parsed_lines, read_raw_lines
    from nightshift.templates import TemplateStore

    day = _check_input(log_file, day)
    with tempfile.TemporaryDirectory(prefix="nightshift-try-") as tmp:
        store = TemplateStore.load(Path(tmp) / "store.json", **drain_params(source))
        lines = read_raw_lines(spark, [str(log_file.resolve())])
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
        shown = [row.asDict() for row in result.limit(show).collect()]
    return _report(source, log_file, input_lines, reasons, details, templates, shown, output, out)


def try_source_in_process(source, log_file: Path, output: Path | None, show: int, out=sys.stdout,
                          day: str | None = None) -> dict:
    """:func:`try_source` without Spark: the ingest's per-line rules in this process
    (:mod:`nightshift.python_ingest`), for files small enough to iterate on in seconds. Same
    output and result (``tests/test_python_ingest.py`` compares the two on the Loghub samples);
    the CSV is written by Python's ``csv`` module."""
    import csv

    from nightshift.ingest import drain_params
    from nightshift.python_ingest import ingest_file
    from nightshift.templates import TemplateStore

    day = _check_input(log_file, day)
    with tempfile.TemporaryDirectory(prefix="nightshift-try-") as tmp:
        store = TemplateStore.load(Path(tmp) / "store.json", **drain_params(source))
        rows = ingest_file(source, log_file, store, day)
    templates = store.templates()
    reasons, details = {}, {}
    result = []
    for row in rows:
        parsed = row["reason"] is None
        if not parsed:
            reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
            text = _reason_text(row["reason"], row["detail"])
            details[text] = details.get(text, 0) + 1
        result.append({"line_number": row["line_number"], "status": "parsed" if parsed else "quarantined",
                       "reason": row["reason"], "detail": row["detail"], "template_id": row["template_id"],
                       "template": templates[row["template_id"]] if parsed else None, "session_id": row["session_id"]})
    if output:
        with open(output, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(result[0]) if result else ["line_number"])
            writer.writeheader()
            writer.writerows(result)
    return _report(source, log_file, len(rows), reasons, details, templates, result[:show], output, out)


def _check_input(log_file: Path, day: str | None) -> str:
    import datetime as dt

    from nightshift.lake import check_day

    if not log_file.is_file():
        raise FileNotFoundError(f"log file {log_file} does not exist")
    return check_day(day) if day else dt.datetime.now(dt.timezone.utc).date().isoformat()


def _report(source, log_file: Path, lines: int, reasons: dict, details: dict, templates: dict, shown: list[dict],
            output: Path | None, out) -> dict:
    """Print what try-source found (see :func:`try_source`) and return its counts."""
    quarantined = sum(reasons.values())
    reasons = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))        # most frequent first
    print(f"{log_file}: {lines} lines, {lines - quarantined} parsed, {quarantined} quarantined {reasons or ''}; "
          f"{len(templates)} templates", file=out)
    print(quarantine_verdict(source, lines, quarantined), file=out)
    ranked = sorted(details.items(), key=lambda kv: (-kv[1], kv[0]))
    for text, n in ranked[:DETAILS_SHOWN]:
        print(f"{n:>8}  quarantined: {text}", file=out)
    if len(ranked) > DETAILS_SHOWN:
        print(f"{'':>8}  ... {len(ranked) - DETAILS_SHOWN} more (see --output)", file=out)
    for row in shown:
        what = (f"T{row['template_id']:<5} {row['template']}" if row["status"] == "parsed"
                else f"QUARANTINED ({_reason_text(row['reason'], row['detail'])})")
        print(f"{row['line_number']:>8}  {what}", file=out)
    if output:
        print(f"all lines: {output}", file=out)
    return {"lines": lines, "parsed": lines - quarantined, "quarantined": quarantined, "reasons": reasons,
            "details": details, "templates": templates}


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
    p_try.add_argument("--engine", choices=("auto", "python", "spark"), default="auto",
                       help="python: in this process, in seconds (the Spark ingest's rules, for files up to "
                            f"{IN_PROCESS_MAX_BYTES >> 20} MiB); spark: the Spark ingest itself; auto (default): "
                            "python when the file is small enough and its timestamp format is implemented there")
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

    source = _load_source(args.source)
    engine = _engine(args.engine, source, args.log_file, args.day)
    if engine == "python":
        try_source_in_process(source, args.log_file, args.output, args.show, day=args.day)
        print("(parsed in this process by the ingest's rules; --engine spark runs the Spark ingest itself)")
        return 0

    from nightshift.spark import get_spark

    _quick_local_spark()
    _start_jvm_without_notices()
    spark = get_spark("nightshift-try-source")
    try:
        try_source(spark, source, args.log_file, args.output, args.show, day=args.day)
    finally:
        spark.stop()
    return 0


# try-source runs in process up to this file size (Python classifies ~20k lines/s here; Spark,
# once started, is faster on large files and runs what the nightly ingest runs)
IN_PROCESS_MAX_BYTES = 64 << 20


def _engine(requested: str, source, log_file: Path, day: str | None) -> str:
    """``python`` or ``spark`` for ``--engine`` (see its help); SystemExit when python is asked
    for and cannot be used."""
    from nightshift.python_ingest import supports

    if requested == "spark":
        return "spark"
    why_not = None
    if not supports(source, day):
        why_not = (f"its timestamp format {source.timestamp_format!r} uses a pattern feature only Spark "
                   "implements (eras, day of year, 12-hour clocks, zones in the text, optional sections)")
    elif log_file.is_file() and log_file.stat().st_size > IN_PROCESS_MAX_BYTES:
        why_not = f"the file is larger than {IN_PROCESS_MAX_BYTES >> 20} MiB"
    if why_not and requested == "python":
        raise SystemExit(f"nightshift try-source: --engine python cannot parse {log_file} with {source.name}: {why_not}")
    return "spark" if why_not else "python"


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
