"""Retraining requests: what the ``nightshift_retraining`` DAG does with them.

The scoring DAG asks for a retraining when a night's predictions are suspect (prediction drift or
input drift, ``flag_suspect_predictions``): an event on the Asset ``nightshift_retraining_requested``
whose ``extra`` is ``{"requests": [{"source", "day", "version", "reasons"}]}`` (``version``: the
champion whose predictions were suspect). Those predictions cannot be judged before the day's
labels arrive, so for each request the DAG

1. **waits** (a sensor in ``reschedule`` mode: no worker slot held between looks) until the day is
   labelled, exactly as training decides it (``nightshift.training``: a labels file that passed
   validation, or labels carried by the lines), and no nightly run is queued or running (the
   night that is training right now may use the day's labels, or promote another champion);
   how often it looks and for how long: ``retraining`` in ``config/drift.yaml``
   (:func:`load_label_wait`); labels that do not come in time fail the sensor with an alert;
2. **decides** (:func:`decide`): *stale* when another version is champion by now
   (``nightshift.monitoring.stale_retraining_request``); *satisfied* when a night already trained
   or evaluated with the day's labels (a decision report whose plan has the day as holdout or
   training day, written after the labels file); otherwise *needed*;
3. **triggers** ``nightshift_nightly`` for the day with
   ``conf={"source", "day", "retrain_for_version"}`` when needed.

Nothing here imports more than the standard library and PyYAML at module level: the DAG file
reads :func:`load_label_wait` at parse time.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from nightshift.dag_params import SOURCE_PATTERN, VERSION_PATTERN
from nightshift.lake import Lake, check_day, report_mtime

NIGHTLY_DAG_ID = "nightshift_nightly"
STALE, SATISFIED, NEEDED = "stale", "satisfied", "needed"
_SOURCE_NAME = re.compile(SOURCE_PATTERN)
_VERSION = re.compile(VERSION_PATTERN)


@dataclass(frozen=True)
class LabelWait:
    """How the sensor waits for a day's labels: a look every ``poke_interval``, for ``max_wait``."""

    poke_interval: dt.timedelta = dt.timedelta(minutes=30)
    max_wait: dt.timedelta = dt.timedelta(hours=72)


def load_label_wait(config_dir: Path | None = None) -> LabelWait:
    """``retraining`` of ``config/drift.yaml`` (``labels_poke_interval_minutes``,
    ``labels_max_wait_hours``), defaults for what is not there; unknown keys are an error."""
    from nightshift.settings import PROJECT_ROOT, _path_from_env

    config_dir = Path(config_dir) if config_dir else _path_from_env("NIGHTSHIFT_CONFIG_DIR", PROJECT_ROOT / "config")
    path = config_dir / "drift.yaml"
    raw = ((yaml.safe_load(path.read_text()) or {}) if path.exists() else {}).get("retraining") or {}
    known = {"labels_poke_interval_minutes", "labels_max_wait_hours"}
    if set(raw) - known:
        raise ValueError(f"{path}: unknown retraining setting(s) {sorted(set(raw) - known)}; known: {sorted(known)}")
    default = LabelWait()
    poke = dt.timedelta(minutes=float(raw.get("labels_poke_interval_minutes", default.poke_interval / dt.timedelta(minutes=1))))
    wait = dt.timedelta(hours=float(raw.get("labels_max_wait_hours", default.max_wait / dt.timedelta(hours=1))))
    if poke <= dt.timedelta(0) or wait < poke:
        raise ValueError(f"{path}: retraining needs 0 < labels_poke_interval_minutes and labels_max_wait_hours "
                         f"at least one poke interval, got {poke} and {wait}")
    return LabelWait(poke, wait)


def request_from_scoring(source: str, day: str, report: Mapping[str, Any]) -> dict[str, Any]:
    """The retraining request of a night whose predictions are suspect, from its scoring report:
    the champion version that scored it and the prediction-drift reasons."""
    version = report.get("champion_version")
    return {"source": source, "day": day, "version": str(version) if version is not None else None,
            "reasons": list((report.get("prediction_drift") or {}).get("reasons") or [])}


