"""The data lake layout: every path the pipeline reads or writes is built here.

```
<root>/raw/source=<s>/dt=<day>/*.log[.gz]          raw log files as they land
<root>/labels/source=<s>/dt=<day>/labels.csv       session_id,label (arrives separately)
<root>/parsed/source=<s>/dt=<day>/                 parsed lines (Parquet)
<root>/quarantine/source=<s>/dt=<day>/             lines that could not be parsed, with a reason
<root>/features/source=<s>/dt=<day>/               one row per session (Parquet)
<root>/predictions/source=<s>/dt=<day>/            the champion's (and challenger's) scores per session
<root>/templates/source=<s>/store.json             the persisted template store (stable ids)
<root>/reports/source=<s>/dt=<day>/<step>.json     per-day reports: ingest, validation, training, decision
<root>/gx/                                         Great Expectations project (Data Docs under uncommitted/)
<root>/mlflow/                                     local MLflow store (mlflow.db, artifacts/)
```
A day is always a ``YYYY-MM-DD`` string; every write replaces exactly one ``dt=`` partition.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def check_day(day: str) -> str:
    """Return ``day`` if it is a valid ``YYYY-MM-DD`` date, else raise ``ValueError``."""
    try:
        parsed = _dt.date.fromisoformat(day)
    except (TypeError, ValueError):
        raise ValueError(f"day must be a YYYY-MM-DD date, got {day!r}") from None
    if parsed.isoformat() != day:
        raise ValueError(f"day must be a YYYY-MM-DD date, got {day!r}")
    return day


@dataclass(frozen=True)
class Lake:
    root: Path

    def _partition(self, area: str, source: str, day: str) -> Path:
        return self.root / area / f"source={source}" / f"dt={check_day(day)}"

    def raw_dir(self, source: str, day: str) -> Path:
        return self._partition("raw", source, day)

    def labels_dir(self, source: str, day: str) -> Path:
        return self._partition("labels", source, day)

    def labels_file(self, source: str, day: str) -> Path:
        return self.labels_dir(source, day) / "labels.csv"

    def parsed_dir(self, source: str, day: str) -> Path:
        return self._partition("parsed", source, day)

    def quarantine_dir(self, source: str, day: str) -> Path:
        return self._partition("quarantine", source, day)

    def features_dir(self, source: str, day: str) -> Path:
        return self._partition("features", source, day)

    def predictions_dir(self, source: str, day: str) -> Path:
        return self._partition("predictions", source, day)

    def reports_dir(self, source: str, day: str) -> Path:
        return self._partition("reports", source, day)

    def report_file(self, source: str, day: str, step: str) -> Path:
        return self.reports_dir(source, day) / f"{step}.json"

    def staging_dir(self, step: str, source: str, day: str) -> Path:
        """Scratch space of one job run for one day (removed when the job succeeds)."""
        return self.root / "_staging" / step / f"source={source}" / f"dt={check_day(day)}"

    def template_store_file(self, source: str) -> Path:
        return self.root / "templates" / f"source={source}" / "store.json"

    @property
    def gx_dir(self) -> Path:
        return self.root / "gx"

    def days_with(self, area: str, source: str) -> list[str]:
        """Sorted days that have a partition in ``area`` (e.g. ``"features"``) for ``source``."""
        base = self.root / area / f"source={source}"
        if not base.is_dir():
            return []
        return sorted(p.name[3:] for p in base.iterdir() if p.is_dir() and p.name.startswith("dt="))

    def write_report(self, source: str, day: str, step: str, report: dict[str, Any]) -> Path:
        path = self.report_file(source, day, step)
        write_json_atomic(path, report)
        return path

    def read_report(self, source: str, day: str, step: str) -> dict[str, Any] | None:
        path = self.report_file(source, day, step)
        if not path.exists():
            return None
        return json.loads(path.read_text())


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` via a temp file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
