r"""Loghub-style log format strings, compiled to one (Java-compatible) regular expression.

Semantics are Loghub's (its parsers' ``generate_logformat_regex``; like them, the ingest matches
each line stripped of blanks at both ends): ``<Field>`` is a named field,
the text between fields is a regular expression in which runs of spaces match any whitespace
(``\s+``), the whole line must match (``^...$``), and every field is the *shortest* text for which
the rest of the line still matches (Loghub compiles each field to ``(?P<F>.*?)``). So a field may
span spaces: with ``[<Time>] <Program> - <Content>``, ``[10.30 16:49:06] chrome.exe *64 - open``
has Program ``chrome.exe *64``. Example: ``<Date> <Time> <Pid> <Level> <Component>: <Content>``.

Loghub's regex backtracks over every combination of field ends on a line that does not match
(polynomial in the line length, one degree per field). Ours gives the same fields on every line
Loghub parses, without that search (see :meth:`LogFormat.parse` for the forms and why they are
equal, and for the contrived literals where they are not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_FIELD = re.compile(r"<([^<>]+)>")
_GROUP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")


@dataclass(frozen=True)
class LogFormat:
    format_string: str
    fields: tuple[str, ...]
    regex: str                      # anchored pattern, works in Python ``re`` and Java
    group_index: dict[str, int]     # field name -> capturing group number in ``regex``
    # Where a line stopped matching: ``(prefix regex, what is missing after it)``, longest prefix
    # first; a line that fails ``regex`` but matches a prefix fails at the part after it. The
    # last entry's prefix is ``^`` (matches every line). See :meth:`mismatch_detail`.
    prefixes: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, format_string: str) -> "LogFormat":
        r"""Compile ``format_string``. Each field becomes one of three forms:

        * the last field: ``(?<F>.*)`` (``(?<F>.*?)`` when a literal follows it, as Loghub's);
        * a field followed by spaces only (``<Level> <Component>``): ``(?<F>\S*+)``, the next
          token, possessive (never given back). Loghub's ``.*?`` gives the same field on every
          line it parses: the shortest text followed by whitespace is the text up to the first
          whitespace, and if the line matches with the field ending at a later whitespace it
          also matches with it ending at the first one (the next field, ``.*?``, can take the
          text in between), which Loghub tries first. The ``\s+`` after it is not possessive:
          Loghub's can give back whitespace to the next field, and so can ours;
        * a field followed by any other literal ``L`` (``<Program> - <Content>``):
          ``(?>(?<F>.*?)L)``, an atomic group holding the field and its literal. It finds the
          shortest field followed by ``L`` and never reconsiders it, so a line costs one scan per
          field instead of Loghub's search over every combination of field ends (polynomial:
          one degree per field) on lines that do not match. It is Loghub's choice by the same
          argument: Loghub tries that end first, and from the end of the first ``L`` the rest
          matches whenever it matches from a later one (the next field takes the text in
          between). A trailing run of spaces in ``L`` stays outside the group (``(?>..L\s)\s*``)
          so, as in Loghub, it can give whitespace back to the next field.

        Where they differ: the argument needs ``L``'s match at a given position to have one length
        (up to its trailing whitespace), true of every published Loghub format. A literal regex
        with alternatives of different lengths is committed to the first alternative that lets
        the group match: with ``<A>(xy|x)<B>y<C>`` the line ``1xy2`` is quarantined by us (the
        group took ``xy``; no ``y`` follows) while Loghub backtracks to ``x`` and parses A=``1``,
        B=``""``, C=``2``. A literal that is not a regex of its own (an unbalanced group, as
        after ``<Component>`` in ``<Component>(\[<PID>\])?: <Content>``, or one starting with a
        quantifier) keeps Loghub's plain ``(?<F>.*?)``: Loghub's fields, and Loghub's cost on
        non-matching lines for that field, except that when the group is optional and plain
        text must follow it (``\])?: ``), a lookahead for that text at the start of the line fails
        a line without it in one scan instead of a scan from every ``[``; a line that has the text
        but not the group's end stays quadratic in its length.
        """
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
        group_index: dict[str, int] = {}
        groups_so_far = 0
        # units: the leading literal, then each field with the literal after it
        lead = _literal_regex(parts[0])
        groups_so_far += _count_capturing_groups(lead)
        units: list[tuple[str, str]] = [(lead, f"the line does not start with {_quote(parts[0])}")]
        guards: dict[int, str] = {}     # unit index -> lookahead put at the start of the line
        for k, name in enumerate(fields):
            literal = parts[2 * k + 2]
            lit = _literal_regex(literal)
            group_index[name] = groups_so_far + 1
            groups_so_far += 1 + _count_capturing_groups(lit)
            if k == len(fields) - 1:
                form = f"(?<{name}>.*?){lit}" if literal else f"(?<{name}>.*)"
                what = (f"no {_quote(literal)} at the end of the line after <{name}>" if literal
                        else f"<{name}> does not match the rest of the line")
            elif literal and not literal.strip(" "):
                form = f"(?<{name}>\\S*+){lit}"
                what = f"no whitespace after <{name}>"
            elif _is_self_contained(lit):
                if literal.endswith(" "):        # lit ends with the \s+ made from it
                    form = f"(?>(?<{name}>.*?){lit[:-1]})\\s*"
                else:
                    form = f"(?>(?<{name}>.*?){lit})"
                what = f"no {_quote(literal)} after <{name}>"
            else:
                # an unbalanced literal opens an optional group closed after the next field
                # (``<Component>(\[<PID>\])?: ``): Loghub's lazy field, and the scan for the
                # group's end from every place the group can start is quadratic on a line without
                # the text that must follow the group. That text is in every match, so a
                # lookahead for it at the start of the line (evaluated once, whatever the
                # backtracking before the field) changes no field and fails such a line in one scan.
                required = _text_after_optional_group(literal, parts[2 * k + 4] if 2 * k + 4 < len(parts) else "")
                if required:
                    guards[len(units)] = f"(?=.*?{_literal_regex(required)})"
                form = f"(?<{name}>.*?){lit}"
                what = f"no {_quote(literal)} after <{name}>"
            units.append((form, what))
        regex = "".join(form for form, _ in units)
        anchored = "^" + "".join(guards.values()) + f"{regex}$"
        prefixes = _prefixes(units, fields, parts, guards)
        parsed = cls(format_string=format_string, fields=fields, regex=anchored, group_index=group_index,
                     prefixes=prefixes)
        try:
            parsed.python_regex
        except re.error as exc:
            raise ValueError(f"format string {format_string!r} is not a valid regex: {exc}") from exc
        return parsed

    @property
    def python_regex(self) -> re.Pattern[str]:
        """The same pattern for Python's ``re`` (which spells named groups ``(?P<name>``)."""
        return re.compile(self._to_python(self.regex))

    def _to_python(self, pattern: str) -> str:
        for name in self.fields:
            pattern = pattern.replace(f"(?<{name}>", f"(?P<{name}>", 1)
        return pattern

    def mismatch_detail(self, line: str) -> str | None:
        """Where ``line`` stops matching the format (``None`` when it matches), e.g.
        ``no ' - ' after <Program>``: the part after the longest prefix of the format the line
        matches (the Spark ingest's ``detail`` column gives the same answer for the line stripped
        of blanks at both ends, which is what it matches: ``nightshift.ingest.strip_blanks``)."""
        if self.python_regex.match(line):
            return None
        for prefix, what in self.prefixes:
            if re.match(self._to_python(prefix), line, re.DOTALL):
                return what
        return self.prefixes[-1][1]


def _quote(text: str) -> str:
    """Format-string text as the user wrote it, in quotes (no escaping: it is the regex text)."""
    return f"'{text}'"


def _literal_regex(literal: str) -> str:
    return re.sub(r" +", r"\\s+", literal)


def _text_after_optional_group(opening: str, closing: str) -> str:
    """When ``opening`` (the literal after a field) opens one group that ``closing`` (the literal
    after the next field) closes with ``)?``, the plain text after that ``)?``, which every match
    then contains (``(\\[`` and ``\\])?: `` -> ``': '``); otherwise, or when that text is not plain
    (regex syntax), empty."""
    opened = [ch for _, ch in _structural_chars(opening)[0] if ch in "()"]
    chars, unterminated = _structural_chars(closing)
    marks = [(i, ch) for i, ch in chars if ch in "()"]
    if opened != ["("] or unterminated or not marks or marks[0][1] != ")" or closing[marks[0][0] + 1:marks[0][0] + 2] != "?":
        return ""
    tail = closing[marks[0][0] + 2:]
    plain = tail.rstrip(" ")
    return tail if plain and re.escape(plain) == plain else ""


def _is_self_contained(lit: str) -> bool:
    """Is a literal between two fields a regex of its own (balanced groups, no leading
    quantifier; Python syntax), so that it can be wrapped in a group without changing its
    meaning?"""
    if lit[:1] in ("?", "*", "+", "{"):
        return False
    depth = 0
    chars, unterminated = _structural_chars(lit)
    for _, ch in chars:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
    if depth or unterminated:
        return False
    try:
        re.compile(lit)
    except re.error:
        return False
    return True


def _prefixes(units: list[tuple[str, str]], fields: tuple[str, ...], parts: list[str],
              guards: dict[int, str] | None = None) -> tuple[tuple[str, str], ...]:
    r"""``(prefix regex, what fails after it)`` for every cut between units where the prefix is a
    regex of its own, longest first. A cut inside a group (between ``<Component>(\\[`` and
    ``<PID>\\])?: ``) is skipped: the failure is then named from the cut before, with the format
    text up to the next cut."""
    def python(pattern: str) -> str:
        for name in fields:
            pattern = pattern.replace(f"(?<{name}>", f"(?P<{name}>", 1)
        return pattern

    def span_text(first: int, last: int) -> str:
        """The format text from after field ``first`` through the literal after field ``last``."""
        text = parts[2 * first + 2]
        for k in range(first + 1, last + 1):
            text += f"<{fields[k]}>" + parts[2 * k + 2]
        return text

    cuts = []              # (index of the first unit after the cut, prefix regex)
    prefix = ""
    for i in range(len(units)):
        if _is_self_contained(python(prefix)):
            cuts.append((i, prefix))
        prefix += units[i][0]
    out, seen = [], set()
    for n in range(len(cuts) - 1, -1, -1):
        i, prefix = cuts[n]
        if prefix in seen:              # an empty unit: the longer cut already names the failure
            continue
        seen.add(prefix)
        following = cuts[n + 1][0] if n + 1 < len(cuts) else len(units)
        what = units[i][1]
        if following - i > 1 and i > 0:  # several units up to the next cut
            what = f"no {_quote(span_text(i - 1, following - 2))} after <{fields[i - 1]}>"
        # a prefix through a guarded unit starts with that unit's lookahead, as the format does
        out.append(("^" + "".join(g for u, g in (guards or {}).items() if u < i) + prefix, what))
    return tuple(out)


def _structural_chars(pattern: str) -> tuple[list[tuple[int, str]], bool]:
    """The (index, character) pairs of a regex fragment that are neither escaped nor inside a
    ``[...]`` class, and whether the fragment ends inside an escape or a class."""
    out: list[tuple[int, str]] = []
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
        else:
            out.append((i, ch))
    return out, escaped or in_class


def _count_capturing_groups(pattern: str) -> int:
    """Count capturing groups in a regex fragment (unescaped ``(`` not followed by ``?``, outside [])."""
    return sum(1 for i, ch in _structural_chars(pattern)[0] if ch == "(" and not pattern.startswith("(?", i))


# --- timestamps -------------------------------------------------------------------------------

EPOCH_FORMATS = ("epoch_s", "epoch_ms")
_EPOCH_MAX_S = 253402300800          # 10000-01-01: later (or garbled) numbers are not timestamps
# Spark datetime pattern letters accepted for parsing, with the letter counts Spark 4 accepts.
# Week-based and other letters Spark rejects in parsing (Y w W u e c F Q q ...) are refused.
_LETTER_COUNTS = {
    "G": range(1, 5), "y": (2, 4), "D": range(1, 4), "M": range(1, 5), "L": range(1, 5),
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


_MONTH_NAMES = ("january|february|march|april|may|june|july|august|september|october|november|december|"
                "jan|feb|mar|apr|jun|jul|aug|sep|oct|nov|dec")


def year_sign_guard(pattern: str) -> str | None:
    """A regex (Java and Python) for a timestamp text (as written, for the ``timestamp.format``
    ``pattern``) whose ``yyyy`` year has a sign and six digits or
    more, or ``None`` when the pattern has no ``yyyy``. Spark parses such a year and then fails the
    whole job with a long overflow (``try_to_timestamp`` does not catch it) once it is beyond
    +-290,000; no log has such years, so they are bad timestamps. The fields before the year are
    matched by their shape (digits, month names), anything else loosely."""
    tokens = _tokens(pattern)
    if "yyyy" not in tokens:
        return None
    prefix = []
    for tok in tokens[:tokens.index("yyyy")]:
        letter, count = tok[0], len(tok)
        if tok.startswith("'"):
            text = tok[1:-1].replace("''", "'") if len(tok) > 2 else "'"
            prefix.append("".join(ch if ch.isalnum() else "\\" + ch for ch in text))
        elif not _is_letters(tok):
            prefix.append(tok if tok.isalnum() else "\\" + tok)
        elif letter in "ML" and count >= 3:
            prefix.append(f"(?:{_MONTH_NAMES})")
        elif letter in "MLdHmsyhkK":
            prefix.append("[0-9]+" if count == 1 else f"[0-9]{{{count}}}")
        elif letter == "S":
            prefix.append(f"[0-9]{{1,{count}}}")
        elif letter == "E":
            prefix.append("[a-z]+\\.?")
        else:
            prefix.append(".*?")
    return "(?i)^" + "".join(prefix) + "[+-][0-9]{6}"


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
        if letter == "y" and len(tok) not in _LETTER_COUNTS["y"]:
            # y, yyy, yyyyy...: Spark reads up to 19 digits, and a year beyond its range crashes the
            # job (long overflow) where it should be a bad timestamp
            raise ValueError(f"{tok!r} in {fmt!r}: write the year as 'yyyy' (or 'yy' for two digits, 2000-2099)")
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
