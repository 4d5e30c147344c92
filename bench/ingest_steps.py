"""Where the ingest time goes: each per-line step timed alone, on a bench lake's raw day.

    .venv/bin/python bench/ingest_steps.py [--lake bench/out/lake-4m] [--day 2026-11-01]

Run ``make bench`` (or ``bench/ingest_bench.py --sizes 4m``) first: it generates the lake. Every
figure is one Spark action writing to the ``noop`` sink in one warm local[2] session (1g driver),
so it includes the text scan and no Parquet write; each is printed as wall time and as the CPU
seconds the JVM used (less sensitive than wall time to other work on the machine). The "+" steps
add the per-line stages of ``classify_lines`` one at a time (UTF-8 repair, format regex, split,
timestamp, masks, session id), so their differences say what each costs. Steps marked "before" rebuild, for comparison,
the form an expression had before it was made cheaper (lazy fields, an unguarded mask, a string
in an aggregation buffer). The session-features steps read the parsed partition that the last
bench run left in the lake.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))


def _features_before(parsed):
    """session_features as it was before this round (commit 7a62bbf): a string (the component) and
    a list of structs in the aggregation buffers, which makes Spark sort instead of hash."""
    from pyspark.sql import functions as F

    from nightshift.features import ERROR_LEVELS, WARN_LEVELS

    per_template = (
        parsed.filter(F.col("session_id").isNotNull())
        .groupBy("session_id", "template_id")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.min("ts").alias("first_ts"),
            F.max("ts").alias("last_ts"),
            F.sum(F.col("level").isin(*WARN_LEVELS).cast("long")).alias("warn"),
            F.sum(F.col("level").isin(*ERROR_LEVELS).cast("long")).alias("error"),
            F.max("line_label").alias("line_label"),
            F.min_by("component", "ts").alias("first_component"),
        )
    )
    return per_template.groupBy("session_id").agg(
        F.min("first_ts"), F.max("last_ts"), F.sum("n"), F.sum("warn"), F.sum("error"),
        F.map_from_entries(F.array_sort(F.collect_list(
            F.struct(F.col("template_id").cast("string").alias("k"), F.col("n").alias("v"))))),
        F.max("line_label"), F.min_by("first_component", "first_ts"),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lake", type=Path, default=PROJECT_ROOT / "bench" / "out" / "lake-4m")
    p.add_argument("--day", default="2026-11-01")
    args = p.parse_args(argv)

    import psutil
    from pyspark.sql import functions as F

    from nightshift.features import session_features
    from nightshift.ingest import (
        FIELD_SEPARATOR, classify_lines, line_parts, mask_expression, read_parsed_lines, read_raw_lines, raw_files,
        timestamp_expression,
    )
    from nightshift.lake import Lake
    from nightshift.sources import load_source
    from nightshift.spark import get_spark

    lake = Lake(args.lake)
    files = raw_files(lake.raw_dir("hdfs", args.day))
    if not files:
        print(f"no raw files in {lake.raw_dir('hdfs', args.day)}: run make bench first", file=sys.stderr)
        return 1
    source = load_source("hdfs", PROJECT_ROOT / "sources")
    spark = get_spark("nightshift-ingest-steps", master="local[2]", conf={"spark.driver.memory": "1g"})
    text = spark.read.text(files)
    lines = read_raw_lines(spark, files)
    message = F.substring_index("value", ": ", -1)
    fmt = source.log_format.regex
    replacement = "".join(FIELD_SEPARATOR + "${%s}" % f for f in line_parts(source)[1:])
    (mask, _), = source.mask_passes()
    unguarded = "|".join(f"(?:{m.regex})" for m in source.masks)

    jvm = next(p for p in psutil.Process().children(recursive=True) if p.name() == "java")

    def jvm_cpu() -> float:
        times = jvm.cpu_times()
        return times.user + times.system

    def step(name: str, frame) -> None:
        started, cpu = time.monotonic(), jvm_cpu()
        frame.write.format("noop").mode("overwrite").save()
        print(f"{name:66s} {time.monotonic() - started:6.2f} s  JVM CPU {jvm_cpu() - cpu:6.2f} s", flush=True)

    print(f"{sum(Path(f).stat().st_size for f in files) / 2**20:,.0f} MiB in {len(files)} file(s); local[2]")
    step("warm-up (scan)", text)
    step("spark.read.text scan", text)
    step("format regex, before: lazy \\S*? fields", text.select(F.regexp_replace("value", fmt.replace(r"\S*+", r"\S*?"), replacement)))
    step("format regex, possessive \\S*+ fields", text.select(F.regexp_replace("value", fmt, replacement)))
    step("HDFS masks, before: unguarded alternation", text.select(F.regexp_replace(message, unguarded, "<*>")))
    step("HDFS masks, first-character guard", text.select(F.regexp_replace(message, mask, "<*>")))
    step("session id regexp_extract", text.select(F.regexp_extract(message, source.session_id_regex, 0)))
    # classify_lines' per-line stages added one at a time
    ts_text = " ".join("${%s}" % name for name in source.timestamp_fields)
    full = "".join(FIELD_SEPARATOR + (ts_text if p == "<timestamp>" else "${%s}" % p) for p in line_parts(source))
    n_parts = len(line_parts(source))
    repaired = text.select(F.make_valid_utf8("value").alias("_line"), (~F.is_valid_utf8("value")).alias("_r"))
    step("+ UTF-8 repair (make_valid_utf8, is_valid_utf8)", repaired)
    joined = repaired.select(F.regexp_replace("_line", "(?s)" + fmt, full).alias("_joined"))
    step("+ format regex (replacement)", joined)
    split = joined.select(F.split("_joined", FIELD_SEPARATOR, -1).alias("_parts"))
    step("+ split into fields", split)
    stamped = split.select(timestamp_expression(F.get("_parts", 1), source, args.day).alias("_ts"),
                           F.get("_parts", n_parts).alias("_message"))
    step("+ timestamp (try_to_timestamp)", stamped)
    masked = stamped.select("_ts", "_message", mask_expression(F.col("_message"), source).alias("_masked"))
    step("+ masks", masked)
    step("+ session id", masked.select("_ts", "_masked", F.regexp_extract("_message", source.session_id_regex, 0)))
    step("whole classification (classify_lines, all columns)", classify_lines(lines, source))

    parsed_dir = lake.parsed_dir("hdfs", args.day)
    if parsed_dir.exists():
        parsed = read_parsed_lines(spark, parsed_dir)
        step("session features, before: string and struct-list aggregation buffers", _features_before(parsed))
        step("session features (session_features)", session_features(parsed))
    else:
        print(f"(no parsed partition in {parsed_dir}: session-feature steps skipped)")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
