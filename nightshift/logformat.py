"""Loghub-style log format strings, compiled to one (Java-compatible) regular expression.

Semantics follow Loghub's parsers: ``<Field>`` is a named field, the text between fields is a
regular expression, runs of spaces match any whitespace, and the last field is the message
(it takes the rest of the line). Example: ``<Date> <Time> <Pid> <Level> <Component>: <Content>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD = re.compile(r"<([^<>]+)>")
_GROUP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")


@dataclass(frozen=True)
class LogFormat:
    format_string: str
    fields: tuple[str, ...]
    regex: str                      # anchored pattern, works in Python ``re`` and Java
    group_index: dict[str, int]     # field name -> capturing group number in ``regex``

    @classmethod
    def parse(cls, format_string: str) -> "LogFormat":
        parts = _FIELD.split(format_string)
        # parts alternates literal, field, literal, field, ..., literal
        fields = tuple(parts[1::2])
        if not fields:
            raise ValueError(f"format string {format_string!r} has no <Field>")
        if len(set(fields)) != len(fields):
            raise ValueError(f"format string {format_string!r} repeats a field")
        for name in fields:
            if not _GROUP_NAME.fullmatch(name):
                raise ValueError(f"field name {name!r} must be letters and digits, starting with a letter")
        regex = ""
        group_index: dict[str, int] = {}
        groups_so_far = 0
        for i, part in enumerate(parts):
            if i % 2 == 0:
                literal = re.sub(r" +", r"\\s+", part)
                groups_so_far += _count_capturing_groups(literal)
                regex += literal
            else:
                groups_so_far += 1
                group_index[part] = groups_so_far
                if part == fields[-1]:
                    regex += f"(?<{part}>.*)"
                elif parts[i + 1].startswith(" "):
                    # A field ended by whitespace is one token. Loghub's lazy ``.*?`` finds the same
                    # token on lines that match, but on lines that don't it backtracks over every
                    # combination of spaces (polynomial in the line length). ``\S*+`` (possessive:
                    # the whole token, never given back) cannot, and is the cheapest form per
                    # line; it matches exactly what ``\S*?`` would, since the next thing is
                    # whitespace and a shorter token is never followed by whitespace.
                    regex += f"(?<{part}>\\S*+)"
                else:
                    regex += f"(?<{part}>.*?)"
        anchored = f"^{regex}$"
        parsed = cls(format_string=format_string, fields=fields, regex=anchored, group_index=group_index)
        try:
            parsed.python_regex
        except re.error as exc:
            raise ValueError(f"format string {format_string!r} is not a valid regex: {exc}") from exc
        return parsed

    @property
    def python_regex(self) -> re.Pattern[str]:
        """The same pattern for Python's ``re`` (which spells named groups ``(?P<name>``)."""
        pattern = self.regex
        for name in self.fields:
            pattern = pattern.replace(f"(?<{name}>", f"(?P<{name}>", 1)
        return re.compile(pattern)


