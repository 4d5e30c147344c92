"""Fault injection on the champion chain: races, an unreachable registry, kills between steps,
re-runs and a torn promotion log. After each fault the aliases and the promotion log's committed
entries must still agree: the log is the chain of alias moves, champion = its last target,
previous = its last source.

Alias-level tests use a SQLite MLflow store (or an ``mlflow server`` on it) with model versions
created directly; the re-run tests train real scikit-learn models (helpers of test_promotion).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nightshift import promotion_log
from nightshift.settings import PROJECT_ROOT, load_settings
from nightshift_stack.stack import free_port
from tests.test_promotion import DAYS, _sessions, _write_day, env  # noqa: F401  (fixture)

MODEL = "log_anomaly_test"


@pytest.fixture(autouse=True)
def fail_fast(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


@pytest.fixture
def settings(tmp_path):
    return dataclasses.replace(load_settings(), data_root=tmp_path / "lake", lock_url=None,
                               mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def _make_versions(settings, n: int, model: str = MODEL) -> list[str]:
    """``n`` versions of ``model`` that passed the gate (no artifacts: only aliases are moved)."""
    from mlflow import MlflowClient

    uri = settings.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(model)
    versions = []
    for i in range(n):
        mv = client.create_model_version(model, source=f"file:///nonexistent/model-{i}")
        client.set_model_version_tag(model, mv.version, "nightshift.gate_passed", "true")
        versions.append(str(mv.version))
    return versions


def _aliases(settings, model: str = MODEL) -> dict[str, str | None]:
    from mlflow import MlflowClient

    uri = settings.mlflow_tracking_uri
    found = MlflowClient(tracking_uri=uri, registry_uri=uri).get_registered_model(model).aliases
    return {a: (str(found[a]) if a in found else None) for a in ("champion", "previous")}


def _moves(settings, model: str = MODEL) -> list[tuple]:
    return [(e["action"], e["from_version"], e["to_version"]) for e in promotion_log.read(settings.data_root, model)]


def _assert_chain_matches_aliases(settings, model: str = MODEL) -> None:
    moves = _moves(settings, model)
    for (_, _, before), (_, src, _) in zip(moves, moves[1:]):
        assert src == before, f"log is not a chain: {moves}"
    aliases = _aliases(settings, model)
    assert aliases["champion"] == (moves[-1][2] if moves else None), (aliases, moves)
    if moves and moves[-1][1] is not None:
        assert aliases["previous"] == moves[-1][1], (aliases, moves)
    assert not promotion_log.view(settings.data_root, model).pending


def _move(settings, to, expected, action="promote"):
    from nightshift import registry

    return registry.move_champion(settings, MODEL, to, expected_champion=expected, action=action,
                                  decided_by="test", reason=f"test {action} to v{to}")


# ---------------------------------------------------------------- races

def test_promote_racing_a_rollback_is_refused_and_changes_nothing(settings):
    from nightshift.registry import ChampionChanged
    from nightshift.rollback import rollback

    _make_versions(settings, 3)
    _move(settings, "1", None)
    _move(settings, "2", "1")
    decided_against = "2"                     # evaluate_candidates judged v3 against champion v2 ...
    rollback(settings, MODEL, decided_by="test", reason="v2 misbehaves")   # ... then a rollback v2 -> v1 ran
    with pytest.raises(ChampionChanged, match=r"champion is v1 now.*made against v2.*Re-run evaluate_candidates to judge against v1"):
        _move(settings, "3", decided_against)
    assert _aliases(settings) == {"champion": "1", "previous": "2"}
    assert _moves(settings) == [("promote", None, "1"), ("promote", "1", "2"), ("rollback", "2", "1")]
    _assert_chain_matches_aliases(settings)


def test_the_champion_watch_does_not_roll_back_a_version_it_did_not_judge(settings):
    from nightshift.registry import ChampionChanged
    from nightshift.rollback import rollback

    _make_versions(settings, 3)
    _move(settings, "1", None)
    _move(settings, "2", "1")
    _move(settings, "3", "2")                 # promoted after the watch saw v2 failing
    with pytest.raises(ChampionChanged, match="champion is v3 now"):
        rollback(settings, MODEL, decided_by="watch", reason="v2 below floors", expected_champion="2")
    assert _aliases(settings) == {"champion": "3", "previous": "2"}
    _assert_chain_matches_aliases(settings)


def test_concurrent_moves_are_serialised_by_the_lock(settings):
    """Two processes promote against the same champion at once: one wins, the other is refused."""
    _make_versions(settings, 3)
    _move(settings, "1", None)
    procs = [_spawn_move(settings, to, "1") for to in ("2", "3")]
    outcomes = sorted(p.wait(timeout=120) for p in procs)
    assert outcomes == [0, 3], [p.stderr.read() for p in procs]
    assert len(_moves(settings)) == 2
    _assert_chain_matches_aliases(settings)


# ---------------------------------------------------------------- registry unavailable

def test_champion_lookup_tells_no_alias_from_registry_down(settings):
    from mlflow import MlflowClient

    from nightshift import registry
    from nightshift.promotion import champion_version

    assert registry.champion(settings, "never_registered") is None             # no model
    _make_versions(settings, 1)
    assert registry.champion(settings, MODEL) is None                          # model, no alias yet
    assert registry.alias(registry.client(settings), MODEL, "challenger") is None

    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(registry.RegistryUnavailable, match=f"MLflow registry at {dead} unavailable"):
        registry.champion(dataclasses.replace(settings, mlflow_tracking_uri=dead), MODEL)
    # the old entry point too: a connection error is not "no champion"
    with pytest.raises(Exception, match="unavailable"):
        champion_version(MlflowClient(tracking_uri=dead, registry_uri=dead), MODEL)


def _start_server(backend: str, port: int, cwd: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", backend,
         "--artifacts-destination", str(cwd / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=open(cwd / f"server-{time.time()}.log", "w"), start_new_session=True)
    import urllib.request

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return proc
        except OSError:
            assert proc.poll() is None, "mlflow server exited"
            time.sleep(0.5)
    raise TimeoutError("mlflow server did not start")


def _stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


def test_registry_unreachable_during_promotion_then_the_retry_succeeds(settings, tmp_path):
    from nightshift import registry

    backend = settings.mlflow_tracking_uri
    _make_versions(settings, 2)
    _move(settings, "1", None)
    log_before = promotion_log.log_path(settings.data_root, MODEL).read_bytes()

    port = free_port()
    http = dataclasses.replace(settings, mlflow_tracking_uri=f"http://127.0.0.1:{port}")
    server = _start_server(backend, port, tmp_path)
    try:
        assert str(registry.champion(http, MODEL).version) == "1"           # reachable: works over HTTP
    finally:
        _stop_server(server)

    with pytest.raises(registry.RegistryUnavailable, match=f"http://127.0.0.1:{port}"):
        _move(http, "2", "1")
    # the promote task's first call too (seen in tests/test_stack.py: a raw MlflowException before)
    from nightshift.promotion import apply_decision

    with pytest.raises(registry.RegistryUnavailable,
                       match=f"MLflow registry at http://127.0.0.1:{port} unavailable while trying to open the experiment"):
        apply_decision(http, {"experiment": "nightshift-test", "model_name": MODEL, "decision": "promote",
                              "challenger_version": "2", "champion_version": "1"})
    assert _aliases(settings) == {"champion": "1", "previous": None}
    assert promotion_log.log_path(settings.data_root, MODEL).read_bytes() == log_before     # not even a pending line

    server = _start_server(backend, port, tmp_path)                          # the registry is back: the retry works
    try:
        entry = _move(http, "2", "1")
    finally:
        _stop_server(server)
    assert entry["status"] == "moved" and _aliases(settings) == {"champion": "2", "previous": "1"}
    assert _moves(settings) == [("promote", None, "1"), ("promote", "1", "2")]
    _assert_chain_matches_aliases(settings)


# ---------------------------------------------------------------- kills between steps

_MOVER = """
import dataclasses, sys
from pathlib import Path
from nightshift import registry
from nightshift.settings import load_settings
settings = dataclasses.replace(load_settings(), data_root=Path(sys.argv[1]), mlflow_tracking_uri=sys.argv[2], lock_url=None)
try:
    registry.move_champion(settings, sys.argv[3], sys.argv[4], expected_champion=sys.argv[5] or None,
                           action="promote", decided_by="subprocess", reason="test")
