"""Our compiled format strings against Loghub's own parser regex: every line Loghub's regex parses,
we parse to the same fields (and a line Loghub cannot parse, we cannot either), on the ten real
samples and on constructed lines, including fields with spaces before a ``' - '`` (Proxifier)."""

from __future__ import annotations

import csv
import json
import random
import re
import time

import pytest

from nightshift.logformat import LogFormat
from nightshift.settings import PROJECT_ROOT

LOGHUB = PROJECT_ROOT / "tests" / "fixtures" / "loghub"
PUBLISHED = json.loads((LOGHUB / "benchmark_settings.json").read_text())
PROXIFIER = r"\[<Time>\] <Program> - <Content>"           # Loghub's published Proxifier format


def loghub_regex(log_format: str) -> tuple[list[str], re.Pattern[str]]:
    """Loghub's ``generate_logformat_regex`` (logparser, e.g. Drain.py), re-implemented."""
    headers, regex = [], ""
    splitters = re.split(r"(<[^<>]+>)", log_format)
    for k, splitter in enumerate(splitters):
        if k % 2 == 0:
            regex += re.sub(" +", "\\\\s+", splitter)
        else:
            header = splitter.strip("<").strip(">")
            regex += f"(?P<{header}>.*?)"
            headers.append(header)
    return headers, re.compile("^" + regex + "$")


def assert_same_parse(log_format: str, lines) -> int:
    """Every line: Loghub's fields == ours (both None when neither parses). Returns lines parsed."""
    headers, theirs = loghub_regex(log_format)
    ours = LogFormat.parse(log_format)
    assert list(ours.fields) == headers
    mine, parsed = ours.python_regex, 0
    for line in lines:
        expected = theirs.search(line)
        got = mine.match(line)
        expected = None if expected is None else [expected.group(h) for h in headers]
        got = None if got is None else [got.group(h) for h in headers]
        assert got == expected, (log_format, line)
        if got is not None:
            # Spark reads fields by group number (group_index): the same fields
            assert [mine.match(line).group(ours.group_index[h]) for h in headers] == got
        parsed += got is not None
    return parsed


@pytest.mark.parametrize("system", sorted(PUBLISHED))
def test_the_ten_samples_parse_as_loghub_parses_them(system):
    lines = (LOGHUB / f"{system}_2k.log").read_text(encoding="utf-8", errors="replace").splitlines()
    assert len(lines) == 2000
    # Loghub strips each line before matching; our ingest does not: compare on the same text
    assert assert_same_parse(PUBLISHED[system]["log_format"], [line.strip() for line in lines]) == 2000


def test_a_field_may_span_spaces_as_in_loghub():
    line = ("[10.30 16:49:06] chrome.exe *64 - proxy.cse.cuhk.edu.hk:5070 open through proxy "
            "proxy.cse.cuhk.edu.hk:5070 HTTPS")
    m = LogFormat.parse(PROXIFIER).python_regex.match(line)
    assert m.groupdict() == {"Time": "10.30 16:49:06", "Program": "chrome.exe *64",
                             "Content": "proxy.cse.cuhk.edu.hk:5070 open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS"}
    assert_same_parse(PROXIFIER, [
        line,
        "[10.30 16:49:06] chrome.exe *64 - a - b - c",                  # the first ' - ' ends Program
        "[10.30 16:49:06] Google Chrome Helper - x",
        "[10.30 16:49:06]  - x",                                         # empty Program: ' - ' overlaps the run
        "[10.30 16:49:06]    chrome.exe   -   x  ",
        "[a] b] c - d",                                                  # ']' inside a field
        "[10.30 16:49:06] chrome.exe *64 no dash here",
        "[10.30 16:49:06] chrome.exe - ",
        "[10.30 16:49:06] chrome.exe -",
        "10.30 16:49:06] x - y",
    ])


# formats with every form: tokens, atomic fields with literals (with and without trailing spaces),
# an unbalanced group literal (Linux), a literal after the last field, empty literals; each with
# the line skeletons it describes ({} a field), filled with random pieces and then mutated
FORMATS = {
    PROXIFIER: ["[{}] {} - {}"],
    "<Date> <Time> <Pid> <Level> <Component>: <Content>": ["{} {} {} {} {}: {}"],
    r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>": ["{} {} {} [{}] {}: {}"],
    r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>": ["{} {} - {}  [{}:{}@{}] - {}"],
    r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>": ["{} {} {} {} {}[{}]: {}",
                                                                        "{} {} {} {} {}: {}"],
    r"<Time>\|<Component>\|<Pid>\|<Content>": ["{}|{}|{}|{}"],
    "<Date> <Time>, <Level>    <Component>  <Content>": ["{} {}, {}    {}  {}"],
    "<A> - <B> <C>: <D>": ["{} - {} {}: {}"],
    r"<A> <B> - <C> \[<D>\]": ["{} {} - {} [{}]"],
    "<A>:<B><C>": ["{}:{}{}"],
    "<A> <B>": ["{} {}"],
}
PIECES = ["a", "b", "x y", " ", "  ", "-", " - ", "[", "]", ":", ": ", "|", "@", ",", ", ", "\t", ""]


