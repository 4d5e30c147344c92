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
    assert (rows[1]["status"], rows[1]["reason"]) == ("quarantined", "format_mismatch")
    assert "3 parsed, 1 quarantined" in printed.getvalue()
    assert not any(p.name.startswith("_staging") for p in tmp_path.iterdir())   # the lake is not touched
