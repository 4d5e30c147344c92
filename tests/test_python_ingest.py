"""The in-process parser (``nightshift.python_ingest``, what ``try-source`` runs on small files)
gives the Spark ingest's result: every line of the ten Loghub samples (status, reason, detail,
timestamp, fields, masked message, session, template id), the hostile corpus, and timestamps of
every kind a source can declare, constructed and fuzzed, through both parsers."""

from __future__ import annotations

import datetime as dt
import io
import random
import subprocess
import sys
from types import SimpleNamespace

import pytest

from nightshift.ingest import drain_params, read_parsed_lines, run_ingest
from nightshift.logformat import compile_timestamp_format
from nightshift.python_ingest import format_micros, ingest_file, read_lines, supports, timestamp_parser
from nightshift.settings import PROJECT_ROOT
from nightshift.sources import load_source
from nightshift.templates import TemplateStore
from tests.conftest import write_raw
from tests.test_timestamps import CASES, _source

LOGHUB = PROJECT_ROOT / "tests" / "fixtures" / "loghub"
DAY = "2026-12-01"
COLUMNS = ("reason", "detail", "ts", "level", "component", "message", "masked", "session_id", "template_id")


def spark_rows(spark, lake, source, day: str) -> dict[int, dict]:
    """The Spark ingest's result for the day's file (one raw file), by line number."""
    from pyspark.sql import functions as F

    run_ingest(spark, lake, source, day)
    rows = {}
    parsed = read_parsed_lines(spark, lake.parsed_dir(source.name, day)).select(
        "line_number", F.unix_micros("ts").alias("ts"), "level", "component", "message", "masked", "session_id",
        "template_id")
    for r in parsed.collect():
        rows[r.line_number] = {**r.asDict(), "reason": None, "detail": None}
    for r in spark.read.parquet(str(lake.quarantine_dir(source.name, day))).select("line_number", "reason", "detail").collect():
        rows[r.line_number] = {"reason": r.reason, "detail": r.detail, **{c: None for c in COLUMNS[2:]}}
    return rows


def in_process_rows(source, path, day: str) -> dict[int, dict]:
    store = TemplateStore.load(path.parent / "no-such-store.json", **drain_params(source))
    return {r["line_number"]: {c: r[c] for c in COLUMNS} for r in ingest_file(source, path, store, day)}


def assert_same_as_spark(spark, lake, source, name: str, content: bytes, day: str = DAY) -> dict[int, dict]:
    path = write_raw(lake, day, name, content, source=source.name)
    expected = spark_rows(spark, lake, source, day)
    got = in_process_rows(source, path, day)
    assert sorted(got) == sorted(expected) == list(range(1, len(expected) + 1))
    differing = {n: (got[n], {c: expected[n][c] for c in COLUMNS}) for n in got if got[n] != {c: expected[n][c] for c in COLUMNS}}
    assert not differing, list(differing.items())[:3]
    return got


SAMPLES = {"hdfs": "HDFS", "bgl": "BGL", "hadoop": "Hadoop", "spark": "Spark", "zookeeper": "Zookeeper",
           "thunderbird": "Thunderbird", "windows": "Windows", "linux": "Linux", "android": "Android",
           "healthapp": "HealthApp"}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_line_of_a_loghub_sample_is_what_the_spark_ingest_makes_of_it(spark, lake, name):
    source = load_source(name, PROJECT_ROOT / "sources")
    assert supports(source, DAY)            # the shipped sources all run in process
    rows = assert_same_as_spark(spark, lake, source, f"{SAMPLES[name]}_2k.log",
                                (LOGHUB / f"{SAMPLES[name]}_2k.log").read_bytes())
    assert len(rows) == 2000


def test_the_hostile_corpus_gives_the_spark_result_line_by_line(spark, lake, hdfs_source):
    from tests.test_hostile_input import CORPUS

    hostile = [case for case in CORPUS.values() if not case[0].endswith(".gz") and case[2] > 0]
    content = b"\n".join(case[1] for case in hostile) + b"\n"
    # invalid UTF-8 of several shapes, a lone CR, CRLF, and the field separator inside a line
    content += (b"081109 203615 148 INFO dfs.DataNode: bad \xff\xfe bytes \xe2\x82 cut \xf0\x9f\x98\r"
                b"081109 203615 148 INFO dfs.DataNode: sep \x01 inside\r\n\r\n   \n\t\n"
                b"081109 2036 148 INFO dfs.DataNode: short time\n")
    rows = assert_same_as_spark(spark, lake, hdfs_source, "hostile.log", content)
    reasons = {r["reason"] for r in rows.values()}
    assert {"line_too_long", "format_mismatch", "empty_line", "control_character", "bad_timestamp", None} <= reasons


