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

Replacing partitions (:meth:`Lake.commit`): a job writes its output into a fresh staging
directory under ``<root>/_staging`` (same file system as the partitions), then swaps it in with
renames: the old partition is renamed aside to a hidden sibling (``.dt=<day>.old-<id>``), the staged
directory is renamed into place, and the aside copy is removed. A job that replaces several
partitions together (ingest: parsed + quarantine) first writes a journal
(``<root>/_journal/*.json``, atomic) listing the swaps, performs them and deletes the journal. A
crash leaves the journal behind; :meth:`Lake.recover` (called by every job before it reads or
writes a day) rolls it forward, so a day is either entirely old or entirely new. Readers never see
a half-written partition: data only appears by rename, and listings skip hidden names.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

log = logging.getLogger("nightshift.lake")

JOURNAL_FORMAT = "nightshift.lake-journal/1"
# files inside a partition whose content (not just size) is part of its fingerprint
FINGERPRINT_CONTENT_FILES = ("_template_ids.json",)


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
        # aside copies of replaced partitions are hidden (".dt=...") and never listed
        return sorted(p.name[3:] for p in base.iterdir() if p.is_dir() and p.name.startswith("dt=")
                      and not p.name.startswith((".", "_")))

    # -- staging, swaps and the roll-forward journal ------------------------------------------

    @property
    def journal_dir(self) -> Path:
        return self.root / "_journal"

    def new_stage(self, step: str, source: str, day: str) -> Path:
        """A fresh, empty, uniquely named directory under :meth:`staging_dir` (same file system
        as the partitions, so it can be renamed into place). Nothing in it exists yet."""
        path = self.staging_dir(step, source, day) / uuid.uuid4().hex
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _lock(self, source: str, day: str):
        from nightshift.locks import exclusive

        settings = SimpleNamespace(data_root=self.root, lock_url=os.environ.get("NIGHTSHIFT_LOCK_URL") or None)
        return exclusive(settings, f"lake:{source}:{check_day(day)}")

    def commit(self, step: str, source: str, day: str, swaps: list[tuple[Path, Path]]) -> None:
        """Replace each ``target`` partition by its ``staged`` directory, all or nothing.

        ``swaps`` is ``[(staged dir, target partition dir)]``; staged dirs must be under the lake
        root (see :meth:`new_stage`). A journal is written first, so a crash part-way is finished
        by the next :meth:`recover` of this day (roll forward): readers see the day entirely old
        or entirely new. Journals an earlier crash left for the day are finished first (under the
        same lock), so an old journal can never be rolled forward over newer data.
        Fault points (tests): ``<step>:before_swap``, ``<step>:between_swaps``.
        """
        from nightshift import faults

        entries = []
        for staged, target in swaps:
            staged, target = Path(staged), Path(target)
            if not staged.is_dir():
                raise FileNotFoundError(f"nothing staged at {staged}")
            entries.append({"staged": self._relative(staged), "target": self._relative(target)})
        name = f"{time.time_ns():020d}-{step}-source={source}-dt={check_day(day)}-{uuid.uuid4().hex[:8]}.json"
        journal = self.journal_dir / name
        with self._lock(source, day):
            for path, payload in self._journals(source, day):
                self._finish(path, payload)
            write_json_atomic(journal, {"format": JOURNAL_FORMAT, "step": step, "source": source, "day": day,
                                        "swaps": entries})
            faults.point(f"{step}:before_swap")
            for i, entry in enumerate(entries):
                if i:
                    faults.point(f"{step}:between_swaps")
                self._swap(entry)
            journal.unlink()
        for staged, _ in swaps:           # drop the now empty staging directories above each stage
            self._remove_empty_parents(Path(staged).parent)

    def _remove_empty_parents(self, path: Path) -> None:
        staging = self.root / "_staging"
        while path != staging and staging in path.parents:
            try:
                path.rmdir()
            except OSError:     # not empty (another run's stage, or more of ours): keep it
                return
            path = path.parent

    def recover(self, source: str | None = None, day: str | None = None) -> list[str]:
        """Finish every journal a crashed commit left for ``source``/``day`` (all when ``None``),
        oldest first. Returns the journals finished (file names). Cheap when there are none (one
        directory listing), so jobs call it before they read or write a day.
        """
        finished = []
        for path, payload in self._journals(source, day):
            with self._lock(payload["source"], payload["day"]):
                if self._finish(path, payload):
                    finished.append(path.name)
        return finished

    def _journals(self, source: str | None, day: str | None) -> list[tuple[Path, dict]]:
        if not self.journal_dir.is_dir():
            return []
        found = []
        for path in sorted(self.journal_dir.glob("*.json")):   # names start with the commit time
            try:
                payload = json.loads(path.read_text())
            except FileNotFoundError:
                continue   # its commit finished meanwhile (journals are written atomically: never torn)
            if payload.get("format") != JOURNAL_FORMAT:
                raise ValueError(f"{path}: unknown journal format {payload.get('format')!r}")
            if (source is None or payload["source"] == source) and (day is None or payload["day"] == day):
                found.append((path, payload))
        return found

    def _finish(self, path: Path, payload: dict) -> bool:
        """Roll one journal forward (caller holds the day's lock). False if already finished."""
        if not path.exists():
            return False
        for entry in payload["swaps"]:
            self._swap(entry)
        path.unlink()
        log.warning("finished an interrupted %s commit of %s %s (%s)", payload["step"], payload["source"],
                    payload["day"], path.name)
        return True

    def _relative(self, path: Path) -> str:
        root = self.root.resolve()
        resolved = path.parent.resolve() / path.name
        try:
            return str(resolved.relative_to(root))
        except ValueError:
            raise ValueError(f"{path} is not under the lake root {root}: cannot swap it in by rename") from None

    def _swap(self, entry: dict[str, str]) -> None:
        """One idempotent swap (safe to repeat after a crash at any point of it)."""
        staged, target = self.root / entry["staged"], self.root / entry["target"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if staged.exists():          # not done yet (or done up to "old partition renamed aside")
            if target.exists():
                os.rename(target, target.parent / f".{target.name}.old-{uuid.uuid4().hex}")
            os.rename(staged, target)
        elif not target.exists():
            raise FileNotFoundError(f"journal swap {entry}: neither the staged dir nor the target exists")
        for aside in target.parent.glob(f".{target.name}.old-*"):
            shutil.rmtree(aside, ignore_errors=True)

    def write_report(self, source: str, day: str, step: str, report: dict[str, Any]) -> Path:
        path = self.report_file(source, day, step)
        write_json_atomic(path, report)
        return path

    def read_report(self, source: str, day: str, step: str) -> dict[str, Any] | None:
        path = self.report_file(source, day, step)
        if not path.exists():
            return None
        return json.loads(path.read_text())

    def registering_decision(self, source: str, version) -> dict[str, Any] | None:
        """The decision report of the night that registered model ``version`` (its challenger),
        with that night's ``day``, the newest first; None when no report names it."""
        for d in reversed(self.days_with("reports", source)):
            decision = self.read_report(source, d, "decision") or {}
            if version is not None and str(decision.get("challenger_version")) == str(version):
                return {**decision, "day": d}
        return None


def report_mtime(lake: "Lake", source: str, day: str, step: str) -> float | None:
    """When a report was last written (epoch seconds), or None when there is none."""
    path = lake.report_file(source, day, step)
    return path.stat().st_mtime if path.exists() else None


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


def partition_fingerprint(*dirs: Path | str) -> str:
    """A cheap identity of the data in one or more partition directories.

    sha256 over, for each directory in order, the sorted ``(name, size)`` of its data files (Spark
    part-file names carry a per-write UUID, so every rewrite changes it) plus the content of the
    small side files that change the meaning of the lines (:data:`FINGERPRINT_CONTENT_FILES`, e.g.
    the template ids). Hidden files (``.crc`` etc.) and Spark markers are left out. A missing
    directory hashes as ``missing``. No data file is read. Directory names do not count, so the
    fingerprint of a staged directory equals that of the partition it is renamed to.
    """
    digest = hashlib.sha256()
    for index, d in enumerate(dirs):
        d = Path(d)
        digest.update(f"dir {index}\n".encode())   # by position, not name: a staged dir hashes as its target
        if not d.is_dir():
            digest.update(b"missing\n")
            continue
        for entry in sorted(os.scandir(d), key=lambda e: e.name):
            if entry.name in FINGERPRINT_CONTENT_FILES:
                digest.update(f"{entry.name} {hashlib.sha256(Path(entry.path).read_bytes()).hexdigest()}\n".encode())
            elif not entry.name.startswith((".", "_")):
                digest.update(f"{entry.name} {entry.stat(follow_symlinks=False).st_size}\n".encode())
    return digest.hexdigest()
