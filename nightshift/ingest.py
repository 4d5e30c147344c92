"""Ingest: split raw log lines into fields, mask variables, assign template ids.

Everything per line runs as Spark SQL expressions in the JVM; only the distinct masked messages
(far fewer than lines) reach Python, where the template store assigns them stable ids.
Every input line ends up either parsed or quarantined with a reason, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nightshift.sources import SourceConfig

if TYPE_CHECKING:
    from pathlib import Path

    from pyspark.sql import DataFrame, SparkSession

FIELD_SEPARATOR = "\u0001"

# Quarantine reasons, in the order they are checked.
REASON_EMPTY = "empty_line"
REASON_TOO_LONG = "line_too_long"
REASON_CONTROL = "control_character"
REASON_FORMAT = "format_mismatch"
REASON_TIMESTAMP = "bad_timestamp"
# Blanks stripped from both ends of a line before the format is matched, as Loghub's parsers do
# (``line.strip()``); these are the characters Java's ``\s`` matches
LINE_BLANKS = " \t\n\r\x0b\x0c"

# A line as readers see it (read_parsed_lines). Parsed and quarantine partitions share one schema
# (each line is written once, by status): in parsed lines raw_line and reason are null; in
# quarantined lines the parsed columns are null.
LINE_COLUMNS = [
    "source_file", "line_number", "ts", "level", "component", "message", "masked", "session_id", "line_label",
    "template_id", "encoding_repaired", "raw_line", "reason",
]
# What is written per line: template ids are not, they live next to the lines in the partition's
# TEMPLATE_IDS_FILE (masked message -> id; see ingest_lines for why). ``detail`` says more about a
# quarantined line's reason (for format_mismatch: where the line stopped matching, e.g.
# ``no ' - ' after <Program>``; for line_too_long: its length); null otherwise. ``reason`` stays
# one of the REASON_* categories, so counts by reason are unchanged. Readers of the quarantine
# partition see it; read_parsed_lines (LINE_COLUMNS) does not. Partitions written before it have
# no such column.
WRITTEN_COLUMNS = [c for c in LINE_COLUMNS if c != "template_id"] + ["detail"]
# Spark (and Hive-style readers) skip files starting with "_" when reading a partition directory.
TEMPLATE_IDS_FILE = "_template_ids.json"


def read_raw_lines(spark: "SparkSession", paths: list[str], link_dir=None) -> "DataFrame":
    """Read raw text files (``.gz`` is decompressed) as one row per line.

    Columns: ``value``, ``source_file`` (the real file name), and the line's position for
    :func:`number_lines` (``_block_start``: the byte offset of the file split it came from;
    ``_row_id``: an id that increases along the split).

    File names are never interpreted: Spark (Hadoop) reads a path as a glob pattern (``*``, ``?``,
    ``[...]``, ``{a,b}``) and rejects a ``:`` in a name, so a file named ``part*`` read every
    ``part...`` file again. With ``link_dir``, Spark reads symlinks made there, one per file: a
    file whose name is plainly safe (``[A-Za-z0-9][A-Za-z0-9._-]*``, the usual case) keeps its
    name; any other is linked as ``=000000.log`` ... by index (keeping a compression suffix such
    as ``.gz``; ``=`` cannot start a safe name, so the two never collide), and ``source_file`` is
    mapped back to the real base name by a literal map (one lookup per line, like the line-number
    shifts, and only when some name needed it): any character in a real name is fine. Links
    rather than escaping, because Hadoop's glob escaping does not make ``:`` acceptable. Without
    ``link_dir`` the paths are read as given and must not contain such characters (ValueError).
    """
    import re
    from pathlib import Path

    from pyspark.sql import functions as F

    real = [Path(p) for p in paths]
    if link_dir is None:
        unsafe = [str(p) for p in real if re.search(r"[*?\[\]{}\\:]", str(p))]
        if unsafe:
            raise ValueError(f"file names that Spark would read as patterns: {unsafe}; pass link_dir")
        read_paths, names = [str(p) for p in real], {p.name: p.name for p in real}
    else:
        link_dir = Path(link_dir)
        link_dir.mkdir(parents=True, exist_ok=True)
        read_paths, names = [], {}
        for i, path in enumerate(real):
            if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", path.name):
                link = link_dir / path.name
            else:
                suffix = path.suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", path.suffix) else ""
                link = link_dir / f"={i:06d}{suffix}"
            link.symlink_to(path.resolve())
            read_paths.append(str(link))
            names[link.name] = path.name
    if len(set(names.values())) != len(names):
        raise IngestError(f"two raw files share a name: {sorted(names.values())}")
    source_file = (F.col("_metadata.file_name") if all(k == v for k, v in names.items())
                   else literal_lookup(names, F.col("_metadata.file_name"), "string"))
    return spark.read.text(read_paths).select(
        "value",
        source_file.alias("source_file"),
        F.col("_metadata.file_block_start").alias("_block_start"),
        F.monotonically_increasing_id().alias("_row_id"),
    )


def split_offsets(lines: "DataFrame", expected_files=None) -> tuple[int, list[tuple]]:
    """Count the raw lines per file split: ``(total lines, [(file, block_start, first_row, offset)])``.

    A cheap scan (no parsing). ``offset`` is the number of lines of the same file in earlier
    splits, so a line's number is ``offset + _row_id - first_row + 1`` (see :func:`number_lines`);
    this relies on the two scans of the same files producing the same row ids, which holds
    because they read the same files with the same partitioning. A file Spark cannot read (e.g. a
    truncated .gz) is a clear :class:`IngestError`, never a silently half-read day.

    (file, line number) is checked to be unique from the same aggregation (no extra pass): every
    split's row ids are contiguous (max - min + 1 = its line count), so the file's line numbers
    are exactly 1..n, and every file is one of ``expected_files`` (real names) when given. A file
    read twice or under an unknown name is an :class:`IngestError`.
    """
    import os
    import re
    from pathlib import Path

    from pyspark.sql import functions as F

    try:
        splits = sorted(
            (r["source_file"], r["_block_start"], r["n"], r["first_row"], r["last_row"])
            for r in lines.groupBy("source_file", "_block_start")
            .agg(F.count(F.lit(1)).alias("n"), F.min("_row_id").alias("first_row"), F.max("_row_id").alias("last_row"))
            .collect()
        )
    except Exception as exc:  # py4j/Spark wrap the reader's error; keep its first line
        text = str(exc)
        if "FAILED_READ_FILE" not in text:
            raise
        match = re.search(r"reading file (\S+?)\.? ", text)
        cause = re.search(r"(java\.io\.\w+Exception: [^\n]*)", text)
        name = match.group(1) if match else "(unknown)"
        local = Path(re.sub(r"^file:(//)?", "", name))
        if local.is_symlink():      # a safe-name link made by read_raw_lines: name the real file
            name = os.readlink(local)
        raise IngestError(
            f"cannot read raw file {name}: "
            f"{cause.group(1) if cause else 'unreadable or corrupt file'}; nothing was written for this day"
        ) from None
    offsets, seen = [], {}
    expected = None if expected_files is None else set(expected_files)
    for file, block_start, n, first_row, last_row in splits:
        if file is None or (expected is not None and file not in expected):
            raise IngestError(f"read lines from an unexpected file {file!r} (expected {sorted(expected or ())})")
        if last_row - first_row + 1 != n:
            raise IngestError(
                f"raw file {file!r} (split at byte {block_start}) was read more than once or out of order: "
                f"{n} lines over row ids {first_row}..{last_row}; (file, line number) would not be unique"
            )
        offsets.append((file, block_start, first_row, seen.get(file, 0)))
        seen[file] = seen.get(file, 0) + n
    return sum(seen.values()), offsets


def number_lines(frame: "DataFrame", offsets: list[tuple]) -> "DataFrame":
    """Replace ``_block_start``/``_row_id`` by ``line_number`` (1-based, within its file).

    The per-split shifts (one per file split: a handful) are a literal map in the expression,
    file name -> (split start -> shift), so numbering needs no join and builds no string per line.
    """
    from pyspark.sql import functions as F

    per_file: dict[str, dict[int, int]] = {}
    for file, block_start, first_row, offset in offsets:
        per_file.setdefault(file, {})[block_start] = offset - first_row + 1
    if not per_file:
        shift = F.lit(None).cast("long")
    else:
        files = F.create_map(*[
            x for file, shifts in sorted(per_file.items())
            for x in (F.lit(file), F.create_map(*[F.lit(v).cast("long") for item in sorted(shifts.items()) for v in item]))
        ])
        shift = F.try_element_at(F.try_element_at(files, F.col("source_file")), F.col("_block_start")).cast("long")
    return frame.withColumn("line_number", F.col("_row_id") + shift).drop("_block_start", "_row_id")


# Up to this many entries a lookup is a literal map inside the expression; beyond, a broadcast join.
_LITERAL_MAP_LIMIT = 5000


def literal_lookup(mapping: dict, key, value_type: str):
    """``mapping[key]`` as a Column (null when absent), for a small Python dict."""
    from pyspark.sql import functions as F

    if not mapping:
        return F.lit(None).cast(value_type)
    # One SQL expression, parsed by the JVM in one call: building the map from F.lit() Columns
    # cost two py4j round trips per entry (3.5 s for 1,300 templates on a loaded machine).
    # Strings travel hex-encoded, so no message can break out of its literal.
    items = sorted(mapping.items())
    keys = ", ".join(_sql_literal(k) for k, _ in items)
    values = ", ".join(_sql_literal(v) for _, v in items)
    literal = F.expr(f"map_from_arrays(array({keys}), array({values}))")
    return F.try_element_at(literal, key).cast(value_type)


def _sql_literal(value) -> str:
    """A Spark SQL literal for a str or int, safe for any content."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"literal_lookup takes str or int keys and values, got {type(value).__name__}")
    if isinstance(value, int):
        return str(value)
    return f"decode(unhex('{value.encode('utf-8').hex()}'), 'UTF-8')"