def test_a_gzip_file_is_read_as_spark_reads_it(tmp_path):
    import gzip

    path = tmp_path / "a.log.gz"
    path.write_bytes(gzip.compress(b"one\r\ntwo\rthree\n\nfour"))
    assert list(read_lines(path)) == ["one", "two", "three", "", "four"]


@pytest.mark.parametrize("fmt, timezone, day, cases", CASES, ids=[f"{c[0]}|{c[1]}" for c in CASES])
def test_timestamp_kinds_parse_as_they_do_through_the_spark_ingest(fmt, timezone, day, cases):
    """tests/test_timestamps.py checks these expectations through the Spark ingest."""
    source = _source(fmt, timezone)
    parse = timestamp_parser(source.timestamp, day)
    if parse is None:                       # a zone in the text: Spark only
        assert source.timestamp.has_zone and not supports(source, day)
        return
    for text, want in cases:
        got = parse(text)
        assert (None if got is None else format_micros(got, "%Y-%m-%d %H:%M:%S.%f")) == want, text


FUZZED = [("EEE MMM dd HH:mm:ss yyyy", "UTC"), ("MMM d HH:mm:ss", "UTC"), ("MM-dd HH:mm:ss.SSS", "Europe/Paris"),
          ("HH:mm:ss", "UTC"), ("yyyyMMdd-H:m:s:S", "UTC"), ("yyyy-M-d H:m:s", "UTC"), ("yyyy-MM-dd HH:mm:ss", "UTC"),
          ("yyyy-MM-dd HH:mm:ss,SSS", "Europe/Paris"), ("yyMMdd HHmmss", "UTC"), ("yy/MM/dd HH:mm:ss", "UTC"),
          ("yyyy-MM-dd-HH.mm.ss.SSSSSS", "UTC"), ("MMMM d, yyyy HH:mm", "UTC"), ("dd/MMM/yyyy:HH:mm:ss", "-03:30"),
          ("yyyy-MM-dd'T'HH:mm:ss.SS", "America/New_York"), ("MMM dd HH:mm:ss", "Australia/Lord_Howe"),
          ("epoch_s", "UTC"), ("epoch_ms", "UTC")]
