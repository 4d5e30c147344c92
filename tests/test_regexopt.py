"""The first-character guard on mask regexes: computed exactly, and never changes a match."""

import random
import re

import pytest

from nightshift.regexopt import first_char_class, with_first_char_guard


@pytest.mark.parametrize(
    "pattern, expected",
    [
        (r"\d+", r"[\d]"),
        (r"-?\d+", r"[\d\u002d]"),
        (r"(?<=blk_)-?\d+", r"[\d\u002d]"),
        (r"0x[0-9a-fA-F]+|/?(\d{1,3}\.){3}", r"[0\d\u002f]"),
        (r"(?<![A-Za-z0-9])-?\d+(?![A-Za-z])", r"[\d\u002d]"),
        (r"[a-c_]x", r"[\u005fa-c]"),
    ],
)
def test_first_char_class(pattern, expected):
    assert first_char_class(pattern) == expected


@pytest.mark.parametrize(
    "pattern",
    [
        r"\d*",            # can be empty: matches at every position
        r".+",             # any character
        r"[^a]b",          # negated class
        r"(?i)abc",        # case-insensitive
        r"(a)?\1",         # back-reference after an optional group
        r"(?<name>x)",     # Java-only syntax: not parsed, left alone
        r"(?=\d)",         # zero width only
    ],
)
def test_unknown_first_char_leaves_pattern_unchanged(pattern):
    assert first_char_class(pattern) is None
    assert with_first_char_guard(pattern) == pattern


def test_guard_never_changes_a_replacement():
    patterns = [
        r"(?:(?<=blk_)-?\d+(\s+blk_-?\d+)*)|(?:/?(\d{1,3}\.){3}\d{1,3}(:\d+)?)|(?:0x[0-9a-fA-F]+)|(?:(?<![A-Za-z0-9])-?\d+)",
        r"(?:(?<=core\.)\d+)|(?:(?<![A-Za-z0-9_])-?\d+(?![A-Za-z0-9_]))",
        r"[a-f]+\d",
        r"(ab|cd)?x+",
    ]
    rng = random.Random(7)
    alphabet = "abcdefx0123456789-_/.: blk_core.0x"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(3000)]
    texts += ["blk_-123 blk_45 to /10.0.0.1:50010 size 0x1F part-00050", "core.2275 ce sym 20, at 0x0b85eee0"]
    for pattern in patterns:
        guarded = with_first_char_guard(pattern)
        assert guarded != pattern
        for text in texts:
            assert re.sub(guarded, "<*>", text) == re.sub(pattern, "<*>", text), (pattern, text)