def line_parts(source: SourceConfig) -> list[str]:
    """What the format regex's replacement writes for a matching line, in order: the timestamp text
    (its fields joined by one space, ready to parse), then the other fields the pipeline reads,
    message last."""
    return ["<timestamp>", *[f for f in source.used_fields() if f not in source.timestamp_fields
                             or f in (source.level_field, source.component_field, *source.session_key_fields,
                                      source.label_field, source.message_field)]]


def classify_lines(lines: "DataFrame", source: SourceConfig, day: str | None = None) -> "DataFrame":
    """Split each line by the source's format and decide parsed vs quarantined.

    Takes ``value`` (raw line) and ``source_file``; returns one row per input line with
    ``raw_line``, ``reason`` (null when parsed) and the parsed columns (null when quarantined).

    Per-line cost is what bounds ingest throughput, so the plan is:

    * the format regex runs once per line, as a replacement that rewrites a matching line into
      ``SEP ts-text SEP field ... SEP message`` (``SEP`` a control character), which one split
      turns into the fields. A line matched when the result starts with ``SEP`` (and the raw line
      did not), and has exactly one part per field: a field containing ``SEP`` itself makes more
      parts, so such lines are quarantined (``control_character``), never mis-split;
    * the work is staged in successive projections, each expensive value (the regex, the split,
      the mask) computed once and referenced by name afterwards. Composing the Column expressions
      directly would inline the format regex into every field that uses it (Spark does not
      deduplicate expressions inside CASE branches): that ran the regex ~10 times per line;
    * the quarantine reason is worked out only for lines that did not parse, and its ``detail``
      (where a line stopped matching the format: :func:`mismatch_detail_expression`) only for
      lines quarantined for it.

    ``day`` (``YYYY-MM-DD``, the partition's day) dates lines whose timestamp format has no year
    or no date (:func:`timestamp_expression`); without it, today's date (UTC) is used.
    """
    from pyspark.sql import functions as F

    fmt = source.log_format
    parts = line_parts(source)
    timestamp_text = " ".join("${%s}" % name for name in source.timestamp_fields)
    replacement = "".join(FIELD_SEPARATOR + (timestamp_text if p == "<timestamp>" else "${%s}" % p) for p in parts)
    keep = ["source_file", "_block_start", "_row_id"]

    def part(name: str | None):
        # part 0 is the empty text before the leading separator; get() is null past the end
        return F.get(F.col("_parts"), parts.index(name) + 1) if name else F.lit(None).cast("string")

    # 1. the line as valid UTF-8 (invalid bytes replaced), remembering whether it was repaired
    stage = lines.select(
        *keep,
        F.make_valid_utf8(F.col("value")).alias("_line"),
        (~F.is_valid_utf8(F.col("value"))).alias("encoding_repaired"),
    )
    # 2. the format regex, once; over-long lines never reach the regex engine (CASE is lazy, and
    #    the character count is only taken when the byte count, known without a scan, is over)
    too_long = (F.octet_length(F.col("_line")) > source.max_line_length) & (
        F.length(F.col("_line")) > source.max_line_length
    )
    #    The format is matched against the line stripped of blanks at both ends (strip_blanks), as
    #    Loghub does: the message ends at the line's last non-blank character. The raw line is kept.
    stage = stage.select(
        *keep, "_line", "encoding_repaired",
        F.when(~too_long, F.regexp_replace(strip_blanks(F.col("_line")), "(?s)" + fmt.regex, replacement)).alias("_joined"),
    )
    # 3. the fields
    stage = stage.select(
        *keep, "_line", "encoding_repaired", "_joined",
        F.split(F.col("_joined"), FIELD_SEPARATOR, -1).alias("_parts"),
    )
    matched = (
        F.coalesce(F.col("_joined").startswith(FIELD_SEPARATOR), F.lit(False))
        & ~F.col("_line").startswith(FIELD_SEPARATOR)
        & (F.size(F.col("_parts")) == len(parts) + 1)
    )
    line_label = (
        F.when(F.trim(part(source.label_field)).isin(*source.label_normal_values), F.lit(0)).otherwise(F.lit(1))
        if source.label_field
        else F.lit(None).cast("int")
    )
    stage = stage.select(
        *keep, "_line", "encoding_repaired",
        matched.alias("_matched"),
        timestamp_expression(part("<timestamp>"), source, day).alias("_ts"),
        F.upper(F.trim(part(source.level_field))).alias("_level"),
        F.trim(part(source.component_field)).alias("_component"),
        part(source.message_field).alias("_message"),
        session_key_expression([F.trim(part(k)) for k in source.session_key_fields]).alias("_key"),
        line_label.alias("_line_label"),
    )
    # 4. the verdict, the mask and the session (each from the named fields above). A line that
    #    matched the format and has a timestamp is parsed (it cannot be empty, over-long or hold a
    #    separator); only the others are given a reason, in this order.
    reason = F.when(F.col("_matched") & F.col("_ts").isNotNull(), F.lit(None).cast("string")).otherwise(
        F.when(F.trim(F.col("_line")) == "", F.lit(REASON_EMPTY))
        .when(F.length(F.col("_line")) > source.max_line_length, F.lit(REASON_TOO_LONG))
        .when(F.instr(F.col("_line"), FIELD_SEPARATOR) > 0, F.lit(REASON_CONTROL))
        .when(~F.col("_matched"), F.lit(REASON_FORMAT))
        .otherwise(F.lit(REASON_TIMESTAMP))
    )
    stage = stage.select(
        *keep, "_line", "encoding_repaired", "_ts", "_level", "_component", "_message", "_line_label",
        reason.alias("reason"),
        mask_expression(F.col("_message"), source).alias("_masked"),
        session_id_expression(F.col("_message"), F.col("_ts"), F.col("_key"), source).alias("_session_id"),
    )

    def when_parsed(col):
        return F.when(F.col("reason").isNull(), col)

    # CASE is lazy: nothing of this runs for parsed lines
    detail = (
        F.when(F.col("reason") == REASON_FORMAT, mismatch_detail_expression(strip_blanks(F.col("_line")), fmt))
        .when(F.col("reason") == REASON_TOO_LONG,
              F.format_string(f"%d characters, more than max_line_length {source.max_line_length}",
                              F.length(F.col("_line"))))
    )

    return stage.select(
        *keep,
        # the raw line is kept for quarantined lines only (parsed lines point back by file + line number)
        F.when(F.col("reason").isNotNull(), F.col("_line")).alias("raw_line"),
        "reason",
        detail.alias("detail"),
        "encoding_repaired",
        when_parsed(F.col("_ts")).alias("ts"),
        when_parsed(F.col("_level")).alias("level"),
        when_parsed(F.col("_component")).alias("component"),
        when_parsed(F.col("_message")).alias("message"),
        when_parsed(F.col("_masked")).alias("masked"),
        when_parsed(F.nullif(F.col("_session_id"), F.lit(""))).alias("session_id"),
        when_parsed(F.col("_line_label")).alias("line_label"),
    )


