"""The compiled format in Java (what Spark runs) against Python's ``re`` (what
tests/test_logformat_loghub.py compares with Loghub's regex): the same lines match, with the same
fields by group number, and the same mismatch detail, on constructed lines."""

from __future__ import annotations

import pytest

from nightshift.ingest import mismatch_detail_expression
from nightshift.logformat import LogFormat
from tests.test_logformat_loghub import FORMATS, constructed_lines


@pytest.mark.parametrize("log_format", list(FORMATS))
def test_java_parses_and_explains_as_python_does(spark, log_format):
    from pyspark.sql import functions as F

    fmt = LogFormat.parse(log_format)
    lines = constructed_lines(FORMATS[log_format], 1500, seed=7)
    frame = spark.createDataFrame([(i, line) for i, line in enumerate(lines)], "i int, line string")
    line = F.col("line")
    rows = frame.select(
        "i", line.rlike("(?s)" + fmt.regex).alias("matched"),
        *[F.regexp_extract(line, "(?s)" + fmt.regex, fmt.group_index[name]).alias(name) for name in fmt.fields],
        mismatch_detail_expression(line, fmt).alias("detail"),
    ).collect()
    rx = fmt.python_regex
    for row in sorted(rows, key=lambda r: r.i):
        text = lines[row.i]
        m = rx.match(text)
        assert row.matched == (m is not None), text
        if m:
            assert [row[name] for name in fmt.fields] == [m.group(name) or "" for name in fmt.fields], text
        else:
            assert row.detail == fmt.mismatch_detail(text), text
