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

from nightshift.logformat import LogFormat, TimestampFormat, compile_timestamp_format
from nightshift.regexopt import backtracking_risk, with_first_char_guard


DEFAULT_MAX_LINE_LENGTH = 65536   # characters; longer lines are quarantined as line_too_long


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
    session_id_regex: str | None
    session_key_field: str | None
    session_window_minutes: int | None
    label_field: str | None
    label_normal_values: tuple[str, ...]
    drain: dict[str, Any]
    max_line_length: int
    validation: dict[str, dict[str, float]]
    description: str = ""
    path: Path | None = field(default=None, compare=False)
    miner: str = "drain"                      # template miner: drain | brain (nightshift.templates.MINERS)
    labelled: bool = True                     # False for `labels: none`: label-free detectors only
    miner_params: dict[str, Any] = field(default_factory=dict)   # the ``brain:`` block for miner: brain
    timestamp_timezone: str = "UTC"           # the zone of the text's wall-clock time (timestamp.timezone)
    session_key_fields: tuple[str, ...] = ()  # session.key_field / key_fields (empty: window only or id_regex)

    @property
    def timestamp(self) -> TimestampFormat:
        """The timestamp spec compiled for Spark (checked when the source loaded)."""
        return compile_timestamp_format(self.timestamp_format, self.timestamp_timezone)

    def mask_passes(self) -> list[tuple[str, str]]:
        """The masks as ``(regex, replacement)`` passes, in order.

        Consecutive masks with the same replacement are merged into one alternation, so the common
        case (all ``<*>``) is one regex pass per line. At each position the first listed mask that
        matches wins. Spark (Java regex) and :meth:`mask` (Python ``re``) apply the same passes.
        """
        passes: list[tuple[list[str], str]] = []
        for m in self.masks:
            if passes and passes[-1][1] == m.replacement:
                passes[-1][0].append(m.regex)
            else:
                passes.append(([m.regex], m.replacement))
        merged = [(r[0] if len(r) == 1 else "|".join(f"(?:{x})" for x in r), rep) for r, rep in passes]
        return [(with_first_char_guard(regex), rep) for regex, rep in merged]

    def used_fields(self) -> list[str]:
        """The format fields the pipeline reads, message last (the rest of a line's fields are
        not extracted: parsed lines point back to the raw file by file name and line number)."""
        wanted = [*self.timestamp_fields, self.level_field, self.component_field, *self.session_key_fields,
                  self.label_field]
        used = [f for f in self.log_format.fields if f in wanted and f != self.message_field]
        return [*used, self.message_field]

    def mask(self, message: str) -> str:
        """Python twin of the Spark masking expression, for tests, tools and the baseline."""
        for pattern, replacement in self.mask_passes():
            message = re.sub(pattern, replacement.replace("\\", "\\\\"), message)
        return message


