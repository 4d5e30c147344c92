"""Tests for the synthetic Blue Gene/L log generator (small volumes, tmp_path only)."""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections import defaultdict
from pathlib import Path

import pytest

from nightshift_datagen.bgl import (
    BglScenario,
    LOG_FILE_NAME,
    SOURCE,
    generate,
    generate_day,
    main,
    render_day,
)
from nightshift_datagen.hdfs import DaySummary
from nightshift.lake import Lake

# the brief's line regex, with Type RAS|NULL: the real log writes NULL for DISCOVERY / HARDWARE / MONITOR
LINE_RE = re.compile(
    r"^(\S+) (\d+) (\d{4}\.\d{2}\.\d{2}) (\S+) (\d{4}-\d{2}-\d{2}-\d{2}\.\d{2}\.\d{2}\.\d{6}) (\S+)"
    r" (RAS|NULL) (\S+) (\S+) (.*)$"
)
# Type is RAS for these components and NULL for DISCOVERY / HARDWARE / MONITOR, as in the real log
TYPE_OF = {
    "KERNEL": "RAS", "APP": "RAS", "MMCS": "RAS", "LINKCARD": "RAS",
    "DISCOVERY": "NULL", "HARDWARE": "NULL", "MONITOR": "NULL",
}  # fmt: skip
LEVELS = {"INFO", "WARNING", "SEVERE", "ERROR", "FATAL", "FAILURE"}
V1_ALERTS = {
    "KERNDTLB", "KERNSTOR", "APPSEV", "APPREAD", "APPRES", "APPTO", "APPOUT", "APPCHILD",
    "KERNMNTF", "KERNTERM", "KERNREC", "KERNRTSP",
}  # fmt: skip
NODE_RE = re.compile(
    r"^(R[0-7]{2}-M[01]-N[0-9A-F]-[CI]:J\d{2}-U[01]1|R[0-7]{2}-M[01]-N[0-9A-F]|R[0-7]{2}-M[01]-L[0-3](-U18-[A-D])?"
    r"|R[0-7]{2}-M[01]|NULL|UNKNOWN_LOCATION)$"
)
MASK = re.compile(r"0x[0-9a-fA-F]+|\b[0-9a-fA-F]{8}\b|[0-9A-F]{2}(:[0-9A-F]{2}){11}|\d+")
LOGHUB = Path(__file__).parent / "fixtures" / "loghub"

BASE = BglScenario(start_day="2005-06-03", days=1, seed=7, lines_per_day=3000, nodes=256, anomaly_rate=0.05)


def _log(root: Path, day: str) -> bytes:
    return (Lake(root).raw_dir(SOURCE, day) / LOG_FILE_NAME).read_bytes()


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8", errors="replace").split("\n")


def _parsed(data: bytes) -> list[re.Match[str]]:
    assert data.endswith(b"\n")
    lines = _lines(data)[:-1]
    matches = [LINE_RE.match(line) for line in lines]
    bad = [line for line, m in zip(lines, matches) if m is None]
    assert not bad, bad[:3]
    return matches  # type: ignore[return-value]