def strip_blanks(line):
    """``line`` without :data:`LINE_BLANKS` at either end (Python's ``line.strip()`` for those
    characters; ``btrim``, because Spark 4 warns that two-argument ``trim`` is deprecated). Trimming
    a set of characters cost ~1.5 us per trimmed line on this machine,
    more than the rest of the change; so spaces go first with the plain ``trim`` (a byte scan),
    and the set is used only for lines that still start or end with another blank (tabs, CR...):
    ~0.2 us per line on Loghub's Linux sample, where half the lines end with a space."""
    from functools import reduce

    from pyspark.sql import functions as F

    spaced = F.trim(line)
    other_blank_at_an_end = reduce(
        lambda a, b: a | b, [spaced.startswith(ch) | spaced.endswith(ch) for ch in LINE_BLANKS if ch != " "])
    return F.when(other_blank_at_an_end, F.btrim(spaced, F.lit(LINE_BLANKS))).otherwise(spaced)


def mismatch_detail_expression(line, fmt):
    """Where ``line`` stopped matching the format ``fmt`` (a :class:`LogFormat`), as
    :meth:`LogFormat.mismatch_detail` says it: the prefixes of the format regex are tried from the
    longest, and the part after the longest one that matches is named. For lines that failed the
    format only (a handful of regexes per such line)."""
    from pyspark.sql import functions as F

    *tried, (_, first) = fmt.prefixes          # the last prefix is '^': it matches every line
    detail = F.lit(first)
    for prefix, what in reversed(tried):
        detail = F.when(line.rlike("(?s)" + prefix), F.lit(what)).otherwise(detail)
    return detail