def _count_capturing_groups(pattern: str) -> int:
    """Count capturing groups in a regex fragment (unescaped ``(`` not followed by ``?``, outside [])."""
    count = 0
    escaped = in_class = False
    for i, ch in enumerate(pattern):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(" and not pattern.startswith("(?", i):
            count += 1
    return count


# --- timestamps -------------------------------------------------------------------------------

EPOCH_FORMATS = ("epoch_s", "epoch_ms")
_EPOCH_MAX_S = 253402300800          # 10000-01-01: later (or garbled) numbers are not timestamps
# Spark datetime pattern letters accepted for parsing, with the letter counts Spark 4 accepts.
# Week-based and other letters Spark rejects in parsing (Y w W u e c F Q q ...) are refused.
_LETTER_COUNTS = {
    "G": range(1, 5), "y": range(1, 7), "D": range(1, 4), "M": range(1, 5), "L": range(1, 5),
    "d": range(1, 3), "a": range(1, 2), "h": range(1, 3), "K": range(1, 3), "k": range(1, 3),
    "H": range(1, 3), "m": range(1, 3), "s": range(1, 3), "S": range(1, 10), "V": range(2, 3),
    "z": range(1, 5), "O": (1, 4), "X": range(1, 6), "x": range(1, 6), "Z": range(1, 6),
    "E": range(1, 5),                  # weekday: stripped from text and pattern before parsing
}
_ZONE_LETTERS = set("VzOXxZ")
_WEEKDAY = r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*"


@dataclass(frozen=True)
class TimestampFormat:
    """A source's ``timestamp:`` spec compiled for Spark (see docs/sources.md, "Timestamps").

    ``kind`` is ``epoch_s``, ``epoch_ms`` or ``pattern``. For patterns, ``spark_pattern`` is what
    ``try_to_timestamp`` gets after these rewrites (each one costs per-line work only for the
    sources that need it):

    * ``weekday``: ``"start"``/``"end"``/``"middle"`` when the pattern had ``E`` (the weekday
      name is removed from the text by one regex, and ``E`` from the pattern: Spark 4 refuses
      ``E`` in parsing; the weekday is redundant with the date);
    * ``millis_separator``: a lone ``S`` (last in the pattern, after this one-character
      separator) is *integer milliseconds*, 1-3 digits, unpadded: ``:6`` is 6 ms, not 600 ms; the
      text's last part is left-padded to 3 digits (string functions, no regex) and parsed as
      ``SSS``; more than 3 digits is a bad timestamp;
    * a run of two or more ``S`` is a decimal fraction of any width (1-9 digits, kept to the
      microsecond): rewritten to ``SSSSSSSSS``, which Spark reads with 1 to 9 digits;
    * ``date_from_day``: ``"year"`` when the pattern has no year (the year comes from the
      partition's day, with December/January rollover), ``"date"`` when it has no date at all
      (the partition's day is the date);
    * ``timezone``: the wall-clock zone of the text (appended as a ``VV`` zone id unless it is
      UTC, the Spark session's zone, or the pattern has a zone of its own).
    """

    kind: str
    pattern: str
    timezone: str = "UTC"
    spark_pattern: str = ""
    weekday: str | None = None
    millis_separator: str | None = None
    date_from_day: str | None = None
    has_zone: bool = False

    @property
    def append_zone(self) -> bool:
        return self.kind == "pattern" and not self.has_zone and self.timezone != "UTC"

    def weekday_regex(self) -> str | None:
        if self.weekday is None:
            return None
        if self.weekday == "end":
            return rf"(?i)[,. ]*\b{_WEEKDAY}\.?$"
        return rf"(?i)\b{_WEEKDAY}[,. ]*"


def _tokens(pattern: str) -> list[str]:
    """Split a datetime pattern into letter runs, quoted literals and single other characters."""
    tokens, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":
            end = i + 1
            while True:
                end = pattern.find("'", end)
                if end < 0:
                    raise ValueError(f"unbalanced quote in {pattern!r}")
                if pattern.startswith("''", end):      # '' inside quotes is a quote
                    end += 2
                    continue
                break
            tokens.append(pattern[i:end + 1])
            i = end + 1
        elif ch.isascii() and ch.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == ch:
                j += 1
            tokens.append(pattern[i:j])
            i = j
        else:
            if ch in "#{}":
                raise ValueError(f"character {ch!r} is reserved in datetime patterns (quote it: '{ch}')")
            tokens.append(ch)
            i += 1
    return tokens


def _is_letters(token: str) -> bool:
    return token[:1].isascii() and token[:1].isalpha()


def compile_timestamp_format(fmt: str, timezone: str = "UTC") -> TimestampFormat:
    """Check a ``timestamp.format`` (+ ``timezone``) and compile it; ValueError says what is wrong."""
    if not isinstance(fmt, str) or not fmt.strip():
        raise ValueError(f"format must be a non-empty string, got {fmt!r}")
    if not isinstance(timezone, str) or not timezone:
        raise ValueError(f"timezone must be a time zone name such as 'UTC' or 'Europe/Paris', got {timezone!r}")
    _check_timezone(timezone)
    if fmt in EPOCH_FORMATS:
        return TimestampFormat(kind=fmt, pattern=fmt, timezone=timezone)
    if "_" in fmt or fmt.lower().startswith("epoch"):
        raise ValueError(f"unknown format keyword {fmt!r} (keywords: {', '.join(EPOCH_FORMATS)}; "
                         "anything else is a Spark datetime pattern)")
    tokens = _tokens(fmt)
    for tok in tokens:
        if not _is_letters(tok):
            continue
        letter = tok[0]
        if letter not in _LETTER_COUNTS:
            raise ValueError(f"pattern letter {letter!r} in {fmt!r} cannot be parsed by Spark 4 "
                             "(week-based and some other fields are not supported)")
        if len(tok) not in _LETTER_COUNTS[letter]:
            raise ValueError(f"{tok!r} in {fmt!r}: too many or too few {letter!r} letters for Spark 4")
    letters = {tok[0] for tok in tokens if _is_letters(tok)}
    if not letters - {"E"}:
        raise ValueError(f"pattern {fmt!r} has no date or time field")
    # the weekday: removed, with the separators that follow it (or precede it, at the end)
    weekday = None
    e_positions = [i for i, tok in enumerate(tokens) if tok[0] == "E"]
    if len(e_positions) > 1:
        raise ValueError(f"pattern {fmt!r} has more than one weekday (E) field")
    if e_positions:
        i = e_positions[0]
        rest = tokens[i + 1:]
        if any(_is_letters(t) for t in rest):
            weekday = "start" if i == 0 else "middle"
            j = i + 1
            while j < len(tokens) and tokens[j] in (",", ".", " "):
                j += 1
            tokens = tokens[:i] + tokens[j:]
        else:
            weekday = "end"
            j = i
            while j > 0 and tokens[j - 1] in (",", ".", " "):
                j -= 1
            tokens = tokens[:j] + tokens[i + 1:]
    # milliseconds written as a lone S: integer milliseconds, last, after a one-character separator
    millis_separator = None
    lone = [i for i, tok in enumerate(tokens) if tok == "S"]
    if lone:
        i = lone[0]
        if i != len(tokens) - 1 or i == 0 or _is_letters(tokens[i - 1]) or len(tokens[i - 1]) != 1:
            raise ValueError(
                f"pattern {fmt!r}: a lone 'S' means unpadded integer milliseconds ('6' = 6 ms) and must be "
                "the last part of the pattern, after a separator such as ':' or '.'; write 'SSS' for a "
                "decimal fraction of a second")
        millis_separator = tokens[i - 1]
        tokens[i] = "SSS"
    # decimal fractions: any width (Spark reads 1..9 digits for SSSSSSSSS)
    for i, tok in enumerate(tokens):
        if millis_separator and i == len(tokens) - 1:
            break                                   # the lone S, now exactly SSS (padded text)
        if tok[0] == "S" and len(tok) >= 2 and (i + 1 == len(tokens) or not _is_letters(tokens[i + 1])):
            tokens[i] = "SSSSSSSSS"
    date_from_day = None
    if "y" not in letters:
        date_from_day = "year" if letters & set("MLdD") else "date"
        if date_from_day == "date" and letters & set("G"):
            raise ValueError(f"pattern {fmt!r} has an era but no date")
    spark_pattern = "".join(tokens)
    if date_from_day == "year":
        spark_pattern += " yyyy"
    elif date_from_day == "date":
        spark_pattern += " yyyy-MM-dd"
    has_zone = bool(letters & _ZONE_LETTERS)
    parsed = TimestampFormat(kind="pattern", pattern=fmt, timezone=timezone, spark_pattern=spark_pattern,
                             weekday=weekday, millis_separator=millis_separator, date_from_day=date_from_day,
                             has_zone=has_zone)
    if parsed.append_zone:
        parsed = TimestampFormat(**{**parsed.__dict__, "spark_pattern": spark_pattern + " VV"})
    return parsed


def _check_timezone(name: str) -> None:
    if name == "UTC" or re.fullmatch(r"[+-](0\d|1[0-8]):[0-5]\d", name):
        return
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {name!r} (use an IANA name such as 'Europe/Paris', "
                         "'UTC', or an offset such as '+08:00')") from exc
