"""``nightshift try-source``: one file, outside the schedule, line numbers next to template ids."""

from __future__ import annotations

import csv
import io

from nightshift.cli import try_source

LINES = [
    "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_1 terminating",
    "not a log line",
    "081109 203616 149 INFO dfs.DataNode$PacketResponder: PacketResponder 2 for block blk_2 terminating",
    "081109 203617 150 INFO dfs.FSNamesystem: BLOCK* NameSystem.delete: blk_3 is added to invalidSet of 10.0.0.1:50010",
]


def test_try_source_reports_each_line_with_its_template(spark, tmp_path, hdfs_source):
    log_file, out_csv = tmp_path / "sample.log", tmp_path / "out.csv"
    log_file.write_text("\n".join(LINES) + "\n")
    printed = io.StringIO()
    result = try_source(spark, hdfs_source, log_file, out_csv, show=10, out=printed)
    assert (result["lines"], result["parsed"], result["quarantined"]) == (4, 3, 1)
    with out_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["line_number"] for r in rows] == ["1", "2", "3", "4"]
    assert rows[0]["template_id"] == rows[2]["template_id"] != rows[3]["template_id"]
    assert rows[0]["template"] == "PacketResponder <*> for block blk_<*> terminating"
    assert (rows[1]["status"], rows[1]["reason"], rows[1]["detail"]) == \
        ("quarantined", "format_mismatch", "no whitespace after <Level>")   # 4 words for 6 fields
    assert "3 parsed, 1 quarantined {'format_mismatch': 1}" in printed.getvalue()
    # where the line stopped matching: in the summary and on the line itself
    assert "       1  quarantined: format_mismatch: no whitespace after <Level>" in printed.getvalue()
    assert "       2  QUARANTINED (format_mismatch: no whitespace after <Level>)" in printed.getvalue()
    assert result["details"] == {"format_mismatch: no whitespace after <Level>": 1}
    assert not any(p.name.startswith("_staging") for p in tmp_path.iterdir())   # the lake is not touched


def test_the_command_line_starts_a_quick_quiet_local_spark_unless_told_otherwise(monkeypatch):
    from urllib.parse import urlparse

    from nightshift import cli

    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS", raising=False)
    cli._quick_local_spark()
    args = __import__("os").environ["PYSPARK_SUBMIT_ARGS"]
    assert cli.CLI_JVM_OPTS in args and "spark.ui.enabled=false" in args and args.endswith("pyspark-shell")
    log4j = args.split("-Dlog4j2.configurationFile=")[1].split("'")[0]
    assert "rootLogger.level = error" in open(urlparse(log4j).path).read()
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--master local[4] pyspark-shell")      # the user's own: kept
    cli._quick_local_spark()
    assert __import__("os").environ["PYSPARK_SUBMIT_ARGS"] == "--master local[4] pyspark-shell"


def test_the_command_line_prints_the_result_and_no_spark_start_up_notices(tmp_path):
    """What a user reads from ``nightshift try-source --engine spark``: the result on stdout,
    nothing on stderr (no log4j profile notice, no "Setting default log level", no hostname warning, no JVM
    incubator-module notice)."""
    import os
    import subprocess
    import sys

    log_file = tmp_path / "sample.log"
    log_file.write_text("\n".join(LINES) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_SUBMIT_ARGS"}
    env.pop("SPARK_LOCAL_IP", None)        # the hostname warning must be kept out by the CLI itself
    proc = subprocess.run([sys.executable, "-m", "nightshift.cli", "try-source", "hdfs", str(log_file), "--show", "2",
                           "--engine", "spark"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"{log_file}: 4 lines, 3 parsed, 1 quarantined" in proc.stdout
    assert "       2  QUARANTINED (format_mismatch: no whitespace after <Level>)" in proc.stdout
    assert proc.stderr == ""