def mask_expression(message, source: SourceConfig):
    """Mask the source's variables in ``message`` (see :meth:`SourceConfig.mask_passes`)."""
    from pyspark.sql import functions as F

    masked = message
    for pattern, replacement in source.mask_passes():
        masked = F.regexp_replace(masked, pattern, replacement.replace("\\", "\\\\").replace("$", "\\$"))
    return masked


def session_key_expression(keys: list):
    """The session key from the trimmed key fields: the field itself for one key field, the fields
    joined by ``|`` for several (null when all are empty), null for window-only sessions."""
    from pyspark.sql import functions as F

    if not keys:
        return F.lit(None).cast("string")
    if len(keys) == 1:
        return keys[0]
    return F.when(F.concat(*keys) != "", F.concat_ws("|", *keys))


def session_id_expression(message, ts, key, source: SourceConfig):
    """The session a line belongs to: the first match of ``id_regex`` in the message, or
    ``<key>@<window start>`` (``key``: :func:`session_key_expression`; lines with an empty key
    belong to no session) for sources sessioned by key field(s) and a time window, or
    ``<window start>`` (``yyyy-MM-ddTHH:mm``, UTC) for sources sessioned by the time window alone."""
    from pyspark.sql import functions as F

    if source.session_id_regex:
        return F.regexp_extract(message, source.session_id_regex, 0)
    seconds = source.session_window_minutes * 60
    window_start = F.date_format(
        F.timestamp_seconds(F.floor(F.unix_seconds(ts) / seconds) * seconds), "yyyy-MM-dd'T'HH:mm")
    if not source.session_key_fields:
        return window_start
    return F.when(key != "", F.concat(key, F.lit("@"), window_start))


