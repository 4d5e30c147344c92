"""Log sources declared as versioned YAML (``sources/<name>.yaml``).

A source says how to split a raw line into fields (a Loghub-style format string), which variables
to mask before template mining, and how lines group into sessions. Loading validates the file and
fails with a message that names the file and the problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nightshift.logformat import LogFormat


class SourceConfigError(ValueError):
    """A source YAML file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Mask:
    name: str
    regex: str
    replacement: str = "<*>"


@dataclass(frozen=True)
class SourceConfig:
    name: str
    version: int
    log_format: LogFormat
    message_field: str
    timestamp_fields: tuple[str, ...]
    timestamp_format: str
    level_field: str | None
    component_field: str | None
    masks: tuple[Mask, ...]
    session_id_regex: str
    drain: dict[str, Any]
    validation: dict[str, dict[str, float]]
    description: str = ""
    path: Path | None = field(default=None, compare=False)


def load_source(name: str, sources_dir: Path) -> SourceConfig:
    """Load and validate ``<sources_dir>/<name>.yaml``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
        raise SourceConfigError(f"source name must match [a-z][a-z0-9_]*, got {name!r}")
    path = Path(sources_dir) / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in Path(sources_dir).glob("*.yaml"))
        raise SourceConfigError(f"no source {name!r}: {path} does not exist (known sources: {known})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SourceConfigError(f"{path}: invalid YAML: {exc}") from exc
    return parse_source(raw, path)


def parse_source(raw: Any, path: Path | None = None) -> SourceConfig:
    """Validate a source mapping (as loaded from YAML) and build a :class:`SourceConfig`."""
    where = str(path) if path else "source config"

    def need(key: str, kind: type) -> Any:
        if not isinstance(raw, dict) or key not in raw:
            raise SourceConfigError(f"{where}: missing required key {key!r}")
        value = raw[key]
        if not isinstance(value, kind):
            raise SourceConfigError(f"{where}: {key!r} must be a {kind.__name__}, got {type(value).__name__}")
        return value

    name = need("name", str)
    try:
        log_format = LogFormat.parse(need("log_format", str))
    except ValueError as exc:
        raise SourceConfigError(f"{where}: log_format: {exc}") from exc
    message_field = raw.get("message_field", log_format.fields[-1])
    ts = need("timestamp", dict)
    ts_fields = tuple(ts.get("fields") or ())
    if not ts_fields or "format" not in ts:
        raise SourceConfigError(f"{where}: timestamp needs 'fields' (a list) and 'format'")
    referenced = [message_field, *ts_fields, raw.get("level_field"), raw.get("component_field")]
    for ref in referenced:
        if ref is not None and ref not in log_format.fields:
            raise SourceConfigError(f"{where}: field {ref!r} is not in log_format fields {list(log_format.fields)}")
    masks = []
    for i, m in enumerate(raw.get("masks") or []):
        if not isinstance(m, dict) or "regex" not in m:
            raise SourceConfigError(f"{where}: masks[{i}] needs a 'regex'")
        _check_regex(m["regex"], f"{where}: masks[{i}]")
        masks.append(Mask(name=str(m.get("name", f"mask{i}")), regex=m["regex"], replacement=str(m.get("replacement", "<*>"))))
    session = need("session", dict)
    if "id_regex" not in session:
        raise SourceConfigError(f"{where}: session needs 'id_regex'")
    _check_regex(session["id_regex"], f"{where}: session.id_regex")
    return SourceConfig(
        name=name,
        version=int(raw.get("version", 1)),
        log_format=log_format,
        message_field=message_field,
        timestamp_fields=ts_fields,
        timestamp_format=str(ts["format"]),
        level_field=raw.get("level_field"),
        component_field=raw.get("component_field"),
        masks=tuple(masks),
        session_id_regex=session["id_regex"],
        drain=dict(raw.get("drain") or {}),
        validation={k: dict(v) for k, v in (raw.get("validation") or {}).items()},
        description=str(raw.get("description", "")),
        path=path,
    )


def _check_regex(pattern: str, where: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise SourceConfigError(f"{where}: invalid regex {pattern!r}: {exc}") from exc