except registry.ChampionChanged as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
"""


def _spawn_move(settings, to: str, expected: str | None, fault: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("NIGHTSHIFT_FAULT", None)
    if fault:
        env["NIGHTSHIFT_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-c", _MOVER, str(settings.data_root), settings.mlflow_tracking_uri,
                             MODEL, to, expected or ""], env=env, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("point", ["promote:after_pending", "promote:between_aliases", "promote:before_commit"])
@pytest.mark.parametrize("then", ["read", "next_move"])
def test_a_kill_inside_a_move_is_settled_by_the_next_reader_or_move(settings, point, then):
    from nightshift import registry

    _make_versions(settings, 3)
    _move(settings, "1", None)
    proc = _spawn_move(settings, "2", "1", fault=point)
    assert proc.wait(timeout=120) == -signal.SIGKILL, proc.stderr.read()
    assert f"killed at {point}" in proc.stderr.read()
    assert len(promotion_log.view(settings.data_root, MODEL).pending) == 1   # written ahead, not committed

    if then == "read":
        view = registry.history(settings, MODEL)                            # what the CLI and the UI call
        assert not view.pending
    else:
        # the next move (decided against v2, the decision that was written ahead) settles it first
        assert _move(settings, "3", "2")["status"] == "moved"
    moves = promotion_log.read(settings.data_root, MODEL)
    assert [(e["from_version"], e["to_version"]) for e in moves][:2] == [(None, "1"), ("1", "2")]
    assert sum(1 for e in moves if (e["from_version"], e["to_version"]) == ("1", "2")) == 1
    assert moves[1].get("reconciled") and moves[1]["note"]
    if then == "read":
        assert _aliases(settings) == {"champion": "2", "previous": "1"}
    _assert_chain_matches_aliases(settings)


# ---------------------------------------------------------------- re-runs

def test_rerun_of_promote_is_a_noop(settings):
    _make_versions(settings, 2)
    _move(settings, "1", None)
    assert _move(settings, "2", "1")["status"] == "moved"
    again = _move(settings, "2", "1")                                       # promote_champion cleared and re-run
    assert again["status"] == "already champion"
    assert _aliases(settings) == {"champion": "2", "previous": "1"}
    assert _moves(settings) == [("promote", None, "1"), ("promote", "1", "2")]


def test_rerun_of_evaluation_and_apply_moves_and_registers_once(env):
    """Real models: evaluating the same night twice registers one version; applying its decision
    twice moves the alias once; an approval is written into decision.md."""
    from mlflow import MlflowClient

    from nightshift.promotion import PENDING, PROMOTED, apply_decision, evaluate_candidates
    from nightshift.training import plan_training, train_candidate

    settings, config, policy, lake = env
    for i, day in enumerate(DAYS[:2]):
        _write_day(lake, day, _sessions(day, 600, seed=i, anomaly_template="9"))
    plan = plan_training(lake, "hdfs", DAYS[1], config, policy.holdout_days)
    results = [train_candidate(settings, config, plan, c["name"]) for c in config.candidates]
    first = evaluate_candidates(settings, config, policy, plan, results, "manual", decided_by="test")
    second = evaluate_candidates(settings, config, policy, plan, results, "manual", decided_by="test")   # re-run
    model = config.model_name("hdfs")
    uri = settings.mlflow_tracking_uri
    versions = MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions(f"name='{model}'")
    assert len(versions) == 1 and first["challenger_version"] == second["challenger_version"] == "1"

    assert second["decision"] == PENDING
    applied = apply_decision(settings, second, approved_by="airflow-user:alice")
    again = apply_decision(settings, second, approved_by="airflow-user:alice")       # promote_champion re-run
    assert applied["decision"] == again["decision"] == PROMOTED and again["champion_after"] == "1"
    entries = promotion_log.read(settings.data_root, model)
    assert [(e["from_version"], e["to_version"]) for e in entries] == [(None, "1")]
    assert _aliases(settings, model) == {"champion": "1", "previous": None}

    md = Path(applied["decision_record"]["path"]).read_text()
    assert "**Decision: promoted**" in md and "approved by airflow-user:alice" in md
    assert "awaiting approval" not in md.split("Reason:")[0]

    # evaluation cleared and re-run after the promotion: not judged against itself, nothing moves
    third = evaluate_candidates(settings, config, policy, plan, results, "auto", decided_by="test")
    assert third["decision"] == PROMOTED and third["reason"].startswith("already champion") and third["gate_passed"]
    assert apply_decision(settings, third)["move"] == "already champion"
    assert len(promotion_log.read(settings.data_root, model)) == 1
    assert MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(model, "1").tags["nightshift.gate_passed"] == "true"

    md = Path(applied["decision_record"]["path"]).read_text()
    assert "**Decision: promoted**" in md and "awaiting approval" not in md.split("Reason:")[0]
    assert "Champion after: v1" in md


# ---------------------------------------------------------------- torn promotion log

def _entry(to: str, src: str | None = None) -> dict:
    return {"model_name": MODEL, "action": "promote", "from_version": src, "to_version": to, "decided_by": "test",
            "mlflow_run_id": None, "day": None, "metrics": None, "reason": f"to v{to}"}


def test_a_torn_last_line_is_skipped_reported_and_not_glued_onto(settings, monkeypatch, capsys):
    from nightshift.cli import main
    from nightshift.training import load_training_config

    model = load_training_config(settings.config_dir).model_name("hdfs")
    promotion_log.append(settings.data_root, {**_entry("1"), "model_name": model})
    path = promotion_log.log_path(settings.data_root, model)
    with open(path, "ab") as fh:
        fh.write(json.dumps({**_entry("2", "1"), "model_name": model}).encode()[:40])   # the writer died mid-line

    assert [e["to_version"] for e in promotion_log.read(settings.data_root, model)] == ["1"]
    view = promotion_log.view(settings.data_root, model)
    assert len(view.problems) == 1 and "last line" in view.problems[0] and "torn" in view.problems[0]

    monkeypatch.setenv("NIGHTSHIFT_DATA_ROOT", str(settings.data_root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    assert main(["promotions", "--source", "hdfs"]) == 0
    out = capsys.readouterr().out
    assert "to v1" in out and "problems:" in out and "torn" in out
    assert main(["promotions", "--source", "hdfs", "--json"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["to_version"] for line in captured.out.splitlines()] == ["1"] and "torn" in captured.err

    promotion_log.append(settings.data_root, {**_entry("3", "1"), "model_name": model})
    lines = path.read_bytes().split(b"\n")
    assert json.loads(lines[-2])["to_version"] == "3"                       # on its own line
    assert [e["to_version"] for e in promotion_log.read(settings.data_root, model)] == ["1", "3"]
    view = promotion_log.view(settings.data_root, model)
    assert len(view.problems) == 1 and "line 2" in view.problems[0]         # the torn line stays reported


def test_old_entries_without_state_stay_readable(settings):
    promotion_log.append(settings.data_root, _entry("1"))                   # written the old way (no state)
    _make_versions(settings, 2)
    from mlflow import MlflowClient

    uri = settings.mlflow_tracking_uri
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(MODEL, "champion", "1")
    _move(settings, "2", "1")
    assert _moves(settings) == [("promote", None, "1"), ("promote", "1", "2")]
    _assert_chain_matches_aliases(settings)
