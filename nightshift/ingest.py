"""Ingest: split raw log lines into fields, mask variables, assign template ids.

Everything per line runs as Spark SQL expressions in the JVM; only the distinct masked messages
(far fewer than lines) reach Python, where the template store assigns them stable ids.
Every input line ends up either parsed or quarantined with a reason, never dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nightshift.sources import SourceConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FIELD_SEPARATOR = "\u0001"

# Quarantine reasons, in the order they are checked.
REASON_EMPTY = "empty_line"
REASON_TOO_LONG = "line_too_long"
REASON_CONTROL = "control_character"
REASON_FORMAT = "format_mismatch"
REASON_TIMESTAMP = "bad_timestamp"

PARSED_COLUMNS = [
    "source_file", "line_number", "ts", "level", "component", "message", "masked", "session_id", "line_label", "template_id",
    "encoding_repaired",
]
QUARANTINE_COLUMNS = ["source_file", "line_number", "raw_line", "reason"]


def read_raw_lines(spark: "SparkSession", paths: list[str]) -> "DataFrame":
    """Read raw text files (``.gz`` is decompressed) as one row per line.

    Columns: ``value``, ``source_file``, and the line's position for :func:`attach_line_numbers`
    (``_block_start``: the byte offset of the file split it came from; ``_row_id``: an id that
    increases along the split).
    """
    from pyspark.sql import functions as F

    return spark.read.text(paths).select(
        "value",
        F.col("_metadata.file_name").alias("source_file"),
        F.col("_metadata.file_block_start").alias("_block_start"),
        F.monotonically_increasing_id().alias("_row_id"),
    )


def attach_line_numbers(staged: "DataFrame") -> "DataFrame":
    """Replace ``_block_start``/``_row_id`` by ``line_number`` (1-based, within its file).

    Works on a materialised frame (the ids must not change between the two reads): it counts the
    lines of each file split (a handful of rows reach the driver), turns them into per-split
    offsets, and adds each line's position inside its split; all per-line work stays in the JVM.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    splits = sorted(
        (r["source_file"], r["_block_start"], r["n"], r["first_row"])
        for r in staged.groupBy("source_file", "_block_start")
        .agg(F.count(F.lit(1)).alias("n"), F.min("_row_id").alias("first_row"))
        .collect()
    )
    offsets, seen = [], {}
    for file, block_start, n, first_row in splits:
        offsets.append((file, block_start, first_row, seen.get(file, 0)))
        seen[file] = seen.get(file, 0) + n
    schema = StructType([StructField("source_file", StringType()), StructField("_block_start", LongType()),
                         StructField("_first_row", LongType()), StructField("_offset", LongType())])
    mapping = staged.sparkSession.createDataFrame(offsets, schema)
    return (
        staged.join(F.broadcast(mapping), ["source_file", "_block_start"], "left")
        .withColumn("line_number", F.col("_offset") + F.col("_row_id") - F.col("_first_row") + 1)
        .drop("_block_start", "_row_id", "_first_row", "_offset")
    )