def timestamp_expression(text, source: SourceConfig, day: str | None = None):
    """Parse a line's timestamp text (its fields joined by one space) per the source's
    ``timestamp:`` spec (:class:`nightshift.logformat.TimestampFormat`); null when it does not
    parse. One ``try_to_timestamp`` per line; the rewrites a spec needs (weekday removal, unpadded
    milliseconds, the year or date from ``day``, the zone) are added only for sources that need them.

    Year-less formats take the year of ``day``; a line dated December in a January partition
    belongs to the previous year, a line dated January in a December partition to the next.
    Session time zone is UTC (``nightshift.spark``): text in UTC needs no conversion.
    """
    import datetime as _dt

    from pyspark.sql import functions as F

    from nightshift.logformat import year_sign_guard

    spec = source.timestamp
    if spec.kind in ("epoch_s", "epoch_ms"):
        value = F.trim(text).try_cast("decimal(38,6)")
        if spec.kind == "epoch_ms":
            value = F.try_divide(value, F.lit(1000))
        # CASE is lazy: out-of-range numbers never reach timestamp_seconds (which throws under ANSI)
        return F.when((value >= 0) & (value < F.lit(253402300800)), F.timestamp_seconds(value))
    # checked on the text as it comes (the rewrites below do not move the year), so that the
    # rewritten text is computed once per line
    raw, guard = text, year_sign_guard(spec.pattern)
    if spec.weekday:
        text = F.regexp_replace(text, spec.weekday_regex(), "")
    if spec.millis_separator:
        sep = spec.millis_separator
        millis = F.substring_index(text, sep, -1)
        head = F.substring(text, F.lit(1), F.length(text) - F.length(millis) - 1)
        text = F.when(F.length(millis).between(1, 3) & F.contains(text, F.lit(sep)),
                      F.concat(head, F.lit(sep), F.lpad(millis, 3, "0")))
    the_day = _dt.date.fromisoformat(day) if day else _dt.datetime.now(_dt.timezone.utc).date()
    if spec.date_from_day == "year":
        text = F.concat(text, F.lit(f" {the_day.year:04d}"))
    elif spec.date_from_day == "date":
        text = F.concat(text, F.lit(f" {the_day.isoformat()}"))
    if spec.append_zone:
        text = F.concat(text, F.lit(f" {spec.timezone}"))
    ts = F.try_to_timestamp(text, F.lit(spec.spark_pattern))
    if guard is not None:
        # a signed year of 6+ digits crashes try_to_timestamp (long overflow): a bad timestamp instead
        suspect = raw.startswith("+") | raw.startswith("-") if guard.startswith("(?i)^[+-]") else F.lit(True)
        ts = F.when(suspect & raw.rlike(guard), F.lit(None).cast("timestamp")).otherwise(ts)
    if spec.date_from_day == "year" and the_day.month in (1, 12):
        # rollover on the wall-clock month; with a zone appended the instant's UTC month can differ
        # from the text's by a few hours at the turn of the month, so compare in the source's zone
        month = F.month(F.from_utc_timestamp(ts, spec.timezone) if spec.append_zone else ts)
        if the_day.month == 1:
            ts = F.when(month == 12, ts - F.expr("INTERVAL 1 YEAR")).otherwise(ts)
        else:
            ts = F.when(month == 1, ts + F.expr("INTERVAL 1 YEAR")).otherwise(ts)
    return ts


