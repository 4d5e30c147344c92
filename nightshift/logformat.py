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