def load_source(name: str, sources_dir: Path) -> SourceConfig:
    """Load and validate ``<sources_dir>/<name>.yaml``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
        raise SourceConfigError(f"source name must match [a-z][a-z0-9_]*, got {name!r}")
    path = Path(sources_dir) / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in Path(sources_dir).glob("*.yaml"))
        raise SourceConfigError(f"no source {name!r}: {path} does not exist (known sources: {known})")
    source = load_source_file(path)
    if source.name != name:
        raise SourceConfigError(f"{path}: name {source.name!r} does not match the file name {name!r}")
    return source


def load_source_file(path: Path) -> SourceConfig:
    """Load and validate a source YAML file by path (e.g. a new source being tried out)."""
    path = Path(path)
    if not path.is_file():
        raise SourceConfigError(f"source file {path} does not exist")
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
    unknown = sorted(set(ts) - {"fields", "format", "timezone"})
    if unknown:
        raise SourceConfigError(f"{where}: timestamp: unknown keys {unknown} (known: fields, format, timezone)")
    ts_timezone = ts.get("timezone", "UTC")
    try:
        compile_timestamp_format(ts["format"], ts_timezone)
    except ValueError as exc:
        key = "timestamp.timezone" if "timezone" in str(exc) else "timestamp.format"
        raise SourceConfigError(f"{where}: {key}: {exc}") from exc
    referenced = [message_field, *ts_fields, raw.get("level_field"), raw.get("component_field")]
    for ref in referenced:
        if ref is not None and ref not in log_format.fields:
            raise SourceConfigError(f"{where}: field {ref!r} is not in log_format fields {list(log_format.fields)}")
    masks = []
    for i, m in enumerate(raw.get("masks") or []):
        if not isinstance(m, dict) or "regex" not in m:
            raise SourceConfigError(f"{where}: masks[{i}] needs a 'regex'")
        mask_name = str(m.get("name", f"mask{i}"))
        _check_regex(m["regex"], f"{where}: masks[{i}] (mask {mask_name!r})")
        masks.append(Mask(name=mask_name, regex=m["regex"], replacement=str(m.get("replacement", "<*>"))))
    session = need("session", dict)
    id_regex, window = session.get("id_regex"), session.get("window_minutes")
    key_field, key_fields = session.get("key_field"), session.get("key_fields")
    unknown = sorted(set(session) - {"id_regex", "window_minutes", "key_field", "key_fields"})
    if unknown:
        raise SourceConfigError(f"{where}: session: unknown keys {unknown} (known: id_regex, window_minutes, key_field, key_fields)")
    if (id_regex is None) == (window is None):
        raise SourceConfigError(
            f"{where}: session needs either 'id_regex' (id found in the message) or 'window_minutes' "
            "(a time window, optionally per 'key_field' or 'key_fields')"
        )
    if key_field is not None and key_fields is not None:
        raise SourceConfigError(f"{where}: session: give 'key_field' or 'key_fields', not both")
    if key_fields is not None and (not isinstance(key_fields, list) or not key_fields
                                   or not all(isinstance(k, str) for k in key_fields)
                                   or len(set(key_fields)) != len(key_fields)):
        raise SourceConfigError(f"{where}: session.key_fields must be a non-empty list of distinct field names, got {key_fields!r}")
    keys = tuple(key_fields) if key_fields is not None else ((key_field,) if key_field is not None else ())
    if id_regex is not None:
        if keys:
            raise SourceConfigError(f"{where}: session: 'id_regex' takes no 'key_field'/'key_fields' (those go with 'window_minutes')")
        _check_regex(id_regex, f"{where}: session.id_regex")
    else:
        for key in keys:
            if key not in log_format.fields:
                name = "key_field" if key_fields is None else "key_fields"
                raise SourceConfigError(f"{where}: session.{name} {key!r} is not in log_format fields {list(log_format.fields)}")
        if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 24 * 60:
            raise SourceConfigError(f"{where}: session.window_minutes must be an integer between 1 and 1440, got {window!r}")
    # `labels: none`: the source never gets labels; it is served by label-free detectors only
    labelled = raw.get("labels") != "none"
    labels = (raw.get("labels") or {}) if labelled else {}
    if not isinstance(labels, dict):
        raise SourceConfigError(f"{where}: labels must be a mapping or 'none', got {raw.get('labels')!r}")
    share = ((raw.get("validation") or {}).get("labels") or {}).get("max_bad_row_share", 0.01)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise SourceConfigError(f"{where}: validation.labels.max_bad_row_share must be a number between 0 and 1, got {share!r}")
    if labels and labels.get("field") not in log_format.fields:
        raise SourceConfigError(f"{where}: labels.field {labels.get('field')!r} is not in log_format fields {list(log_format.fields)}")
    miner = raw.get("miner", "drain")
    if miner not in ("drain", "brain"):
        raise SourceConfigError(f"{where}: miner must be 'drain' or 'brain', got {miner!r}")
    miner_params = dict(raw.get("brain") or {}) if miner == "brain" else {}
    if miner == "brain":
        try:
            from nightshift.miner import BrainMiner

            BrainMiner(**miner_params)
        except (TypeError, ValueError) as exc:
            raise SourceConfigError(f"{where}: brain: {exc}") from exc
    return SourceConfig(
        miner=miner,
        miner_params=miner_params,
        name=name,
        version=int(raw.get("version", 1)),
        log_format=log_format,
        message_field=message_field,
        timestamp_fields=ts_fields,
        timestamp_format=str(ts["format"]),
        timestamp_timezone=ts_timezone,
        level_field=raw.get("level_field"),
        component_field=raw.get("component_field"),
        masks=tuple(masks),
        session_id_regex=id_regex,
        session_key_field=keys[0] if len(keys) == 1 else None,
        session_key_fields=keys,
        session_window_minutes=window if id_regex is None else None,
        label_field=labels.get("field"),
        label_normal_values=tuple(str(v) for v in labels.get("normal_values", ["-"])),
        labelled=labelled,
        drain=dict(raw.get("drain") or {}),
        max_line_length=_positive_int(raw.get("max_line_length", DEFAULT_MAX_LINE_LENGTH), f"{where}: max_line_length"),
        validation={k: dict(v) for k, v in (raw.get("validation") or {}).items()},
        description=str(raw.get("description", "")),
        path=path,
    )


def _positive_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SourceConfigError(f"{where} must be a positive integer, got {value!r}")
    return value


def _check_regex(pattern: str, where: str) -> None:
    """The regex compiles in Python and cannot backtrack catastrophically (``nightshift.regexopt``).
    Java (Spark) compiles it at the start of every Spark job (``nightshift.jobrunner``)."""
    if not isinstance(pattern, str):
        raise SourceConfigError(f"{where}: regex must be a string, got {pattern!r}")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise SourceConfigError(f"{where}: invalid regex {pattern!r}: {exc}") from exc
    risk = backtracking_risk(pattern)
    if risk:
        raise SourceConfigError(f"{where}: regex {pattern!r} refused: {risk}")
