"""The Spark ingest's per-line rules in plain Python, for small files (``nightshift try-source``).

A new user iterates on a source's format string dozens of times on a sample of a few thousand
lines; a Spark application takes 8-14 s to start and run that on this machine, most of it JVM and
session start-up. This module classifies the lines of one file in the calling process, rule for
rule as :func:`nightshift.ingest.classify_lines` does in Spark (same format regex, masks, quarantine
reasons and their details, timestamps, sessions), and gives the template store the same distinct
masked messages, so the template ids are the same too. The nightly pipeline never uses it: the
per-line cost of a large day stays in Spark.

The two implementations are kept equal by tests, not by construction:
``tests/test_python_ingest.py`` runs both on the ten Loghub samples (every line: status, reason,
detail, template id, session) and both timestamp parsers on constructed texts of every kind a
source can declare. Timestamp patterns this module does not implement (:func:`timestamp_parser`
returns ``None``: eras, day-of-year, 12-hour clocks, zones in the text, optional sections) make
``try-source`` use Spark instead, so an answer is never a guess.
"""

from __future__ import annotations

import calendar
import datetime as dt
import gzip
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Callable, Iterator

from nightshift.ingest import (FIELD_SEPARATOR, LINE_BLANKS, REASON_CONTROL, REASON_EMPTY, REASON_FORMAT,
                               REASON_TIMESTAMP, REASON_TOO_LONG, line_parts)
