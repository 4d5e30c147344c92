"""The durable promotion log: every move of the ``champion`` alias, append-only, write-ahead.

MLflow keeps no alias history, so Nightshift records one: a JSON-lines file per registered model
in the lake (``<root>/promotions/<model>.jsonl``), which survives the MLflow server and can be
listed from the command line (``nightshift promotions``) and the Airflow UI (Nightshift plugin).

A move is written ahead: ``nightshift.registry.move_champion`` appends it with
``"state": "pending"`` (and a ``move_id``) *before* it touches the aliases, and appends a
``"state": "committed"`` line with the same ``move_id`` (a full copy of the move) after both
aliases are written. A pending move with no commit is an interrupted one; the registry module
reconciles it against the aliases (see ``nightshift.registry.reconcile``). Entries written before
the write-ahead scheme have no ``state`` and count as committed.

Readers (:func:`view`, :func:`read`) show committed moves only. A line that is not valid JSON
(a torn write) is skipped and reported in ``LogView.problems``, never fatal; before each append a
missing final newline is written first, so a new entry never joins a torn line.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIELDS = ("time", "model_name", "action", "from_version", "to_version", "decided_by", "mlflow_run_id",
          "day", "metrics", "reason")
PENDING, COMMITTED, ABORTED = "pending", "committed", "aborted"
log = logging.getLogger("nightshift.promotion_log")


@dataclass
class LogView:
    """The log as readers see it: committed moves (oldest first), interrupted moves, problems."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def log_path(data_root: Path, model_name: str) -> Path:
    return Path(data_root) / "promotions" / f"{model_name}.jsonl"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_dir(folder: Path) -> None:
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    _fsync_dir(folder.parent)


def append(data_root: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Append one entry (``time`` is filled in, UTC), flushed and fsynced; returns it as written."""
    missing = set(FIELDS) - {"time"} - set(entry)
    if missing:
        raise ValueError(f"promotion log entry lacks {sorted(missing)}")
    record = {**entry, "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    append_json_line(log_path(data_root, entry["model_name"]), record)
    return record


def append_json_line(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line to ``path``: under an exclusive lock (concurrent writers
    never interleave), after a newline if the last line is torn, flushed and fsynced."""
    _ensure_dir(path.parent)
    created = not path.exists()
    with open(path, "ab") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        prefix = b""
        if fh.seek(0, os.SEEK_END) > 0:
            with open(path, "rb") as rd:
                rd.seek(-1, os.SEEK_END)
                if rd.read(1) != b"\n":
                    prefix = b"\n"          # the last line is torn: never glue this entry onto it
                    log.warning("%s does not end with a newline (torn write?); starting a new line", path)
        fh.write(prefix + (json.dumps(record, sort_keys=True, default=str) + "\n").encode())
        fh.flush()
        os.fsync(fh.fileno())
    if created:
        _fsync_dir(path.parent)


def read_lines(data_root: Path, model_name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every parseable entry in file order, and a problem for each line that is not."""
    path = log_path(data_root, model_name)
    if not path.exists():
        return [], []
    entries, problems = [], []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        last = number == len(lines)          # the text after the final newline (if any)
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            what = "the last line" if last else f"line {number}"
            problems.append(f"{path}: {what} is not a valid entry ({exc.__class__.__name__}: a torn write?); skipped")
            log.warning(problems[-1])
            continue
        if last:
            problems.append(f"{path}: the last line has no final newline (an interrupted write?); it parses and is kept")
            log.warning(problems[-1])
        entries.append(entry)
    return entries, problems


def view(data_root: Path, model_name: str) -> LogView:
    """Committed moves (and old entries without a state), oldest first; pending moves without a
    commit; problems (torn lines, aborted moves)."""
    lines, problems = read_lines(data_root, model_name)
    closed = {e.get("move_id") for e in lines if e.get("state") in (COMMITTED, ABORTED)}
    out = LogView(problems=problems)
    for e in lines:
        state = e.get("state")
        if state is None or state == COMMITTED:
            out.entries.append(e)
        elif state == PENDING and e.get("move_id") not in closed:
            out.pending.append(e)
        elif state == ABORTED:
            out.problems.append(f"move {e.get('move_id')} (v{e.get('from_version')} -> v{e.get('to_version')}) was "
                                f"not completed: {e.get('note')}")
    return out


def read(data_root: Path, model_name: str) -> list[dict[str, Any]]:
    """Committed moves, oldest first (an absent log is an empty history). See :func:`view`."""
    return view(data_root, model_name).entries


def render(entries: list[dict[str, Any]], problems: list[str] | None = None) -> str:
    """A plain-text table of the log, newest last; problems (if any) after it."""
    if not entries:
        text = "no alias moves recorded"
    else:
        rows = [("time", "action", "from", "to", "decided by", "day", "reason")]
        for e in entries:
            reason = e["reason"] + (f" [{e['note']}]" if e.get("note") else "")
            rows.append((e["time"], e["action"], str(e["from_version"] or "-"), str(e["to_version"]),
                         str(e["decided_by"]), str(e.get("day") or "-"), reason))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        text = "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows)
    if problems:
        text += "\n\nproblems:\n" + "\n".join(f"  - {p}" for p in problems)
    return text
