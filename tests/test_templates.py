"""Tests for the persisted template store (nightshift.templates)."""

from __future__ import annotations

import csv
import json
import logging
import random
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from nightshift.templates import TemplateStore

LOGHUB = Path(__file__).parent / "fixtures" / "loghub"

HDFS_MASKS = [
    (r"blk_-?\d+", "blk_<*>"),
    (r"/?(\d{1,3}\.){3}\d{1,3}(:\d+)?", "<*>"),
    (r"(?<![A-Za-z0-9_])-?\d+(?![A-Za-z0-9_])", "<*>"),
]
BGL_MASKS = [
    (r"core\.\d+", "core.<*>"),
    (r"/?(\d{1,3}\.){3}\d{1,3}(:\d+)?", "<*>"),
    (r"0x[0-9a-fA-F]+", "<*>"),
    (r"(?<![A-Za-z0-9_])-?\d+(?![A-Za-z0-9_])", "<*>"),
]
PARAMS = {"depth": 4, "similarity_threshold": 0.5, "max_children": 100}


def _masked_by_day(
    name: str, masks: list[tuple[str, str]], day_of: Callable[[dict[str, str]], str]
) -> dict[str, list[str]]:
    """Masked messages of a Loghub sample grouped by ``YYYY-MM-DD`` day, days ascending."""
    with (LOGHUB / f"{name}_2k.log_structured.csv").open(newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda row: int(row["LineId"]))
    days: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        message = row["Content"]
        for regex, replacement in masks:
            message = re.sub(regex, replacement, message)
        days[day_of(row)].append(message)
    return dict(sorted(days.items()))


@pytest.fixture(scope="module")
def hdfs_days() -> dict[str, list[str]]:
    """HDFS sample split by its Date column (081109, 081110, 081111)."""
    def day_of(row: dict[str, str]) -> str:
        date = row["Date"]
        return f"20{date[:2]}-{date[2:4]}-{date[4:]}"

    return _masked_by_day("HDFS", HDFS_MASKS, day_of)


@pytest.fixture(scope="module")
def bgl_days() -> dict[str, list[str]]:
    """BGL sample split by its Date column (2005.06.03 ... ), dozens of days."""
    return _masked_by_day("BGL", BGL_MASKS, lambda r: r["Date"].replace(".", "-"))


def test_missing_file_gives_empty_store(tmp_path: Path) -> None:
    store = TemplateStore.load(tmp_path / "store.json", **PARAMS)
    assert store.version == 0
    assert store.templates() == {}
    assert store.history == []
    assert store.miner.parameters() == PARAMS
    assert not (tmp_path / "store.json").exists()


def test_assign_maps_every_distinct_message(tmp_path: Path) -> None:
    store = TemplateStore.load(tmp_path / "store.json", **PARAMS)
    messages = ["disk <*> full", "disk <*> full", "user <*> logged in", "user <*> logged out"]
    assigned = store.assign(messages, "2024-01-01")
    assert set(assigned) == set(messages)
    assert assigned["user <*> logged in"] == assigned["user <*> logged out"]
    assert sorted(set(assigned.values())) == store.new_template_ids("2024-01-01") == [1, 2]
    assert store.templates()[assigned["user <*> logged in"]] == "user <*> logged <*>"
    with pytest.raises(ValueError):
        store.assign(messages, "20240101")


def test_assign_ignores_input_order(tmp_path: Path, hdfs_days: dict[str, list[str]]) -> None:
    messages = [m for day in hdfs_days.values() for m in day]
    shuffled = list(messages)
    random.Random(7).shuffle(shuffled)
    first = TemplateStore.load(tmp_path / "a.json", **PARAMS)
    second = TemplateStore.load(tmp_path / "b.json", **PARAMS)
    assert first.assign(messages, "2024-01-01") == second.assign(shuffled, "2024-01-01")
    assert first.to_dict() == second.to_dict()


@pytest.mark.parametrize("source", ["hdfs", "bgl"])
def test_rerun_of_a_day_is_stable(
    tmp_path: Path, source: str, hdfs_days: dict[str, list[str]], bgl_days: dict[str, list[str]]
) -> None:
    days = hdfs_days if source == "hdfs" else bgl_days
    messages = [m for day in days.values() for m in day]
    store = TemplateStore.load(tmp_path / "store.json", **PARAMS)
    assigned = store.assign(messages, "2024-01-01")
    state = store.to_dict()
    new_ids = store.new_template_ids("2024-01-01")
    assert new_ids == sorted(store.templates())
    assert store.assign(reversed(messages), "2024-01-01") == assigned
    assert store.to_dict() == state  # nothing learned, nothing added
    assert store.new_template_ids("2024-01-01") == new_ids


