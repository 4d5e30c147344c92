from __future__ import annotations

import pytest

from nightshift.logformat import LogFormat


def test_hdfs_format_splits_fields():
    fmt = LogFormat.parse("<Date> <Time> <Pid> <Level> <Component>: <Content>")
    m = fmt.python_regex.match("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_1 terminating")
    assert m.groupdict() == {
        "Date": "081109", "Time": "203615", "Pid": "148", "Level": "INFO",
        "Component": "dfs.DataNode$PacketResponder", "Content": "PacketResponder 1 for block blk_1 terminating",
    }
    assert fmt.group_index == {"Date": 1, "Time": 2, "Pid": 3, "Level": 4, "Component": 5, "Content": 6}


def test_literal_text_is_a_regex_and_user_groups_shift_indices():
    fmt = LogFormat.parse(r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>")
    assert fmt.group_index["PID"] == 7 and fmt.group_index["Content"] == 8
    with_pid = fmt.python_regex.match("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown")
    assert with_pid["PID"] == "19939" and with_pid["Content"] == "check pass; user unknown"
    without_pid = fmt.python_regex.match("Jun 14 15:16:01 combo kernel: Linux version 2.6")
    assert without_pid["PID"] is None and without_pid["Component"] == "kernel"


def test_runs_of_spaces_match_any_whitespace():
    fmt = LogFormat.parse(r"\[<Time>\] \[<Level>\] <Content>")
    m = fmt.python_regex.match("[Sun Dec 04 04:47:44 2005]\t[notice]   workerEnv.init() ok")
    assert m["Level"] == "notice" and m["Content"] == "workerEnv.init() ok"


@pytest.mark.parametrize("bad", ["no fields here", "<A> <A>", "<1x> <Content>", "<A> (unclosed <Content>"])
def test_bad_format_strings_are_rejected(bad):
    with pytest.raises(ValueError):
        LogFormat.parse(bad)


def test_a_field_before_an_optional_group_fails_a_line_without_the_text_after_it_in_one_scan():
    """Linux's ``<Component>(\\[<PID>\\])?: <Content>``: the ``: `` that must follow the optional
    group is looked for once, at the start of the line (and of every prefix through the field),
    so a hostile line of brackets without it is quarantined with its detail at once (without the
    lookahead, 20,000 ``[a]`` cost seconds: quadratic). A match has that text, so no field changes
    (tests/test_logformat_loghub.py checks the fields against Loghub's own regex)."""
    fmt = LogFormat.parse(r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>")
    assert fmt.regex.startswith(r"^(?=.*?:\s+)(?<Month>")
    assert [p for p, _ in fmt.prefixes if "<Component>" in p] and all(
        p.startswith(r"^(?=.*?:\s+)") for p, _ in fmt.prefixes if "<Component>" in p)
    hostile = "Jun 14 15:16:01 combo " + "[a]" * 20000
    assert not fmt.python_regex.match(hostile)
    assert fmt.mismatch_detail(hostile) == r"no '(\[<PID>\])?: ' after <Component>"
    fields = fmt.python_regex.match("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass").groupdict()
    assert (fields["Component"], fields["PID"], fields["Content"]) == ("sshd(pam_unix)", "19939", "check pass")
    # no lookahead where the group is not optional or no plain text follows it
    assert not LogFormat.parse(r"<A>(\[<B>\]): <C>").regex.startswith("^(?=")
    assert not LogFormat.parse(r"<A>(\[<B>\])?<C>").regex.startswith("^(?=")