def _windows(matches: list[re.Match[str]]) -> dict[tuple[str, int], list[re.Match[str]]]:
    out: dict[tuple[str, int], list[re.Match[str]]] = defaultdict(list)
    for m in matches:
        out[(m[4], int(m[2]) // 3600)].append(m)
    return out


def _templates(matches: list[re.Match[str]]) -> set[tuple[str, str, str]]:
    return {(m[8], m[9], MASK.sub("<*>", m[10])) for m in matches}


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----- scenario


def test_scenario_validates_and_names_days() -> None:
    sc = BglScenario(start_day="2005-12-30", days=3, drift_day=1, corrupt_day=2)
    assert [sc.day(i) for i in range(3)] == ["2005-12-30", "2005-12-31", "2006-01-01"]
    assert [sc.is_drifted(i) for i in range(3)] == [False, True, True]
    assert [sc.is_corrupt(i) for i in range(3)] == [False, False, True]
    for bad in (
        {"start_day": "2005-13-01"},
        {"start_day": "2005-06-03", "days": 0},
        {"start_day": "2005-06-03", "lines_per_day": 0},
        {"start_day": "2005-06-03", "nodes": 0},
        {"start_day": "2005-06-03", "anomaly_rate": 0.9},
        {"start_day": "2005-06-03", "anomaly_rate": -0.1},
        {"start_day": "2005-06-03", "corrupt_day": -1},
    ):
        with pytest.raises(ValueError):
            BglScenario(**bad)
    with pytest.raises(ValueError):
        render_day(sc, 3)


# ----- determinism


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    sc = BglScenario(start_day="2005-06-03", days=2, seed=7, lines_per_day=2000, drift_day=1, corrupt_day=1)
    generate(tmp_path / "a", sc)
    generate(tmp_path / "b", sc)
    a, b = _all_files(tmp_path / "a"), _all_files(tmp_path / "b")
    assert sorted(a) == [f"raw/source=bgl/dt={d}/bgl.log" for d in ("2005-06-03", "2005-06-04")]
    assert a == b
    other = BglScenario(start_day="2005-06-03", days=2, seed=8, lines_per_day=2000, drift_day=1, corrupt_day=1)
    generate(tmp_path / "c", other)
    assert _all_files(tmp_path / "c") != a


def test_days_are_independent(tmp_path: Path) -> None:
    long = BglScenario(start_day="2005-06-03", days=3, seed=7, lines_per_day=1500)
    generate(tmp_path / "long", long)
    generate_day(tmp_path / "short", BglScenario(start_day="2005-06-03", days=3, seed=7, lines_per_day=1500), 2)
    assert _log(tmp_path / "long", "2005-06-05") == _log(tmp_path / "short", "2005-06-05")
    # a drift or corruption later in the run does not touch the earlier days
    later = BglScenario(start_day="2005-06-03", days=3, seed=7, lines_per_day=1500, drift_day=2, corrupt_day=1)
    generate(tmp_path / "drift", later)
    assert _log(tmp_path / "long", "2005-06-03") == _log(tmp_path / "drift", "2005-06-03")
    assert _log(tmp_path / "long", "2005-06-04") != _log(tmp_path / "drift", "2005-06-04")
    assert _log(tmp_path / "long", "2005-06-03") != _log(tmp_path / "long", "2005-06-04")


# ----- format


def test_normal_day_lines_are_well_formed(tmp_path: Path) -> None:
    summary = generate_day(tmp_path, BASE, 0)
    matches = _parsed(_log(tmp_path, "2005-06-03"))
    assert summary == DaySummary(
        day="2005-06-03", index=0, lines=len(matches), blocks=summary.blocks, anomalies=summary.anomalies,
        corrupted_lines=0, drift=False,
    )  # fmt: skip
    assert 2700 <= len(matches) <= 3600
    day_start = dt.datetime(2005, 6, 3, tzinfo=dt.timezone.utc)
    previous = None
    for m in matches:
        label, ts, date, node, stamp, repeat, typ, component, level, content = m.groups()
        assert repeat == node
        assert NODE_RE.match(node), node
        assert date == "2005.06.03"
        when = dt.datetime.strptime(stamp, "%Y-%m-%d-%H.%M.%S.%f").replace(tzinfo=dt.timezone.utc)
        assert int(ts) == int(when.timestamp())
        assert day_start <= when < day_start + dt.timedelta(days=1)
        assert previous is None or when >= previous  # sorted by time
        previous = when
        assert TYPE_OF[component] == typ
        assert level in LEVELS
        assert content
        if label != "-":  # alerts are fatal kernel / app events in the old firmware
            assert label in V1_ALERTS
            assert level == "FATAL" and component in ("KERNEL", "APP")
    seen = {(m[8], m[9]) for m in matches}
    assert {c for c, _ in seen} == set(TYPE_OF)
    assert {lv for _, lv in seen} == LEVELS
    nodes = {m[4] for m in matches}
    assert any("-C:J" in n for n in nodes) and any("-I:J18-" in n for n in nodes)
    assert {"NULL", "UNKNOWN_LOCATION"} <= nodes
    assert any(re.match(r"^R\d{2}-M\d-L\d-U18-[A-D]$", n) for n in nodes)  # link cards
    assert any(re.match(r"^R\d{2}-M\d-N[0-9A-F]$", n) for n in nodes)  # node cards
    assert any(re.match(r"^generating core\.\d+$", m[10]) for m in matches)
    assert any(re.match(r"^CE sym \d+, at 0x[0-9a-f]{8}, mask 0x[0-9a-f]{2}$", m[10]) for m in matches)


def test_messages_follow_the_real_bgl_templates() -> None:
    """Before the drift almost every message fits one of Loghub's ground-truth BGL templates."""
    with open(LOGHUB / "BGL_2k.log_structured.csv", newline="") as fh:
        templates = sorted({row["EventTemplate"] for row in csv.DictReader(fh)})
    patterns = ["^" + ".*?".join(re.escape(part) for part in t.split("<*>")) + "$" for t in templates]
    any_template = re.compile("|".join(f"(?:{p})" for p in patterns))
    contents = [line.split(" ", 9)[9] for line in render_day(BASE, 0).lines]
    share = sum(1 for c in contents if any_template.match(c)) / len(contents)
    assert share >= 0.9
    covered = sum(1 for p in patterns if any(re.match(p, c) for c in contents))
    assert covered >= 80


# ----- labels and sessions


@pytest.mark.parametrize("rate", [0.02, 0.05, 0.10])
def test_anomalous_window_rate_follows_the_knob(rate: float) -> None:
    sc = BglScenario(start_day="2005-06-03", days=1, seed=3, lines_per_day=8000, anomaly_rate=rate)
    rendered = render_day(sc, 0)
    matches = [LINE_RE.match(line) for line in rendered.lines]
    assert all(matches)
    windows = _windows(matches)  # type: ignore[arg-type]
    anomalous = [k for k, ms in windows.items() if any(m[1] != "-" for m in ms)]
    assert rendered.summary.blocks == len(windows)
    assert rendered.summary.anomalies == len(anomalous)
    assert rate * 0.8 <= len(anomalous) / len(windows) <= rate * 1.2


def test_zero_anomaly_rate_has_no_alerts() -> None:
    rendered = render_day(BglScenario(start_day="2005-06-03", seed=1, lines_per_day=2000, anomaly_rate=0.0), 0)
    assert all(line.startswith("- ") for line in rendered.lines)
    assert rendered.summary.anomalies == 0


def test_alerts_come_in_bursts_and_levels_do_not_give_them_away(tmp_path: Path) -> None:
    generate_day(tmp_path, BglScenario(start_day="2005-06-03", seed=5, lines_per_day=6000), 0)
    matches = _parsed(_log(tmp_path, "2005-06-03"))
    windows = _windows(matches)
    anomalous = {k for k, ms in windows.items() if any(m[1] != "-" for m in ms)}
    labels = {m[1] for m in matches} - {"-"}
    assert {"KERNDTLB", "KERNSTOR", "APPSEV"} <= labels
    # a data TLB storm: one node repeating the alert, often over more than one hour
    storms = defaultdict(set)
    for m in matches:
        if m[1] == "KERNDTLB":
            storms[m[4]].add(int(m[2]) // 3600)
    assert any(len(hours) >= 2 for hours in storms.values())
    # FATAL lines with label "-" (register dumps, user errors) in normal windows
    normal_fatal = [k for k, ms in windows.items() if k not in anomalous and any(m[9] == "FATAL" for m in ms)]
    assert len(normal_fatal) > len(anomalous)
    # WARNING / SEVERE / ERROR / FAILURE lines that are not alerts
    assert all(m[1] == "-" for m in matches if m[9] in ("WARNING", "SEVERE", "ERROR"))
    assert any(m[1] == "-" and m[9] == "FAILURE" for m in matches)
    # some failures were preceded by warnings on the same node, in the same window
    warned = [k for k in anomalous if any(m[9] == "WARNING" for m in windows[k])]
    assert warned
    assert any(k not in anomalous for k, ms in windows.items() if any(m[9] == "WARNING" for m in ms))


# ----- drift and corruption


def test_drift_day_has_new_templates_and_alert_kinds() -> None:
    sc = BglScenario(start_day="2005-06-03", days=3, seed=7, lines_per_day=3000, drift_day=2)
    before = [render_day(sc, i) for i in (0, 1)]
    after = render_day(sc, 2)
    assert [r.summary.drift for r in (*before, after)] == [False, False, True]
    old = [[LINE_RE.match(line) for line in r.lines] for r in before]
    new = [LINE_RE.match(line) for line in after.lines]
    assert all(all(ms) for ms in old) and all(new)
    old_templates = _templates(old[0]) | _templates(old[1])  # type: ignore[arg-type]
    fresh = _templates(new) - old_templates  # type: ignore[arg-type]
    assert ("KERNEL", "INFO", "generating core file core.<*>") in fresh
    assert ("KERNEL", "INFO", "iar=<*> dear=<*>") in fresh
    # the old wording of the reworded templates is gone
    assert not any(m[10].startswith("generating core.") for m in new)  # type: ignore[index]
    old_labels = {m[1] for ms in old for m in ms}  # type: ignore[index]
    new_labels = {m[1] for m in new}  # type: ignore[index]
    fresh_labels = new_labels - old_labels
    assert len(fresh_labels) >= 3
    assert fresh_labels <= {"KERNTLBE", "KERNMC", "KERNPAN", "LINKDISC", "LINKIAP", "LINKPAP", "MONPOW", "MONILL"}


def test_corrupt_day_is_messy(tmp_path: Path) -> None:
    sc = BglScenario(start_day="2005-06-03", days=2, seed=7, lines_per_day=4000, corrupt_day=1)
    summaries = generate(tmp_path, sc)
    assert summaries[0].corrupted_lines == 0 and summaries[1].corrupted_lines > 0
    _parsed(_log(tmp_path, "2005-06-03"))  # the day before is clean
    data = _log(tmp_path, "2005-06-04")
    assert not data.endswith(b"\n")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    lines = _lines(data)
    bad = [line for line in lines if not LINE_RE.match(line)]
    assert len(bad) >= 10
    assert any(re.search(r" 2005-06-04T\d{2}:\d{2}:\d{2}\.\d{3}Z ", line) for line in bad)  # other timestamp format
    assert not LINE_RE.match(lines[-1])  # ends mid-line
    assert len([line for line in lines if LINE_RE.match(line)]) > 0.8 * len(lines)
    assert summaries[1].lines == len(lines)


# ----- writing


def test_regeneration_replaces_the_partition(tmp_path: Path) -> None:
    raw = Lake(tmp_path).raw_dir(SOURCE, "2005-06-03")
    raw.mkdir(parents=True)
    (raw / "stale.log").write_text("old\n")
    generate_day(tmp_path, BASE, 0)
    first = _log(tmp_path, "2005-06-03")
    assert sorted(p.name for p in raw.iterdir()) == [LOG_FILE_NAME]
    generate_day(tmp_path, BglScenario(start_day="2005-06-03", seed=99, lines_per_day=500), 0)
    assert _log(tmp_path, "2005-06-03") != first
    generate_day(tmp_path, BASE, 0)
    assert _log(tmp_path, "2005-06-03") == first
    assert sorted(p.name for p in raw.iterdir()) == [LOG_FILE_NAME]
    assert not Lake(tmp_path).labels_dir(SOURCE, "2005-06-03").exists()  # labels live in the lines


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "lake"
    argv = [
        "--root", str(root), "--start-day", "2005-06-03", "--days", "2", "--seed", "7", "--lines-per-day", "800",
        "--anomaly-rate", "0.05", "--drift-day", "1", "--corrupt-day", "1",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "windows=" in out[0] and "drift=yes" in out[1]
    assert (Lake(root).raw_dir(SOURCE, "2005-06-04") / LOG_FILE_NAME).exists()
    assert main(["--root", str(root), "--start-day", "2005-06-03", "--anomaly-rate", "2"]) == 2