def retraining_requests(params: Mapping[str, Any] | None,
                        event_extras: Iterable[Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    """The requests a run of the retraining DAG handles: a manual trigger's ``day`` (with its
    ``source`` and ``version``) wins; otherwise every request of every triggering event's
    ``extra["requests"]``, one per (source, day): the latest event's, with the reasons of all.
    Events without an extra are ignored (none when every event is empty). Raises ``ValueError``
    when there is neither a day nor an event, or a request is malformed."""
    params = params or {}
    if params.get("day"):
        return [_request(params.get("source"), params["day"], params.get("version"),
                         ["requested by hand (the DAG's trigger form)"], "the run's parameters")]
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    event_extras = list(event_extras)
    for i, extra in enumerate(event_extras):
        if not extra:
            continue       # an event without an extra (e.g. created by hand in the UI) asks for nothing
        requests = extra.get("requests")
        if not isinstance(requests, list):
            raise ValueError(f"triggering asset event #{i}: extra has no 'requests' list (extra={dict(extra or {})!r})")
        for j, r in enumerate(requests):
            r = r or {}
            request = _request(r.get("source"), r.get("day"), r.get("version"), r.get("reasons") or [],
                               f"triggering asset event #{i}, request #{j} ({r!r})")
            key = (request["source"], request["day"])
            if key in by_key:
                request["reasons"] = by_key[key]["reasons"] + [x for x in request["reasons"]
                                                              if x not in by_key[key]["reasons"]]
            by_key[key] = request
    if not by_key and event_extras:
        return []          # only empty events: nothing to do (the DAG skips the run)
    if not by_key:
        raise ValueError("no retraining request: this run has no 'day' parameter and no triggering asset event; "
                         "trigger it with {\"source\": ..., \"day\": \"YYYY-MM-DD\", \"version\": ...}")
    return list(by_key.values())


def _request(source: Any, day: Any, version: Any, reasons: list[str], where: str) -> dict[str, Any]:
    if not isinstance(source, str) or not _SOURCE_NAME.match(source):
        raise ValueError(f"{where}: source must be a source name like 'hdfs', got {source!r}")
    try:
        check_day(day)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if version in ("", None):
        version = None
    elif not _VERSION.match(str(version)):
        raise ValueError(f"{where}: version must be a model version number, got {version!r}")
    return {"source": source, "day": day, "version": None if version is None else str(version),
            "reasons": [str(x) for x in reasons]}


def describe(request: Mapping[str, Any]) -> str:
    version = f"v{request['version']}" if request.get("version") else "no version given"
    return f"{request['source']} {request['day']} ({version})"


def waiting_for(settings, lake: Lake, source: str, day: str, nights_in_progress: int = 0) -> str | None:
    """Why a request for ``day`` cannot be decided yet, or None when it can: the day is labelled
    the way training decides it (``nightshift.training``'s check, reused), and no nightly run is
    queued or running (``nights_in_progress``, counted by the caller)."""
    from nightshift.training import labels_problem

    problem = labels_problem(lake, source, day, settings)
    if problem:
        return f"labels of {source} {day}: {problem}"
    if nights_in_progress:
        return (f"labels of {source} {day} are there, but {nights_in_progress} run(s) of {NIGHTLY_DAG_ID} are queued "
                f"or running (a night in progress may use them or promote another champion)")
    return None


def nights_using(lake: Lake, source: str, day: str) -> list[dict[str, Any]]:
    """The nights whose decision report's training plan used ``day`` (as holdout or training
    day), oldest first, with when that decision was written and whether it was after the day's
    labels file (a night before the file trained on older labels, or on the lines' own)."""
    labels_file = lake.labels_file(source, day)
    labels_at = labels_file.stat().st_mtime if labels_file.exists() else None
    used = []
    for night in lake.days_with("reports", source):
        if night < day:
            continue
        record = lake.read_report(source, night, "decision") or {}
        plan = record.get("plan") or record          # skipped nights keep the plan under "plan"
        if day in (plan.get("holdout_days") or []):
            role = "holdout"
        elif day in (plan.get("train_days") or []):
            role = "training day"
        else:
            continue
        decided_at = report_mtime(lake, source, night, "decision")
        used.append({"night": night, "role": role, "decision": record.get("decision"),
                     "after_labels": labels_at is None or (decided_at is not None and decided_at >= labels_at)})
    return used


def decide(settings, model_name: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """Stale, satisfied or needed (see the module docstring), with the reason in one line and,
    when needed, the ``conf`` of the nightly run to trigger."""
    from nightshift.monitoring import stale_retraining_request

    source, day, version = request["source"], request["day"], request.get("version")
    stale = stale_retraining_request(
        settings, model_name, version,
        asked=f"retraining was requested for {day} because v{version}'s predictions were suspect")
    if stale:
        return {"decision": STALE, "reason": stale, "conf": None}
    lake = Lake(settings.data_root)
    used = [u for u in nights_using(lake, source, day) if u["after_labels"]]
    if used:
        nights = ", ".join(f"the night of {u['night']} ({u['decision']}, {day} as {u['role']})" for u in used)
        return {"decision": SATISFIED, "conf": None,
                "reason": f"{day}'s labels were already used: {nights}; nothing to retrain"}
    earlier = nights_using(lake, source, day)
    note = (f" (the night(s) of {', '.join(u['night'] for u in earlier)} used {day} before its labels file "
            f"arrived)") if earlier else ""
    return {"decision": NEEDED, "conf": {"source": source, "day": day, "retrain_for_version": version},
            "reason": f"no night has trained or evaluated with {day}'s labels yet{note}: retraining {source} "
                      f"for {day}" + (f" while v{version} is champion" if version else "")}


def labels_overdue(request: Mapping[str, Any], waited: dt.timedelta, wait: LabelWait, why: str) -> str:
    """The sensor's failure message when the labels did not come within the maximum wait."""
    return (f"gave up on the retraining request for {describe(request)} after {_human(waited)} "
            f"(maximum {_human(wait.max_wait)}, labels_max_wait_hours in config/drift.yaml): {why}. "
            f"Its suspect predictions were not judged; once the labels are there, trigger "
            f"nightshift_retraining with source, day and version")


def _human(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"