def attach_template_ids(frame: "DataFrame", assignments: dict[str, int]) -> "DataFrame":
    """Set ``template_id`` from a masked message -> id map; lines whose message is not in the
    map keep the ``template_id`` they had (null when they had none).

    Small maps (the usual case: hundreds of distinct messages) are a literal map lookup in the
    expression; large ones a broadcast join.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType, StringType, StructField, StructType

    previous = F.col("template_id") if "template_id" in frame.columns else F.lit(None).cast("int")
    if len(assignments) <= _LITERAL_MAP_LIMIT:
        found = literal_lookup(assignments, F.col("masked"), "int")
        return frame.withColumn("template_id", F.coalesce(found, previous)).select(*LINE_COLUMNS)
    schema = StructType([StructField("masked", StringType(), False), StructField("_tid", IntegerType(), False)])
    mapping = frame.sparkSession.createDataFrame(sorted(assignments.items()), schema)
    joined = frame.join(F.broadcast(mapping), on="masked", how="left")
    return joined.withColumn("template_id", F.coalesce(F.col("_tid"), previous)).select(*LINE_COLUMNS)


def read_template_ids(parsed_dir) -> dict[str, int]:
    """The day's masked message -> template id map written by ingest ({} for a partition written
    before template ids moved out of the line files: those lines carry their ids)."""
    import json
    from pathlib import Path

    path = Path(parsed_dir) / TEMPLATE_IDS_FILE
    return {str(k): int(v) for k, v in json.loads(path.read_text()).items()} if path.exists() else {}


def read_parsed_lines(spark: "SparkSession", parsed_dir) -> "DataFrame":
    """One day's parsed lines with their template ids (columns :data:`LINE_COLUMNS`)."""
    return attach_template_ids(spark.read.parquet(str(parsed_dir)), read_template_ids(parsed_dir))


class IngestError(RuntimeError):
    """Ingest cannot run for this day (no input, or the line accounting does not balance)."""


@dataclass(frozen=True)
class RawEntries:
    """What a raw partition holds: the files to read and the entries skipped, with a reason."""

    files: list[str]                  # paths of regular files, sorted by name
    skipped: list[dict[str, str]]     # [{"name": ..., "reason": ...}]


def list_raw_entries(raw_dir) -> RawEntries:
    """Sort the entries of a raw partition into files to read and skipped entries.

    Read: regular files (not symlinks) whose name does not start with ``.`` or ``_``. Skipped, each
    with a reason (the report's ``skipped_entries``): hidden files and ``_`` markers,
    sub-directories, special files (FIFOs, sockets, devices), and every symlink: never read,
    reported as dangling, as pointing outside the raw partition (refused), or as pointing inside
    it (its target, if a top-level file, is read under its own name).
    """
    import os
    from pathlib import Path

    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise IngestError(f"no raw data: {raw_dir} does not exist")
    home = raw_dir.resolve()
    files, skipped = [], []
    for entry in sorted(os.scandir(raw_dir), key=lambda e: e.name):
        reason = None
        if entry.name.startswith((".", "_")):
            reason = "hidden or marker file"
        elif entry.is_symlink():
            try:
                target = Path(entry.path).resolve()
            except (RuntimeError, OSError):      # a symlink loop
                target = None
            if target is None:
                reason = "symlink that cannot be resolved (loop)"
            elif not target.exists():
                reason = f"dangling symlink (to {os.readlink(entry.path)})"
            elif home != target and home not in target.parents:
                reason = "symlink to a target outside the raw partition: refused"
            else:
                reason = "symlink inside the raw partition: not followed"
        elif entry.is_dir(follow_symlinks=False):
            reason = "sub-directory: not read"
        elif not entry.is_file(follow_symlinks=False):
            reason = "not a regular file"
        if reason:
            skipped.append({"name": entry.name, "reason": reason})
        else:
            files.append(entry.path)
    return RawEntries(files, skipped)


def raw_files(raw_dir) -> list[str]:
    """The day's raw files to read (see :func:`list_raw_entries`), sorted."""
    return list_raw_entries(raw_dir).files


def _lock_settings(lake):
    """Lock settings for a lake: locks live in the lake (or Postgres, as ``load_settings``)."""
    import os
    from types import SimpleNamespace

    return SimpleNamespace(data_root=lake.root, lock_url=os.environ.get("NIGHTSHIFT_LOCK_URL") or None)


