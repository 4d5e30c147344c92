"""A corpus of hostile inputs: nothing crashes the ingest job, and every line is accounted for
(parsed + quarantined = input), or the job fails with a clear error without writing the day."""

from __future__ import annotations

import gzip

import pytest

from nightshift.ingest import IngestError, read_parsed_lines, run_ingest
from tests.conftest import write_raw

DAY = "2026-11-01"
GOOD = b"081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_%d terminating"


def _good(n: int, start: int = 0) -> bytes:
    return b"\n".join(GOOD % i for i in range(start, start + n))


# name -> (file name, content, expected input lines, expected parsed lines, expected quarantine reasons)
CORPUS = {
    "empty file": ("empty.log", b"", 0, 0, {}),
    "NUL bytes": ("nul.log", b"\x00" * 4096, 1, 0, {"format_mismatch": 1}),
    "5 MB line": ("long.log", _good(2) + b"\n" + b"x " * (5 * 1024 * 1024 // 2) + b"\n" + _good(1, 9), 4, 3,
                  {"line_too_long": 1}),
    "5 MB line without spaces": ("long2.log", b"y" * (5 * 1024 * 1024), 1, 0, {"line_too_long": 1}),
    "CRLF endings": ("crlf.log", _good(5).replace(b"\n", b"\r\n") + b"\r\n", 5, 5, {}),
    "mixed UTF-8 and Latin-1": ("mixed.log", _good(2) + "\n081109 203615 1 INFO x: caf\u00e9 ok\n".encode()
                                + "081109 203615 1 INFO x: caf\u00e9 latin\n".encode("latin-1"), 4, 4, {}),
    "gzip file": ("zipped.log.gz", gzip.compress(_good(50) + b"\n"), 50, 50, {}),
    "wrong format": ("other.log", b"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown\n"
                     b"[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok\n" + _good(2), 4, 2,
                     {"format_mismatch": 1, "bad_timestamp": 1}),
    "many spaces, no colon": ("spaces.log", b" ".join([b"word"] * 12000) + b"\n" + _good(1), 2, 1,
                              {"format_mismatch": 1}),
}

NO_COLON = "format_mismatch: no ': ' after <Component>"
TOO_LONG = "line_too_long: 5242880 characters, more than max_line_length 65536"
# name -> the report's quarantine_details (reason: where the line stopped matching, or its length)
DETAILS = {
    "NUL bytes": {"format_mismatch: no whitespace after <Date>": 1},
    "5 MB line": {TOO_LONG: 1},
    "5 MB line without spaces": {TOO_LONG: 1},
    "wrong format": {NO_COLON: 1},
    "many spaces, no colon": {NO_COLON: 1},
}


@pytest.mark.parametrize("case", list(CORPUS), ids=list(CORPUS))
def test_every_line_is_accounted_for(spark, lake, hdfs_source, case):
    name, content, lines, parsed, reasons = CORPUS[case]
    write_raw(lake, DAY, name, content)
    report = run_ingest(spark, lake, hdfs_source, DAY)
    assert report["input_lines"] == lines
    assert report["parsed_lines"] + report["quarantined_lines"] == report["input_lines"]
    assert report["parsed_lines"] == parsed
    assert report["quarantine_reasons"] == reasons
    assert report["quarantine_details"] == DETAILS.get(case, {})
    written = read_parsed_lines(spark, lake.parsed_dir("hdfs", DAY)).count() + \
        spark.read.parquet(str(lake.quarantine_dir("hdfs", DAY))).count()
    assert written == lines


def test_whole_corpus_in_one_day(spark, lake, hdfs_source):
    for name, content, *_ in CORPUS.values():
        write_raw(lake, DAY, name, content)
    report = run_ingest(spark, lake, hdfs_source, DAY)
    assert report["input_lines"] == sum(case[2] for case in CORPUS.values())
    assert report["parsed_lines"] == sum(case[3] for case in CORPUS.values())
    assert report["encoding_repaired_lines"] == 1       # the Latin-1 line, kept with U+FFFD


def test_truncated_gzip_fails_clearly_and_writes_nothing(spark, lake, hdfs_source):
    whole = gzip.compress(_good(20000) + b"\n")
    write_raw(lake, DAY, "cut.log.gz", whole[: len(whole) // 2])
    with pytest.raises(IngestError, match=r"cannot read raw file .*cut\.log\.gz.*EOFException"):
        run_ingest(spark, lake, hdfs_source, DAY)
    assert not lake.parsed_dir("hdfs", DAY).exists()
    assert lake.read_report("hdfs", DAY, "ingest") is None
