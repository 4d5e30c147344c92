"""Timestamps real logs use, and sessions without an id in the message, through the real Spark path
(run_ingest on a temporary lake): epoch seconds/milliseconds, weekday names, year-less and date-less
formats (December/January rollover), unpadded fields, fractions of any width, per-source time zones."""

from __future__ import annotations

import pytest

from nightshift.ingest import read_parsed_lines, run_ingest
from nightshift.logformat import _LETTER_COUNTS
from nightshift.sources import SourceConfigError, parse_source
from tests.conftest import write_raw


def _source(fmt: str, timezone: str | None = None, *, log_format=r"\[<Time>\] <Content>", fields=("Time",),
            session=None, name="ts"):
    timestamp = {"fields": list(fields), "format": fmt}
    if timezone is not None:
        timestamp["timezone"] = timezone
    return parse_source({
        "name": name, "log_format": log_format, "timestamp": timestamp,
        "masks": [{"name": "number", "regex": r"(?<![A-Za-z0-9])-?\d+"}],
        "session": session or {"window_minutes": 60},
    })


def _ingest(spark, lake, source, day, lines):
    """Ingest ``lines`` (text) for ``day``; returns ({message: 'yyyy-MM-dd HH:mm:ss.SSSSSS'}, report)."""
    from pyspark.sql import functions as F

    write_raw(lake, day, "a.log", ("\n".join(lines) + "\n").encode(), source=source.name)
    report = run_ingest(spark, lake, source, day)
    rows = read_parsed_lines(spark, lake.parsed_dir(source.name, day)).select(
        "message", F.date_format("ts", "yyyy-MM-dd HH:mm:ss.SSSSSS").alias("t"), "session_id").collect()
    return {r.message: r.t for r in rows}, report


CASES = [
    # (format, timezone, day, [(timestamp text, expected UTC or None for bad_timestamp)])
    ("epoch_s", None, "2026-11-01", [
        ("1077804742", "2004-02-26 14:12:22.000000"),
        ("1077804742.5", "2004-02-26 14:12:22.500000"),
        ("not-a-number", None),
        ("99999999999999999999", None),           # out of range: quarantined, not an exception
    ]),
    ("epoch_ms", None, "2026-11-01", [
        ("1077804742123", "2004-02-26 14:12:22.123000"),
        ("-5", None),
    ]),
    ("EEE MMM dd HH:mm:ss yyyy", None, "2026-11-01", [
        ("Sun Dec 04 04:47:44 2005", "2005-12-04 04:47:44.000000"),
        ("Sunday Dec 04 04:47:44 2005", "2005-12-04 04:47:44.000000"),
        ("Dec 04 04:47:44 2005", "2005-12-04 04:47:44.000000"),    # no weekday: still the same date
    ]),
    ("yyyy-MM-dd HH:mm:ss, EEEE", None, "2026-11-01", [
        ("2005-12-04 04:47:44, Sunday", "2005-12-04 04:47:44.000000"),
    ]),
    ("MMM d HH:mm:ss", None, "2026-06-14", [                      # syslog: year from the partition
        ("Jun 14 15:16:01", "2026-06-14 15:16:01.000000"),
        ("Jun  9 01:02:03", None),       # two spaces: the format's `d` after a single space does not match
    ]),
    ("MM-dd HH:mm:ss.SSS", None, "2026-03-17", [                  # Android logcat
        ("03-17 16:13:38.811", "2026-03-17 16:13:38.811000"),
    ]),
    ("HH:mm:ss", None, "2026-11-01", [                            # time only: the partition's date
        ("23:59:59", "2026-11-01 23:59:59.000000"),
    ]),
    ("yyyyMMdd-HH:mm:ss:S", None, "2026-11-01", [                 # HealthApp: unpadded milliseconds
        ("20171223-22:15:29:6", "2017-12-23 22:15:29.006000"),
        ("20171223-22:15:29:60", "2017-12-23 22:15:29.060000"),
        ("20171223-22:15:29:606", "2017-12-23 22:15:29.606000"),
        ("20171223-22:15:29:6060", None),
        ("20171223-22:15:29", None),
    ]),
    ("yyyy-M-d H:m:s", None, "2026-11-01", [                      # unpadded date and time parts
        ("2017-1-3 2:5:9", "2017-01-03 02:05:09.000000"),
        ("2017-12-23 22:15:29", "2017-12-23 22:15:29.000000"),
    ]),
    ("yyyy-MM-dd HH:mm:ss.SSS", None, "2026-11-01", [             # fractions of any width
        ("2017-12-23 22:15:29.1", "2017-12-23 22:15:29.100000"),
        ("2017-12-23 22:15:29.123456", "2017-12-23 22:15:29.123456"),
        ("2017-12-23 22:15:29.123456789", "2017-12-23 22:15:29.123456"),
    ]),
    ("yyyy-MM-dd HH:mm:ss", "Europe/Paris", "2026-11-01", [
        ("2017-12-23 22:15:29", "2017-12-23 21:15:29.000000"),
        ("2017-07-01 12:00:00", "2017-07-01 10:00:00.000000"),    # summer time
    ]),
    ("MM/dd/yyyy HH:mm", None, "2026-11-01", [                    # a signed year of 6+ digits: Spark
        ("01/01/2016 10:00", "2016-01-01 10:00:00.000000"),         # would fail the job (long overflow)
        ("01/01/+294248 10:00", None),
        ("01/01/-290309 10:00", None),
        ("01/01/20160 10:00", None),                               # five digits need a sign
    ]),
    ("yyyy-MM-dd HH:mm:ss", "+08:00", "2026-11-01", [
        ("2017-12-23 22:15:29", "2017-12-23 14:15:29.000000"),
    ]),
    ("yyyy-MM-dd HH:mm:ss Z", "Europe/Paris", "2026-11-01", [     # a zone in the text wins
        ("2017-12-23 22:15:29 +0000", "2017-12-23 22:15:29.000000"),
    ]),
]