@pytest.mark.parametrize("source", ["hdfs", "bgl"])
def test_ids_never_renumbered_across_days(
    tmp_path: Path, source: str, hdfs_days: dict[str, list[str]], bgl_days: dict[str, list[str]]
) -> None:
    days = hdfs_days if source == "hdfs" else bgl_days
    path = tmp_path / "store.json"
    store = TemplateStore.load(path, **PARAMS)
    first_day, *later_days = days
    first = store.assign(days[first_day], first_day)
    first_templates = store.templates()
    store.save(path)
    for day in later_days:
        store = TemplateStore.load(path, **PARAMS)
        store.assign(days[day], day)
        store.save(path)
    store = TemplateStore.load(path, **PARAMS)
    templates = store.templates()
    assert len(templates) > len(first_templates)  # later days added templates...
    for template_id, template in first_templates.items():  # ...without renumbering old ones
        old, new = template.split(), templates[template_id].split()
        assert len(old) == len(new)
        assert all(n == o or n == "<*>" for o, n in zip(old, new))
    # re-running the first day (or any day) learns nothing and keeps its ids
    state = store.to_dict()
    assert store.assign(days[first_day], first_day) == first
    for day, messages in days.items():
        assigned = store.assign(messages, day)
        assert set(assigned.values()) <= set(templates)
    assert store.to_dict() == state
    # every id is attributed to the day that created it
    attributed = [i for day in days for i in store.new_template_ids(day)]
    assert sorted(attributed) == sorted(templates)
    assert store.new_template_ids(first_day) == sorted(first_templates)


def test_versions_and_history(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    store = TemplateStore.load(path, **PARAMS)
    store.assign(["disk <*> full", "fan <*> failed"], "2024-01-01")
    assert store.version == 0  # versions are made by saves
    store.save(path)
    assert store.version == 1
    store.assign(["disk <*> full"], "2024-01-01")  # re-run: nothing new
    store.save(path)
    assert store.version == 1
    store.assign(["disk <*> full", "power supply <*> lost"], "2024-01-02")
    store.save(path)
    assert store.version == 2
    assert store.history == [
        {"version": 1, "day": "2024-01-01", "added": [1, 2]},
        {"version": 2, "day": "2024-01-02", "added": [3]},
    ]
    assert store.new_template_ids("2024-01-01") == [1, 2]
    assert store.new_template_ids("2024-01-02") == [3]
    assert store.new_template_ids("2024-01-03") == []
    assert store.first_seen(3) == "2024-01-02"


def test_persistence_through_save_and_load(tmp_path: Path, bgl_days: dict[str, list[str]]) -> None:
    path = tmp_path / "templates" / "source=bgl" / "store.json"
    days = list(bgl_days)
    half = len(days) // 2
    store = TemplateStore.load(path, **PARAMS)
    for day in days[:half]:
        store.assign(bgl_days[day], day)
    store.save(path)
    saved = json.loads(path.read_text())
    assert saved["version"] == store.version == len(store.history)

    loaded = TemplateStore.load(path, **PARAMS)
    assert loaded.to_dict() == store.to_dict()
    assert loaded.version == store.version
    assert loaded.templates() == store.templates()
    for day in days[:half]:
        assert loaded.new_template_ids(day) == store.new_template_ids(day)
    # the loaded store continues exactly like the one kept in memory
    for day in days[half:]:
        assert loaded.assign(bgl_days[day], day) == store.assign(bgl_days[day], day)
    loaded.save(path)
    store.save(tmp_path / "copy.json")
    assert path.read_text() == (tmp_path / "copy.json").read_text()


def test_stored_parameters_win(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "store.json"
    store = TemplateStore.load(path, depth=5, similarity_threshold=0.4, max_children=50)
    store.assign(["a b c"], "2024-01-01")
    store.save(path)
    with caplog.at_level(logging.WARNING, logger="nightshift.templates"):
        loaded = TemplateStore.load(path, **PARAMS)
    stored = {"depth": 5, "similarity_threshold": 0.4, "max_children": 50}
    assert loaded.miner.parameters() == stored
    assert any("ignoring the requested" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nightshift.templates"):
        TemplateStore.load(path, depth=5, similarity_threshold=0.4, max_children=50)
    assert not caplog.records


def test_rejects_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError):
        TemplateStore.load(path, **PARAMS)


def test_check_assignments_refuses_ids_the_store_does_not_have_or_that_mean_something_else(tmp_path):
    from nightshift.templates import TemplateStore, TemplateStoreConflict

    store = TemplateStore.load(tmp_path / "store.json")
    ids = store.assign(["Disk quota exceeded for <*>", "Checksum mismatch at <*>"], "2026-11-01")
    store.check_assignments(ids)
    with pytest.raises(TemplateStoreConflict):
        store.check_assignments({"Disk quota exceeded for <*>": ids["Checksum mismatch at <*>"]})
    with pytest.raises(TemplateStoreConflict):
        store.check_assignments({"Disk quota exceeded for <*>": 99})


def test_a_save_that_only_generalises_templates_is_accepted(tmp_path):
    from nightshift.templates import TemplateStore

    path = tmp_path / "store.json"
    first = TemplateStore.load(path)
    first.assign(["PacketResponder 1 for block blk_<*> terminating"], "2026-11-01")
    first.save(path)
    later = TemplateStore.load(path)
    later.assign(["PacketResponder 2 for block blk_<*> terminating"], "2026-11-02")
    later.save(path)                     # id 1 generalised (1 -> <*>): same meaning, accepted
    assert TemplateStore.load(path).templates()[1] == "PacketResponder <*> for block blk_<*> terminating"