def classify_lines(lines: "DataFrame", source: SourceConfig) -> "DataFrame":
    """Split each line by the source's format and decide parsed vs quarantined.

    Takes ``value`` (raw line) and ``source_file``; returns one row per input line with
    ``raw_line``, ``reason`` (null when parsed) and the parsed columns (null when quarantined).
    The format regex runs once per line: a matching line is rewritten into its fields joined by
    a control character, which is then split.
    """
    from pyspark.sql import functions as F

    fmt = source.log_format
    line = F.make_valid_utf8(F.col("value"))
    used = source.used_fields()
    replacement = FIELD_SEPARATOR + FIELD_SEPARATOR.join("${%s}" % name for name in used)
    too_long = F.length(line) > source.max_line_length
    # CASE WHEN is evaluated lazily: over-long lines never reach the regex engine
    joined = F.when(~too_long, F.regexp_replace(line, "(?s)" + fmt.regex, replacement))
    has_control = F.instr(line, FIELD_SEPARATOR) > 0
    matched = F.coalesce(joined.startswith(FIELD_SEPARATOR), F.lit(False)) & ~has_control
    parts = F.split(F.substring(joined, 2, 1 << 30), FIELD_SEPARATOR, len(used))

    def field(name: str):
        # get() is null past the end (unmatched lines have one part); getItem would throw in ANSI mode
        return F.get(parts, used.index(name))

    ts_text = F.concat_ws(" ", *[field(name) for name in source.timestamp_fields])
    ts = F.try_to_timestamp(ts_text, F.lit(source.timestamp_format))
    reason = (
        F.when(F.trim(line) == "", F.lit(REASON_EMPTY))
        .when(too_long, F.lit(REASON_TOO_LONG))
        .when(has_control, F.lit(REASON_CONTROL))
        .when(~matched, F.lit(REASON_FORMAT))
        .when(ts.isNull(), F.lit(REASON_TIMESTAMP))
    )
    message = field(source.message_field)
    masked = mask_expression(message, source)
    session_id = session_id_expression(message, ts, field, source)
    line_label = (
        F.when(F.trim(field(source.label_field)).isin(*source.label_normal_values), F.lit(0)).otherwise(F.lit(1))
        if source.label_field
        else F.lit(None).cast("int")
    )

    def when_parsed(col):
        return F.when(F.col("reason").isNull(), col)

    return (
        lines.select(
            "source_file",
            "_block_start",
            "_row_id",
            line.alias("_line"),
            (~F.is_valid_utf8(F.col("value"))).alias("encoding_repaired"),
            joined.alias("_joined"),
            matched.alias("_matched"),
            parts.alias("_parts"),
            ts.alias("_ts"),
            reason.alias("reason"),
            message.alias("_message"),
            masked.alias("_masked"),
            session_id.alias("_session_id"),
            line_label.alias("_line_label"),
        )
        .select(
            "source_file",
            "_block_start",
            "_row_id",
            # the raw line is kept for quarantined lines only (parsed lines point back by file + line number)
            F.when(F.col("reason").isNotNull(), F.col("_line")).alias("raw_line"),
            "reason",
            "encoding_repaired",
            when_parsed(F.col("_ts")).alias("ts"),
            when_parsed(_optional_field(used, "_parts", source.level_field, upper=True)).alias("level"),
            when_parsed(_optional_field(used, "_parts", source.component_field)).alias("component"),
            when_parsed(F.col("_message")).alias("message"),
            when_parsed(F.col("_masked")).alias("masked"),
            when_parsed(F.nullif(F.col("_session_id"), F.lit(""))).alias("session_id"),
            when_parsed(F.col("_line_label")).alias("line_label"),
        )
    )


def mask_expression(message, source: SourceConfig):
    """Mask the source's variables in ``message`` (see :meth:`SourceConfig.mask_passes`)."""
    from pyspark.sql import functions as F

    masked = message
    for pattern, replacement in source.mask_passes():
        masked = F.regexp_replace(masked, pattern, replacement.replace("\\", "\\\\").replace("$", "\\$"))
    return masked


def session_id_expression(message, ts, field, source: SourceConfig):
    """The session a line belongs to: the first match of ``id_regex`` in the message, or
    ``<key field>@<window start>`` for sources sessioned by a key and a time window."""
    from pyspark.sql import functions as F

    if source.session_id_regex:
        return F.regexp_extract(message, source.session_id_regex, 0)
    seconds = source.session_window_minutes * 60
    window_start = F.timestamp_seconds(F.floor(F.unix_seconds(ts) / seconds) * seconds)
    key = F.trim(field(source.session_key_field))
    return F.when(key != "", F.concat(key, F.lit("@"), F.date_format(window_start, "yyyy-MM-dd'T'HH:mm")))


def _optional_field(used: list[str], parts_col: str, name: str | None, upper: bool = False):
    from pyspark.sql import functions as F

    if name is None:
        return F.lit(None).cast("string")
    col = F.trim(F.get(F.col(parts_col), used.index(name)))
    return F.upper(col) if upper else col