def run_ingest(spark: "SparkSession", lake, source: SourceConfig, day: str, settings=None) -> dict:
    """Ingest one day of one source: write parsed and quarantine partitions, update the template
    store, and return (and write) the ingest report. Re-running replaces only this day's output.

    Steps (all while holding the ``templates:<source>`` lock, so one writer per source updates
    the template store): finish any interrupted commit of the day (:meth:`Lake.recover`) -> read
    the raw files -> parse and write everything into a staging directory -> check line accounting
    -> save the template store -> swap both partitions in together (:meth:`Lake.commit`) -> write
    the report. A crash anywhere leaves the day entirely old or entirely new; the store is saved
    before the day's ids become visible, and only ever adds or generalises templates.
    Fault points: ``ingest:after_store_save``, ``ingest:before_swap``, ``ingest:between_swaps``.
    """
    import logging
    import shutil

    from nightshift import faults
    from nightshift.lake import partition_fingerprint
    from nightshift.locks import exclusive
    from nightshift.templates import TemplateStore

    log = logging.getLogger("nightshift.ingest")
    settings = settings or _lock_settings(lake)
    parsed_dir, quarantine_dir = lake.parsed_dir(source.name, day), lake.quarantine_dir(source.name, day)
    with exclusive(settings, f"templates:{source.name}"):
        lake.recover(source.name, day)
        # no journal of this day is left and we are the only ingest of this source: old scratch
        # (from crashed runs) can go
        shutil.rmtree(lake.staging_dir("ingest", source.name, day), ignore_errors=True)
        stage = lake.new_stage("ingest", source.name, day)
        committing = False
        try:
            # read
            raw = list_raw_entries(lake.raw_dir(source.name, day))
            for item in raw.skipped:
                log.warning("raw %s %s: skipped %r: %s", source.name, day, item["name"], item["reason"])
            if raw.files:
                lines = read_raw_lines(spark, raw.files, link_dir=stage / "raw")
            else:
                log.warning("no raw files for %s %s: writing an empty day", source.name, day)
                lines = spark.createDataFrame([], "value string, source_file string, _block_start long, _row_id long")
            # transform + write (staged)
            store_path = lake.template_store_file(source.name)
            store = TemplateStore.load(store_path, **drain_params(source))
            input_lines, assignments, written = stage_lines(
                lines, source, store, day, stage, expected_files=[f.rsplit("/", 1)[-1] for f in raw.files]
            )
            report = ingest_report(spark, source, day, written, input_lines, assignments, store, raw)
            report["data_fingerprint"] = partition_fingerprint(written["parsed"], written["quarantined"])
            # commit: the store first, then the day's partitions
            store.check_assignments(assignments)
            store.save(store_path)
            report["template_store_version"] = store.version
            faults.point("ingest:after_store_save")
            committing = True
            lake.commit("ingest", source.name, day,
                        [(written["parsed"], parsed_dir), (written["quarantined"], quarantine_dir)])
            committing = False
        finally:
            if not committing:   # a failed commit's journal still needs its staged dirs (recover)
                shutil.rmtree(stage, ignore_errors=True)
        lake.write_report(source.name, day, "ingest", report)
    log.info(
        "ingest %s %s: %d input lines = %d parsed + %d quarantined %s%s",
        source.name, day, input_lines, report["parsed_lines"], report["quarantined_lines"], report["quarantine_reasons"],
        f" details {report['quarantine_details']}" if report.get("quarantine_details") else "",
    )
    return report


QUARANTINE_DETAILS_SHOWN = 10


def ingest_report(spark, source: SourceConfig, day: str, written: dict, input_lines: int, assignments: dict,
                  store, raw: RawEntries) -> dict:
    """The ingest report, from the staged partitions (two small queries); raises
    :class:`IngestError` when the line accounting does not balance, before anything is visible."""
    from pyspark.sql import functions as F

    parsed = read_parsed_lines(spark, written["parsed"])
    quarantined = spark.read.parquet(str(written["quarantined"]))
    # one query per partition: the reasons add up to the quarantined lines
    reasons, details = {}, {}
    for r in quarantined.groupBy("reason", "detail").count().collect():
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + r["count"]
        if r["detail"] is not None:
            details[f"{r['reason']}: {r['detail']}"] = r["count"]
    details = dict(sorted(details.items(), key=lambda kv: (-kv[1], kv[0]))[:QUARANTINE_DETAILS_SHOWN])
    stats = parsed.agg(
        F.count(F.lit(1)).alias("lines"),
        F.count("template_id").alias("with_template"),
        F.count("session_id").alias("with_session"),
        F.sum(F.col("encoding_repaired").cast("long")).alias("encoding_repaired"),
    ).first()
    parsed_lines, quarantined_lines = stats["lines"], sum(reasons.values())
    if parsed_lines + quarantined_lines != input_lines:
        raise IngestError(
            f"line accounting failed for {source.name} {day}: {input_lines} input != "
            f"{parsed_lines} parsed + {quarantined_lines} quarantined; nothing was written for this day"
        )
    return {
        "source": source.name,
        "source_version": source.version,
        "day": day,
        "files": [f.rsplit("/", 1)[-1] for f in raw.files],
        "skipped_entries": raw.skipped,
        "input_lines": input_lines,
        "parsed_lines": parsed_lines,
        "quarantined_lines": quarantined_lines,
        "quarantine_rate": (quarantined_lines / input_lines) if input_lines else 0.0,
        "quarantine_reasons": reasons,
        # the most frequent reasons with their detail (e.g. where lines stopped matching the format)
        "quarantine_details": details,
        "lines_with_template": stats["with_template"],
        "lines_with_session": stats["with_session"],
        "encoding_repaired_lines": stats["encoding_repaired"] or 0,
        "distinct_messages": len(assignments),
        "templates_used": len(set(assignments.values())),
        "new_templates": store.new_template_ids(day),
        "template_store_version": store.version,
    }