from nightshift.logformat import TimestampFormat, _tokens
from nightshift.sources import SourceConfig

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
# timestamp_expression's range for epoch values: [1970-01-01, 10000-01-01)
_EPOCH_LIMIT = Decimal(253402300800)
_400_YEARS = 146097 * 86_400_000_000                  # 400 Gregorian years, in microseconds
_MIN_MICROS = (dt.datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // dt.timedelta(microseconds=1)
_MAX_MICROS = (dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - EPOCH) // dt.timedelta(microseconds=1) + 1
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_MONTHS_SHORT = [calendar.month_abbr[i] for i in range(1, 13)]      # Jan..Dec (Java's Locale.US)
_MONTHS_LONG = [calendar.month_name[i] for i in range(1, 13)]
# what Spark's string -> decimal cast accepts (after the spaces are trimmed)
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Java's $ (no MULTILINE) also matches before a final line terminator; Python's only before "\n"
_JAVA_END = r"(?=(?:\r\n|[\n\r\u0085\u2028\u2029])?\Z)"


def read_lines(path: Path) -> Iterator[str]:
    """The lines of a file as Spark's text reader sees them: split at ``\\n``, ``\\r\\n`` or ``\\r``
    (no empty last line after a final break), ``.gz`` decompressed, invalid UTF-8 replaced by
    U+FFFD (Spark: ``make_valid_utf8``)."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    pieces = _LINE_BREAK.split(data)
    if pieces and pieces[-1] == b"":
        pieces.pop()
    for piece in pieces:
        yield piece.decode("utf-8", errors="replace")


# --- timestamps ----------------------------------------------------------------------------------

_NUMERIC = {"y": "year", "M": "month", "L": "month", "d": "day", "H": "hour", "m": "minute", "s": "second"}


def _pattern_regex(spark_pattern: str) -> tuple[re.Pattern, list[tuple[str, str]]] | None:
    """A regex for the subset of Spark datetime patterns implemented here, with the field each
    group holds; ``None`` for anything else."""
    if "[" in spark_pattern or "]" in spark_pattern:
        return None                                        # optional sections
    tokens = _tokens(spark_pattern)
    parts, fields = [], []
    for i, tok in enumerate(tokens):
        letter, count = tok[0], len(tok)
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok.startswith("'"):
            text = tok[1:-1].replace("''", "'") if len(tok) > 2 else "'"
            parts.append(re.escape(text))
        elif not (letter.isascii() and letter.isalpha()):
            parts.append(re.escape(tok))
        elif letter == "y" and count == 2:                 # two digits, 2000-2099
            parts.append("([0-9]{2})")
            fields.append(("year2", tok))
        elif letter == "y" and count == 4:
            # four digits; with a sign, more (Spark's strict parser: '+' only beyond four digits)
            parts.append("([+-]?[0-9]{4,})")
            fields.append(("year", tok))
        elif letter in "ML" and count in (3, 4):
            names = _MONTHS_SHORT if count == 3 else _MONTHS_LONG
            parts.append("(" + "|".join(names) + ")")
            fields.append(("month_name", tuple(n.lower() for n in names)))
        elif letter in _NUMERIC and letter != "y" and count <= 2 and not (letter in "ML" and count > 2):
            if count == 1 and following[:1].isalpha() and following[:1].isascii():
                return None                                # adjacent value parsing: not implemented
            parts.append("([0-9]+)" if count == 1 else "([0-9]{2})")
            fields.append((_NUMERIC[letter], tok))
        elif letter == "S":
            if following[:1].isalpha() and following[:1].isascii():
                return None                                # adjacent value parsing: not implemented
            # a fraction of 1..count digits (Spark's variable-length second fraction)
            parts.append(f"([0-9]{{1,{count}}})")
            fields.append(("fraction", tok))
        else:
            return None                                    # G, D, a, h, K, k, zones...
    return re.compile("".join(parts), re.IGNORECASE | re.ASCII), fields


def _year(text: str) -> int | None:
    """A ``yyyy`` year as Spark reads it: four digits unsigned, ``+`` only before five digits or
    more, ``-`` before four or more; a sign with six digits or more is refused (the Spark
    expression's guard against its long overflow: ``nightshift.logformat.year_sign_guard``)."""
    sign, digits = (text[0], text[1:]) if text[0] in "+-" else ("", text)
    if (not sign and len(digits) != 4) or (sign == "+" and len(digits) < 5) or (sign and len(digits) >= 6):
        return None
    value = int(digits)
    if sign == "-":
        return -value if value else None
    return value


def _cycles(year: int) -> int:
    """How many 400-year cycles to add to ``year`` to bring it into 1..9999."""
    if year < 1:
        return -((year - 1) // 400)
    if year > 9999:
        return -((year - 9999 + 399) // 400)
    return 0


def _zone(name: str) -> dt.tzinfo:
    if name == "UTC":
        return UTC
    if re.fullmatch(r"[+-]\d{2}:\d{2}", name):
        sign = 1 if name[0] == "+" else -1
        return dt.timezone(sign * dt.timedelta(hours=int(name[1:3]), minutes=int(name[4:6])))
    import zoneinfo

    return zoneinfo.ZoneInfo(name)


def _shift_year(ts: dt.datetime, years: int) -> dt.datetime:
    """``ts + INTERVAL n YEAR`` in UTC: February 29 becomes February 28 in a common year."""
    year = ts.year + years
    day = min(ts.day, calendar.monthrange(year, ts.month)[1])
    return ts.replace(year=year, day=day)


def _micros(ts: dt.datetime) -> int:
    return (ts - EPOCH) // dt.timedelta(microseconds=1)


def format_micros(micros: int, fmt: str = "%Y-%m-%dT%H:%M") -> str:
    """A UTC instant (microseconds since the epoch) as ``fmt``; years before 1 as Spark writes them."""
    cycles = 0 if _MIN_MICROS <= micros < _MAX_MICROS else (
        -((micros - _MIN_MICROS) // _400_YEARS) if micros < _MIN_MICROS else -((micros - _MAX_MICROS) // _400_YEARS + 1))
    moment = EPOCH + dt.timedelta(microseconds=micros + cycles * _400_YEARS)
    year = moment.year - 400 * cycles
    text = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+05d}"
    return moment.strftime(fmt.replace("%Y", text))


def _epoch_parser(spec: TimestampFormat) -> Callable[[str | None], int | None]:
    scale = Decimal(1000) if spec.kind == "epoch_ms" else Decimal(1)
    quantum = Decimal("0.000001")

    def parse(text: str | None) -> dt.datetime | None:
        if text is None:
            return None
        text = text.strip(" ")
        if not _DECIMAL_TEXT.fullmatch(text):
            return None
        try:
            # the cast to decimal(38,6) rounds half up; epoch_ms divides that by 1000 (scale 6 again)
            value = Decimal(text).quantize(quantum, rounding=ROUND_HALF_UP)
            if value.adjusted() >= 32:                     # beyond decimal(38,6)
                return None
            value = (value / scale).quantize(quantum, rounding=ROUND_HALF_UP)
        except InvalidOperation:
            return None
        if not (0 <= value < _EPOCH_LIMIT):
            return None
        return int(value * 1_000_000)

    return parse


def timestamp_parser(spec: TimestampFormat, day: str | None = None) -> Callable[[str | None], int | None] | None:
    """A function from a line's timestamp text to the instant (microseconds since the epoch, UTC)
    that :func:`nightshift.ingest.timestamp_expression` gives for it (``None`` where Spark gives null),
    or ``None`` when ``spec`` uses a pattern feature not implemented here."""
    if spec.kind in ("epoch_s", "epoch_ms"):
        return _epoch_parser(spec)
    pattern = spec.spark_pattern[:-3] if spec.append_zone else spec.spark_pattern
    compiled = _pattern_regex(pattern)
    if compiled is None or spec.has_zone:
        return None
    regex, fields = compiled
    weekday = re.compile(spec.weekday_regex().replace("(?i)", ""), re.IGNORECASE | re.ASCII) if spec.weekday else None
    the_day = dt.date.fromisoformat(day) if day else dt.datetime.now(UTC).date()
    suffix = {"year": f" {the_day.year:04d}", "date": f" {the_day.isoformat()}"}.get(spec.date_from_day, "")
    zone = _zone(spec.timezone)
    sep = spec.millis_separator

    def parse(text: str | None) -> dt.datetime | None:
        if text is None:
            return None
        if weekday is not None:
            text = weekday.sub("", text)
        if sep:
            millis = text.rsplit(sep, 1)[-1]
            if not (1 <= len(millis) <= 3 and sep in text):
                return None
            text = text[: len(text) - len(millis) - 1] + sep + millis.rjust(3, "0")
        match = regex.fullmatch(text + suffix)
        if match is None:
            return None
        values: dict[str, int] = {}
        for (name, extra), text_value in zip(fields, match.groups()):
            if name == "year2":
                name, value = "year", 2000 + int(text_value)
            elif name == "month_name":
                name, value = "month", extra.index(text_value.lower()) + 1
            elif name == "fraction":
                name, value = "micro", int(text_value.ljust(9, "0")[:6])
            elif name == "year":
                value = _year(text_value)
                if value is None:
                    return None
            else:
                value = int(text_value)
            if values.setdefault(name, value) != value:
                return None                                # the same field twice, with two values
        # years 0 and before, or after 9999, are years for Spark (proleptic ISO), not for Python:
        # moved by whole 400-year cycles (the same calendar) into Python's range, and back after
        cycles = _cycles(values.get("year", 1))
        shift = cycles * _400_YEARS
        try:
            local = dt.datetime(values["year"] + 400 * cycles, values["month"], values["day"],
                                values.get("hour", 0), values.get("minute", 0), values.get("second", 0),
                                values.get("micro", 0))
        except (KeyError, ValueError, OverflowError):
            return None
        ts = local.replace(tzinfo=zone).astimezone(UTC)
        if spec.date_from_day == "year" and the_day.month in (1, 12):
            month = local.month          # the wall-clock month, as the Spark expression compares it
            if the_day.month == 1 and month == 12:
                ts = _shift_year(ts, -1)
            elif the_day.month == 12 and month == 1:
                ts = _shift_year(ts, 1)
        return _micros(ts) - shift

    return parse


# --- lines ---------------------------------------------------------------------------------------


def _java_regex(pattern: str, flags: int = 0) -> re.Pattern:
    """A Java regex as Python's ``re`` runs it the same way: ASCII classes (Java's ``\\d``, ``\\w``,
    ``\\s`` and ``(?i)`` are ASCII unless asked otherwise)."""
    return re.compile(pattern, flags | re.ASCII)


class LineClassifier:
    """:func:`nightshift.ingest.classify_lines` for one line at a time (see that function for the
    rules; each step below names the Spark expression it mirrors)."""

    def __init__(self, source: SourceConfig, day: str | None = None):
        fmt = source.log_format
        self.source = source
        self.parts = line_parts(source)
        regex = fmt._to_python(fmt.regex)
        assert regex.endswith("$"), regex
        self.format = _java_regex(regex[:-1] + _JAVA_END, re.DOTALL)
        self.prefixes = [(_java_regex(fmt._to_python(p), re.DOTALL), what) for p, what in fmt.prefixes[:-1]]
        self.first_detail = fmt.prefixes[-1][1]
        self.masks = [(_java_regex(p), rep) for p, rep in source.mask_passes()]
        self.session_regex = _java_regex(source.session_id_regex) if source.session_id_regex else None
        parser = timestamp_parser(source.timestamp, day)
        if parser is None:
            raise ValueError(f"timestamp format {source.timestamp_format!r} is not implemented in Python")
        self.timestamp = parser

    def _joined(self, match: re.Match) -> str:
        # the replacement of classify_lines: SEP ts-text SEP field ... (a group that took no part: "")
        fields = []
        for p in self.parts:
            if p == "<timestamp>":
                fields.append(" ".join(match.group(f) or "" for f in self.source.timestamp_fields))
            else:
                fields.append(match.group(p) or "")
        return "".join(FIELD_SEPARATOR + f for f in fields)

    def _part(self, parts: list[str], name: str | None) -> str | None:
        if not name:
            return None
        i = self.parts.index(name) + 1
        return parts[i] if i < len(parts) else None

    def mask(self, message: str) -> str:
        for regex, replacement in self.masks:
            message = regex.sub(lambda _m, r=replacement: r, message)
        return message

    def session_id(self, message: str | None, ts: int | None, key: str | None) -> str | None:
        source = self.source
        if self.session_regex is not None:
            if message is None:
                return None
            found = self.session_regex.search(message)
            return found.group(0) or None if found else None
        if ts is None:
            return None
        seconds = source.session_window_minutes * 60
        window = format_micros((ts // 1_000_000 // seconds) * seconds * 1_000_000)
        if not source.session_key_fields:
            return window
        return f"{key}@{window}" if key else None

    def classify(self, line: str) -> dict:
        """``reason`` (None when parsed), ``detail``, ``ts``, ``level``, ``component``,
        ``message``, ``masked``, ``session_id`` (the parsed columns None when quarantined)."""
        source = self.source
        too_long = len(line) > source.max_line_length
        joined = None
        if not too_long:
            stripped = line.strip(LINE_BLANKS)
            joined = self.format.sub(self._joined, stripped, count=1)
        parts = joined.split(FIELD_SEPARATOR) if joined is not None else []
        matched = (joined is not None and joined.startswith(FIELD_SEPARATOR) and not line.startswith(FIELD_SEPARATOR)
                   and len(parts) == len(self.parts) + 1)
        ts = self.timestamp(self._part(parts, "<timestamp>")) if joined is not None else None
        if matched and ts is not None:
            reason = detail = None
        elif line.strip(" ") == "":
            reason, detail = REASON_EMPTY, None
        elif len(line) > source.max_line_length:
            reason = REASON_TOO_LONG
            detail = f"{len(line)} characters, more than max_line_length {source.max_line_length}"
        elif FIELD_SEPARATOR in line:
            reason, detail = REASON_CONTROL, None
        elif not matched:
            reason, detail = REASON_FORMAT, self._mismatch(line.strip(LINE_BLANKS))
        else:
            reason, detail = REASON_TIMESTAMP, None
        if reason is not None:
            return {"reason": reason, "detail": detail, "ts": None, "level": None, "component": None,
                    "message": None, "masked": None, "session_id": None}

        def trimmed(name):
            value = self._part(parts, name)
            return value.strip(" ") if value is not None else None

        keys = [trimmed(k) for k in source.session_key_fields]
        if not keys:
            key = None
        elif len(keys) == 1:
            key = keys[0]
        else:
            key = "|".join(k for k in keys if k is not None) if None not in keys and "".join(keys) != "" else None
        level = trimmed(source.level_field)
        message = self._part(parts, source.message_field)
        return {"reason": None, "detail": None, "ts": ts, "level": level.upper() if level is not None else None,
                "component": trimmed(source.component_field), "message": message,
                "masked": self.mask(message) if message is not None else None,
                "session_id": self.session_id(message, ts, key)}

    def _mismatch(self, stripped: str) -> str:
        for regex, what in self.prefixes:
            if regex.search(stripped):
                return what
        return self.first_detail


def classify_file(source: SourceConfig, path: Path, day: str | None = None) -> list[dict]:
    """Every line of ``path`` classified, with its ``line_number`` (1-based)."""
    classifier = LineClassifier(source, day)
    return [{"line_number": n, **classifier.classify(line)} for n, line in enumerate(read_lines(path), start=1)]


def supports(source: SourceConfig, day: str | None = None) -> bool:
    """Whether this module implements the source's timestamp spec (see the module docstring)."""
    return timestamp_parser(source.timestamp, day) is not None


def ingest_file(source: SourceConfig, path: Path, store, day: str) -> list[dict]:
    """:func:`classify_file`, then the parsed lines' distinct masked messages through ``store``
    (a :class:`nightshift.templates.TemplateStore`, as :func:`nightshift.ingest.stage_lines` gives
    them): each line with its ``template_id`` (None when quarantined)."""
    rows = classify_file(source, path, day)
    assignments = store.assign([r["masked"] for r in rows if r["reason"] is None], day)
    for row in rows:
        row["template_id"] = assignments[row["masked"]] if row["reason"] is None else None
    return rows