def attach_template_ids(parsed: "DataFrame", assignments: dict[str, int]) -> "DataFrame":
    """Join each parsed line to the template id of its masked message (a broadcast join)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType, StringType, StructField, StructType

    schema = StructType([StructField("masked", StringType(), False), StructField("template_id", IntegerType(), False)])
    mapping = parsed.sparkSession.createDataFrame(sorted(assignments.items()), schema)
    return parsed.join(F.broadcast(mapping), on="masked", how="left").select(*PARSED_COLUMNS)


class IngestError(RuntimeError):
    """Ingest cannot run for this day (no input, or the line accounting does not balance)."""


def raw_files(raw_dir) -> list[str]:
    """The day's raw files (hidden files and ``_``-prefixed markers skipped), sorted."""
    from pathlib import Path

    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise IngestError(f"no raw data: {raw_dir} does not exist")
    files = sorted(str(p) for p in raw_dir.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    return files


def run_ingest(spark: "SparkSession", lake, source: SourceConfig, day: str) -> dict:
    """Ingest one day of one source: write parsed and quarantine partitions, update the template
    store, and return (and write) the ingest report. Re-running replaces only this day's output."""
    import logging
    import shutil

    from pyspark.sql import functions as F

    from nightshift.templates import TemplateStore

    log = logging.getLogger("nightshift.ingest")
    files = raw_files(lake.raw_dir(source.name, day))
    parsed_dir, quarantine_dir = lake.parsed_dir(source.name, day), lake.quarantine_dir(source.name, day)
    if files:
        lines = read_raw_lines(spark, files)
    else:
        log.warning("no raw files for %s %s: writing an empty day", source.name, day)
        lines = spark.createDataFrame([], "value string, source_file string, _block_start long, _row_id long")
    input_lines = _count_lines(lines)

    staging_dir = lake.staging_dir("ingest", source.name, day)
    store_path = lake.template_store_file(source.name)
    store = TemplateStore.load(store_path, **drain_params(source))
    parsed, quarantine, assignments = parse_lines(lines, source, store, day, staging_dir)
    parsed.write.mode("overwrite").parquet(str(parsed_dir))
    quarantine.write.mode("overwrite").parquet(str(quarantine_dir))
    store.save(store_path)
    shutil.rmtree(staging_dir, ignore_errors=True)

    written_parsed = spark.read.parquet(str(parsed_dir))
    parsed_lines = written_parsed.count()
    quarantined = spark.read.parquet(str(quarantine_dir))
    quarantined_lines = quarantined.count()
    reasons = {r["reason"]: r["count"] for r in quarantined.groupBy("reason").count().collect()}
    stats = written_parsed.agg(
        F.count("template_id").alias("with_template"),
        F.count("session_id").alias("with_session"),
        F.sum(F.col("encoding_repaired").cast("long")).alias("encoding_repaired"),
    ).first()
    report = {
        "source": source.name,
        "source_version": source.version,
        "day": day,
        "files": [f.rsplit("/", 1)[-1] for f in files],
        "input_lines": input_lines,
        "parsed_lines": parsed_lines,
        "quarantined_lines": quarantined_lines,
        "quarantine_rate": (quarantined_lines / input_lines) if input_lines else 0.0,
        "quarantine_reasons": reasons,
        "lines_with_template": stats["with_template"],
        "lines_with_session": stats["with_session"],
        "encoding_repaired_lines": stats["encoding_repaired"] or 0,
        "distinct_messages": len(assignments),
        "templates_used": len(set(assignments.values())),
        "new_templates": store.new_template_ids(day),
        "template_store_version": store.version,
    }
    lake.write_report(source.name, day, "ingest", report)
    log.info(
        "ingest %s %s: %d input lines = %d parsed + %d quarantined %s",
        source.name, day, input_lines, parsed_lines, quarantined_lines, reasons,
    )
    if parsed_lines + quarantined_lines != input_lines:
        raise IngestError(
            f"line accounting failed for {source.name} {day}: {input_lines} input != "
            f"{parsed_lines} parsed + {quarantined_lines} quarantined"
        )
    return report


def _count_lines(lines: "DataFrame") -> int:
    """Count the raw lines; a file Spark cannot read (e.g. a truncated .gz) is a clear error,
    never a silently half-read day (``spark.sql.files.ignoreCorruptFiles`` stays false)."""
    import re

    try:
        return lines.count()
    except Exception as exc:  # py4j/Spark wrap the reader's error; keep its first line
        text = str(exc)
        if "FAILED_READ_FILE" not in text:
            raise
        match = re.search(r"reading file (\S+?)\.? ", text)
        cause = re.search(r"(java\.io\.\w+Exception: [^\n]*)", text)
        raise IngestError(
            f"cannot read raw file {match.group(1) if match else '(unknown)'}: "
            f"{cause.group(1) if cause else 'unreadable or corrupt file'}; nothing was written for this day"
        ) from None


def parse_lines(lines: "DataFrame", source: SourceConfig, store, day: str, staging_dir) -> tuple:
    """Classify raw lines, number them, and give every parsed line a template id from ``store``.

    The per-line regex work runs once and is written to ``staging_dir``; everything after it
    (distinct messages, the template join, the two outputs) reads columnar Parquet. Returns
    ``(parsed, quarantine, assignments)`` (assignments: distinct masked message -> template id);
    the frames read the staging files, so write them before deleting ``staging_dir``.
    """
    from pyspark.sql import functions as F

    spark = lines.sparkSession
    classify_lines(lines, source).write.mode("overwrite").parquet(str(staging_dir))
    staged = attach_line_numbers(spark.read.parquet(str(staging_dir)))
    parsed = staged.filter(F.col("reason").isNull())
    distinct_masked = [row.masked for row in parsed.select("masked").distinct().collect()]
    assignments = store.assign(distinct_masked, day)
    quarantine = staged.filter(F.col("reason").isNotNull()).select(*QUARANTINE_COLUMNS)
    return attach_template_ids(parsed, assignments), quarantine, assignments


def drain_params(source: SourceConfig) -> dict:
    return {
        "depth": int(source.drain.get("depth", 4)),
        "similarity_threshold": float(source.drain.get("similarity_threshold", 0.5)),
        "max_children": int(source.drain.get("max_children", 100)),
    }