@pytest.mark.parametrize("fmt, timezone, day, cases", CASES, ids=[f"{c[0]}|{c[1]}" for c in CASES])
def test_timestamp_kinds_parse_through_ingest(spark, lake, fmt, timezone, day, cases):
    source = _source(fmt, timezone)
    lines = [f"[{text}] line {i}" for i, (text, _) in enumerate(cases)]
    parsed, report = _ingest(spark, lake, source, day, lines)
    expected = {f"line {i}": want for i, (_, want) in enumerate(cases) if want is not None}
    assert parsed == expected
    bad = sum(1 for _, want in cases if want is None)
    assert report["quarantine_reasons"] == ({"bad_timestamp": bad} if bad else {})


@pytest.mark.parametrize("fmt, timezone", [("MMM d HH:mm:ss", None), ("MM-dd HH:mm:ss.SSS", "Europe/Paris")])
def test_year_less_lines_roll_over_between_december_and_january(spark, lake, fmt, timezone):
    source = _source(fmt, timezone)
    text = {"MMM d HH:mm:ss": ("Dec 31 23:59:58", "Jan 1 00:00:01"),
            "MM-dd HH:mm:ss.SSS": ("12-31 23:59:58.000", "01-01 00:00:01.000")}[fmt]
    lines = [f"[{text[0]}] dec", f"[{text[1]}] jan"]
    shift = "2026-12-31 22:59:58.000000" if timezone else "2026-12-31 23:59:58.000000"
    jan = "2026-12-31 23:00:01.000000" if timezone else "2027-01-01 00:00:01.000000"
    # a January partition: the December line belongs to the previous year
    parsed, _ = _ingest(spark, lake, source, "2027-01-01", lines)
    assert parsed == {"dec": shift, "jan": jan}
    # a December partition: the January line belongs to the next year
    parsed, _ = _ingest(spark, lake, source, "2026-12-31", lines)
    assert parsed == {"dec": shift, "jan": jan}
    # any other month: the partition's year, no rollover
    parsed, _ = _ingest(spark, lake, source, "2026-06-01", lines)
    assert parsed["dec"].startswith("2026-12-31") and parsed["jan"] < "2026-01-01 01"


@pytest.mark.parametrize(
    "timestamp, message",
    [
        ({"format": "YYYY-MM-dd HH:mm:ss"}, r"timestamp\.format: pattern letter 'Y'"),
        ({"format": "yyyy-MM-dd HH:mm:ss.SSSSSSSSSS"}, r"timestamp\.format: .*too many"),
        ({"format": "MMMMMM dd HH:mm:ss yyyy"}, r"timestamp\.format: .*too many"),
        ({"format": "yyyy-MM-dd'T"}, r"timestamp\.format: unbalanced quote"),
        ({"format": "yyyy-MM-dd #"}, r"timestamp\.format: character '#' is reserved"),
        ({"format": "epoch_us"}, r"timestamp\.format: unknown format keyword 'epoch_us'"),
        ({"format": "yyyy-MM-dd HH:mm:ss:S.SS"}, r"timestamp\.format: .*lone 'S'"),
        ({"format": "EEE"}, r"timestamp\.format: .*no date or time"),
        ({"format": "y-M-d"}, r"timestamp\.format: 'y' in 'y-M-d': write the year as 'yyyy'"),
        ({"format": "yyyyy-MM-dd"}, r"timestamp\.format: 'yyyyy' .*write the year as 'yyyy'"),
        ({"format": "yyyy-MM-dd", "timezone": "Mars/Olympus"}, r"timestamp\.timezone: unknown timezone 'Mars/Olympus'"),
        ({"format": "yyyy-MM-dd", "zone": "UTC"}, r"timestamp: unknown keys \['zone'\]"),
    ],
)
def test_wrong_timestamp_specs_are_rejected_at_load_naming_the_key(timestamp, message):
    with pytest.raises(SourceConfigError, match=message):
        parse_source({"name": "ts", "log_format": r"\[<Time>\] <Content>", "timestamp": {"fields": ["Time"], **timestamp},
                      "session": {"window_minutes": 10}})


