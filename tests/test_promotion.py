"""The promotion rule, on cases where the right decision is known."""

from __future__ import annotations

import pytest

from nightshift.promotion import KEPT, PROMOTED, decide
from nightshift.settings import PROJECT_ROOT
from nightshift.training import load_training_config


@pytest.fixture(scope="module")
def config():
    return load_training_config(PROJECT_ROOT / "config")


def _best(f1):
    return {"candidate": "random_forest", "metrics": {"f1": f1}}


def test_first_champion_needs_the_floor(config):
    assert decide(_best(config.floor), None, config)[0] == PROMOTED
    decision, reason = decide(_best(config.floor - 0.01), None, config)
    assert decision == KEPT and "floor" in reason


def test_challenger_must_beat_champion_by_the_margin(config):
    assert decide(_best(0.90 + config.margin), 0.90, config)[0] == PROMOTED
    decision, reason = decide(_best(0.90 + config.margin / 2), 0.90, config)
    assert decision == KEPT and "margin" in reason
    assert decide(_best(0.5), 0.9, config)[0] == KEPT
