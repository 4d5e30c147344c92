"""The durable promotion log: every move of the ``champion`` alias, append-only.

MLflow keeps no alias history, so Nightshift records one: a JSON-lines file per registered model
in the lake (``<root>/promotions/<model>.jsonl``), which survives the MLflow server and can be
listed from the command line (``nightshift promotions``) and the Airflow UI (Nightshift plugin).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
from pathlib import Path
from typing import Any

FIELDS = ("time", "model_name", "action", "from_version", "to_version", "decided_by", "mlflow_run_id",
          "day", "metrics", "reason")


def log_path(data_root: Path, model_name: str) -> Path:
    return Path(data_root) / "promotions" / f"{model_name}.jsonl"


def append(data_root: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Append one entry (``time`` is filled in, UTC); returns the entry as written."""
    missing = set(FIELDS) - {"time"} - set(entry)
    if missing:
        raise ValueError(f"promotion log entry lacks {sorted(missing)}")
    record = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **entry}
    path = log_path(data_root, entry["model_name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        fh.flush()
    return record


def read(data_root: Path, model_name: str) -> list[dict[str, Any]]:
    """All entries, oldest first (an absent log is an empty history)."""
    path = log_path(data_root, model_name)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def render(entries: list[dict[str, Any]]) -> str:
    """A plain-text table of the log, newest last."""
    if not entries:
        return "no alias moves recorded"
    rows = [("time", "action", "from", "to", "decided by", "day", "reason")]
    for e in entries:
        rows.append((e["time"], e["action"], str(e["from_version"] or "-"), str(e["to_version"]),
                     str(e["decided_by"]), str(e.get("day") or "-"), e["reason"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows)