_RENDER = [("yyyy", "%Y"), ("yy", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"),
           ("mm", "%M"), ("ss", "%S"), ("EEE", "%a"), ("SSSSSS", "%f"), ("SSS", "%f"), ("SS", "%f"), ("'T'", "T"),
           ("M-d ", "%m-%d "), (" d,", " %d,"), (" d ", " %d "), ("H:m:s:S", "%H:%M:%S:%f")]


def _fuzzed_texts(fmt: str, rnd: random.Random, n: int) -> list[str]:
    """Texts near the format: rendered from random instants (some of them at DST changes, leap days,
    year ends, years 0 and signed), then mutated (a character dropped, inserted or replaced, case
    changed, a sign or digits added)."""
    texts = []
    for _ in range(n):
        moment = dt.datetime(rnd.choice([rnd.randrange(1, 9999), rnd.randrange(1990, 2030), 2016]), 1, 1) + dt.timedelta(
            seconds=rnd.randrange(0, 366 * 86400), microseconds=rnd.randrange(10**6))
        if fmt.startswith("epoch"):
            text = str(rnd.choice([rnd.randrange(-10, 2**40), rnd.randrange(10**9, 2 * 10**9)]))
            text = text + rnd.choice(["", ".5", ".1234567", "e3", " "])
        else:
            strf = fmt
            for spark_part, python_part in _RENDER:
                strf = strf.replace(spark_part, python_part)
            text = moment.strftime(strf)
        op = rnd.randrange(7)
        i = rnd.randrange(len(text))
        text = [text, text[:i] + text[i + 1:], text[:i] + rnd.choice("0123456789 :.-/aZ") + text[i:],
                text[:i] + rnd.choice("0123456789") + text[i + 1:], text.upper() if rnd.random() < 0.5 else text.lower(),
                rnd.choice(["-", "+", "-1", "+1", "+12", "-29030"]) + text, text + rnd.choice([" ", "0", "Z"])][op]
        texts.append(text)
    for year in ("-2016", "+12016", "+294248", "-290309", "+0000", "-0000", "0000", "20160", "+2016"):
        texts.append(f"01/01/{year} 10:00" if "/" in fmt else f"{year}-02-29 00:00:00")
    return texts


def test_fuzzed_timestamps_parse_to_the_same_instant_as_in_spark(spark):
    from pyspark.sql import functions as F

    from nightshift.ingest import timestamp_expression

    rnd = random.Random(20261204)
    differing, total, parsed = [], 0, 0
    for fmt, timezone in FUZZED:
        spec = compile_timestamp_format(fmt, timezone)
        texts = _fuzzed_texts(fmt, rnd, 400)
        frame = spark.createDataFrame([(t,) for t in texts], "t string")
        for day in ("2026-11-01", "2027-01-01", "2026-12-31"):
            parse = timestamp_parser(spec, day)
            ts = timestamp_expression(F.col("t"), SimpleNamespace(timestamp=spec), day)
            for r in frame.select("t", F.unix_micros(ts).alias("u"), F.date_format(ts, "yyyy-MM-dd'T'HH:mm").alias("w")).collect():
                got = parse(r.t)
                total += 1
                parsed += r.u is not None
                if got != r.u or (got is not None and format_micros(got) != r.w):
                    differing.append((fmt, timezone, day, r.t, r.u, got))
    assert not differing, differing[:5]
    assert total > 20000 and 0.3 < parsed / total < 0.8, (parsed, total)   # both kinds well represented


def test_patterns_only_spark_implements_make_try_source_use_spark(tmp_path):
    from nightshift.cli import _engine

    log_file = tmp_path / "a.log"
    log_file.write_text("[2017-12-23 10:15:29 PM] x\n")
    twelve_hour = _source("yyyy-MM-dd hh:mm:ss a")
    assert not supports(twelve_hour) and _engine("auto", twelve_hour, log_file, None) == "spark"
    with pytest.raises(SystemExit, match="--engine python cannot parse .* only Spark implements"):
        _engine("python", twelve_hour, log_file, None)
    assert _engine("auto", _source("yyyy-MM-dd HH:mm:ss"), log_file, None) == "python"


def test_try_source_in_process_prints_what_the_spark_path_prints(spark, tmp_path, hdfs_source):
    """The same report, line for line, and the same counts, from both engines (CSV quoting aside)."""
    from nightshift.cli import try_source, try_source_in_process

    log_file = tmp_path / "mixed.log"
    log_file.write_bytes((LOGHUB / "HDFS_2k.log").read_bytes()[:20000] + b"\nnot a line\n081109 2036 1 INFO x: y\n\n")
    printed = {}
    for engine, run in (("spark", lambda **kw: try_source(spark, **kw)), ("python", try_source_in_process)):
        out = io.StringIO()
        result = run(source=hdfs_source, log_file=log_file, output=tmp_path / f"{engine}.csv", show=30, out=out, day=DAY)
        printed[engine] = (out.getvalue().replace(f"{engine}.csv", "X.csv"), result)
    assert printed["python"] == printed["spark"]
    assert printed["python"][1]["quarantined"] == 3


def test_the_command_line_parses_a_sample_in_process_in_a_second_or_two(tmp_path):
    """``nightshift try-source`` on a 2,000-line sample: no Spark (no JVM started), the result on
    stdout, nothing on stderr. (Its speed is measured by bench/try_source.py, not here.)"""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "nightshift.cli", "try-source", "linux",
                           str(LOGHUB / "Linux_2k.log"), "--show", "1", "--day", DAY],
                          capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"{LOGHUB / 'Linux_2k.log'}: 2000 lines, 2000 parsed, 0 quarantined"), proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "nightshift.python_ingest" in imported and "pyspark" not in imported and "py4j" not in imported
    assert [line for line in proc.stderr.splitlines() if not line.startswith("import time:")] == []