def test_every_pattern_letter_count_accepted_at_load_is_accepted_by_spark(spark):
    """The load-time check (nightshift.logformat) never lets through a pattern Spark refuses."""
    from pyspark.sql import functions as F

    from nightshift.logformat import compile_timestamp_format

    patterns = [compile_timestamp_format(f"yyyy-MM-dd HH {letter * n}").spark_pattern
                for letter, counts in _LETTER_COUNTS.items() if letter not in "yHE" for n in counts]
    frame = spark.range(1).select(*[F.try_to_timestamp(F.lit("2017-12-23 22 x"), F.lit(p)).alias(f"c{i}")
                                    for i, p in enumerate(patterns)])
    frame.collect()      # an unparseable pattern raises here (try_to_timestamp only nulls bad text)


def test_window_only_sessions_end_to_end_through_features(spark, lake):
    from nightshift.features import session_features

    source = _source("yyyy-MM-dd HH:mm:ss", session={"window_minutes": 10}, name="win")
    lines = ["[2026-11-01 10:00:00] start 1", "[2026-11-01 10:03:00] step 2", "[2026-11-01 10:12:00] start 3"]
    _, report = _ingest(spark, lake, source, "2026-11-01", lines)
    assert report["lines_with_session"] == 3
    features = {r.session_id: r for r in session_features(read_parsed_lines(spark, lake.parsed_dir("win", "2026-11-01"))).collect()}
    assert set(features) == {"2026-11-01T10:00", "2026-11-01T10:10"}
    assert features["2026-11-01T10:00"].line_count == 2 and features["2026-11-01T10:00"].duration_s == 180.0
    assert features["2026-11-01T10:10"].line_count == 1


def test_sessions_by_several_key_fields(spark, lake):
    source = _source("yyyy-MM-dd HH:mm:ss", log_format=r"\[<Time>\] <Host> <Pid> <Content>",
                     session={"key_fields": ["Host", "Pid"], "window_minutes": 60}, name="keys")
    lines = ["[2026-11-01 10:00:00] h1 12 a", "[2026-11-01 10:30:00] h1 12 b", "[2026-11-01 10:05:00] h1 13 c",
             "[2026-11-01 11:05:00] h2 12 d"]
    write_raw(lake, "2026-11-01", "a.log", ("\n".join(lines) + "\n").encode(), source="keys")
    run_ingest(spark, lake, source, "2026-11-01")
    sessions = {r.message: r.session_id for r in read_parsed_lines(spark, lake.parsed_dir("keys", "2026-11-01")).collect()}
    assert sessions == {"a": "h1|12@2026-11-01T10:00", "b": "h1|12@2026-11-01T10:00",
                        "c": "h1|13@2026-11-01T10:00", "d": "h2|12@2026-11-01T11:00"}


def test_sources_that_need_no_rewrite_pay_one_try_to_timestamp_per_line(spark, hdfs_source):
    """The shipped sources' timestamp is a single try_to_timestamp; rewrites appear only when needed."""
    from pyspark.sql import functions as F

    from nightshift.ingest import timestamp_expression

    plain = str(timestamp_expression(F.col("t"), hdfs_source, "2026-11-01"))
    assert "try_to_timestamp" in plain and not any(x in plain for x in ("regexp", "concat", "lpad", "CASE"))
    weekday = str(timestamp_expression(F.col("t"), _source("EEE MMM dd HH:mm:ss yyyy"), "2026-11-01"))
    assert weekday.count("regexp_replace") == 1 and "concat" not in weekday
    syslog = str(timestamp_expression(F.col("t"), _source("MMM d HH:mm:ss"), "2026-06-01"))
    assert "regexp" not in syslog and "CASE" not in syslog          # no rollover outside Dec/Jan