def stage_lines(lines: "DataFrame", source: SourceConfig, store, day: str, stage_dir,
                expected_files=None) -> tuple[int, dict[str, int], dict[str, "Path"]]:
    """Parse raw lines into ``<stage_dir>/lines/status=parsed`` and ``.../status=quarantined``.

    1. a cheap scan counts the lines of each file split (line numbers, accounting, uniqueness of
       (file, line number): :func:`split_offsets`);
    2. one pass does all per-line work (split, timestamp, masks, session, line number) and writes
       every line once, partitioned by status;
    3. the day's distinct masked messages (far fewer than lines; read back from the written
       column) go to the template store (in memory: the caller saves it), which returns ids for
       known messages from its cache and runs the Drain miner on the new ones only;
    4. the day's masked message -> id map is written into the staged parsed partition
       (:data:`TEMPLATE_IDS_FILE`).

    Template ids are looked up at read time (:func:`read_parsed_lines`) rather than written per
    line: ids for new messages are only known after the lines are parsed, so writing them per line
    meant rewriting the whole day whenever one new message appeared. The ids are stable (the store
    never renumbers), so the lookup gives the same answer on every read.

    Returns ``(input lines, distinct masked message -> template id, {"parsed"|"quarantined": dir})``.
    """
    from pathlib import Path

    from pyspark.sql import functions as F

    from nightshift.lake import write_json_atomic

    spark = lines.sparkSession
    out = Path(stage_dir) / "lines"
    input_lines, offsets = split_offsets(lines, expected_files)
    classified = number_lines(classify_lines(lines, source, day), offsets).select(*WRITTEN_COLUMNS)
    status = F.when(F.col("reason").isNull(), F.lit("parsed")).otherwise(F.lit("quarantined"))
    classified.withColumn("status", status).write.mode("overwrite").partitionBy("status").parquet(str(out))
    written = {name: out / f"status={name}" for name in ("parsed", "quarantined")}
    for path in written.values():
        if not path.exists():   # no line of this status: an empty partition with the schema
            # limit(0) is planned as an empty relation: no scan, and (unlike createDataFrame from
            # a Python list) no Python worker processes
            classified.limit(0).write.parquet(str(path))

    day_messages = [r.masked for r in spark.read.parquet(str(written["parsed"])).select("masked").distinct().collect()]
    assignments = store.assign(day_messages, day)
    write_json_atomic(written["parsed"] / TEMPLATE_IDS_FILE, dict(sorted(assignments.items())))
    return input_lines, assignments, written


def ingest_lines(lines: "DataFrame", source: SourceConfig, store, day: str, parsed_dir, quarantine_dir,
                 scratch_dir) -> tuple[int, dict[str, int]]:
    """:func:`stage_lines` into ``scratch_dir``, then move the two partitions to ``parsed_dir`` and
    ``quarantine_dir`` (replaced). For scratch use outside the lake (``nightshift.cli``); the
    pipeline commits through :meth:`Lake.commit` instead (:func:`run_ingest`)."""
    import shutil
    from pathlib import Path

    scratch = Path(scratch_dir)
    shutil.rmtree(scratch, ignore_errors=True)
    input_lines, assignments, written = stage_lines(lines, source, store, day, scratch)
    for name, target in (("parsed", Path(parsed_dir)), ("quarantined", Path(quarantine_dir))):
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(written[name]), str(target))
    shutil.rmtree(scratch, ignore_errors=True)
    return input_lines, assignments


def drain_params(source: SourceConfig) -> dict:
    """``TemplateStore.load`` keyword arguments for the source's miner (``miner:`` in the YAML)."""
    if source.miner != "drain":
        return {"miner": source.miner, **source.miner_params}
    return {
        "depth": int(source.drain.get("depth", 4)),
        "similarity_threshold": float(source.drain.get("similarity_threshold", 0.5)),
        "max_children": int(source.drain.get("max_children", 100)),
    }