def constructed_lines(skeletons: list[str], n: int, seed: int = 12) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        skeleton = rng.choice(skeletons)
        fill = ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 3))) for _ in range(skeleton.count("{}"))]
        line = skeleton.replace(" ", "\0").format(*fill)
        line = "".join(rng.choice([" ", " ", "  ", "\t"]) if ch == "\0" else ch for ch in line)
        for _ in range(rng.choice([0, 0, 1, 2])):       # mutations: delete a character, insert a piece
            i = rng.randint(0, len(line))
            line = line[:i] + line[i + 1:] if rng.random() < 0.5 else line[:i] + rng.choice(PIECES) + line[i:]
        lines.append(line)
    return lines


@pytest.mark.parametrize("log_format", list(FORMATS))
def test_constructed_lines_parse_as_loghub_parses_them(log_format):
    lines = constructed_lines(FORMATS[log_format], 6000)
    parsed = assert_same_parse(log_format, lines)
    assert 0.2 * len(lines) < parsed < len(lines), "both lines that parse and lines that do not"


def test_where_the_atomic_form_differs_from_loghub():
    """The one kind of difference (LogFormat.parse): a literal with alternatives of different
    lengths, whose first alternative matches but leaves the rest of the line unparseable."""
    fmt = "<A>(xy|x)<B>y<C>"
    _, theirs = loghub_regex(fmt)
    assert theirs.match("1xy2").groupdict() == {"A": "1", "B": "", "C": "2"}
    assert LogFormat.parse(fmt).python_regex.match("1xy2") is None


@pytest.mark.parametrize("log_format", [PROXIFIER, "<Date> <Time> <Pid> <Level> <Component>: <Content>",
                                        r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>"])
def test_lines_that_do_not_match_fail_fast(log_format):
    """Loghub's regex needs polynomial time on these (every combination of field ends); ours one
    scan per field."""
    rx = LogFormat.parse(log_format).python_regex
    hostile = ["[x] " + "word - " * 20000, " ".join(["word"] * 20000), "[ " * 20000,
               "a - " * 20000 + "[" + ":" * 20000, "2015-07-29 - " * 20000]
    for line in hostile:
        start = time.perf_counter()
        rx.match(line)
        assert time.perf_counter() - start < 0.5, (log_format, line[:40])


def test_the_detail_names_where_the_line_stopped_matching():
    fmt = LogFormat.parse(PROXIFIER)
    assert fmt.mismatch_detail("[10.30 16:49:06] chrome.exe *64 - open") is None
    assert fmt.mismatch_detail("[10.30 16:49:06] chrome.exe *64 open") == "no ' - ' after <Program>"
    assert fmt.mismatch_detail("[10.30 16:49:06 chrome.exe") == r"no '\] ' after <Time>"
    assert fmt.mismatch_detail("10.30 chrome.exe - x") == r"the line does not start with '\['"
    hdfs = LogFormat.parse("<Date> <Time> <Pid> <Level> <Component>: <Content>")
    assert hdfs.mismatch_detail("081109 203615 148 INFO no colon here") == "no ': ' after <Component>"
    assert hdfs.mismatch_detail("081109 203615") == "no whitespace after <Time>"
    assert hdfs.mismatch_detail("this is not a log line") == "no ': ' after <Component>"
    linux = LogFormat.parse(r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>")
    # a cut inside the optional group is not a regex of its own: the span up to the next cut is named
    assert linux.mismatch_detail("Jun 14 15:16:01 combo sshd[1] x") == r"no '(\[<PID>\])?: ' after <Component>"
    tail = LogFormat.parse(r"<A> <B>\]")
    assert tail.mismatch_detail("a b") == r"no '\]' at the end of the line after <B>"


@pytest.mark.parametrize("system", sorted(PUBLISHED))
def test_the_ten_samples_split_into_loghubs_published_fields(system):
    """Loghub's own output for the samples (``<system>_2k.log_structured.csv``: one column per
    field, made from each line stripped): our fields equal its columns on every line."""
    fmt = LogFormat.parse(PUBLISHED[system]["log_format"])
    lines = (LOGHUB / f"{system}_2k.log").read_text(encoding="utf-8", errors="replace").splitlines()
    with (LOGHUB / f"{system}_2k.log_structured.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(lines) == 2000
    for line, row in zip(lines, rows):
        m = fmt.python_regex.match(line.strip())
        assert {f: m.group(f) or "" for f in fmt.fields if f in row} == {f: row[f] for f in fmt.fields if f in row}, line
