"""nightshift.registry and the promotion log's file format, piece by piece (SQLite MLflow store)."""

from __future__ import annotations

import dataclasses

import pytest

from nightshift import promotion_log, registry
from nightshift.settings import load_settings
from nightshift_stack.stack import free_port
from tests.test_promotion_faults import MODEL, _aliases, _make_versions, _move, _moves


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return dataclasses.replace(load_settings(), data_root=tmp_path / "lake", lock_url=None,
                               mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_register_is_keyed_by_run(settings):
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    exp = mlflow.create_experiment("t", artifact_location=(settings.data_root / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        model = LogisticRegression().fit(np.array([[0.0], [1.0]]), np.array([0, 1]))
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
    first = registry.register(settings, MODEL, info.model_uri, run.info.run_id)
    again = registry.register(settings, MODEL, info.model_uri, run.info.run_id)
    assert str(first.version) == str(again.version) == "1"
    assert len(registry.client(settings).search_model_versions(f"name='{MODEL}'")) == 1


def test_champion_and_previous_move_only_through_move_champion(settings):
    _make_versions(settings, 2)
    with pytest.raises(ValueError, match="only through move_champion"):
        registry.set_alias(settings, MODEL, "champion", "1")
    registry.set_alias(settings, MODEL, "challenger", "2")
    assert str(registry.alias(registry.client(settings), MODEL, "challenger").version) == "2"
    with pytest.raises(ValueError, match="no version 7"):
        _move(settings, "7", None)
    assert _moves(settings) == []


def _pending(settings, src, dst, previous_before=None):
    return promotion_log.append(settings.data_root, {
        "state": "pending", "move_id": f"m-{src}-{dst}", "model_name": MODEL, "action": "promote",
        "from_version": src, "to_version": dst, "previous_before": previous_before, "decided_by": "test",
        "mlflow_run_id": None, "day": None, "metrics": None, "reason": "test"})


def test_a_pending_move_overtaken_by_a_move_outside_nightshift_is_aborted_not_forced(settings):
    from mlflow import MlflowClient

    _make_versions(settings, 3)
    _move(settings, "1", None)
    _pending(settings, "1", "2")
    uri = settings.mlflow_tracking_uri
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(MODEL, "champion", "3")   # by hand
    (settled,) = registry.reconcile(settings, MODEL)
    assert settled["state"] == "aborted" and "outside Nightshift" in settled["note"]
    assert _aliases(settings)["champion"] == "3"
    view = promotion_log.view(settings.data_root, MODEL)
    assert not view.pending and any("not completed" in p for p in view.problems)
    assert _moves(settings) == [("promote", None, "1")]


def test_history_reports_a_pending_move_it_cannot_reconcile(settings):
    _make_versions(settings, 2)
    _move(settings, "1", None)
    _pending(settings, "1", "2")
    down = dataclasses.replace(settings, mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}")
    view = registry.history(down, MODEL)
    assert view.pending and "not reconciled" in view.problems[-1] and "unavailable" in view.problems[-1]
    assert [e["to_version"] for e in view.entries] == ["1"]
    view = registry.history(settings, MODEL)                               # registry back: finished
    assert not view.pending and [e["to_version"] for e in view.entries] == ["1", "2"]
    assert view.entries[-1]["note"] == registry.COMPLETED_NOTE
    assert _aliases(settings) == {"champion": "2", "previous": "1"}


def test_web_page_shows_committed_moves_and_problems(settings, monkeypatch):
    from fastapi.testclient import TestClient

    from nightshift.web import create_app

    _make_versions(settings, 2)
    _move(settings, "1", None)
    _pending(settings, "1", "2")                                           # interrupted: the page finishes it
    with open(promotion_log.log_path(settings.data_root, MODEL), "ab") as fh:
        fh.write(b'{"state": "pend')
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    client = TestClient(create_app(settings.data_root))
    page = client.get("/promotions").text
    assert "Problems" in page and "torn" in page and registry.COMPLETED_NOTE in page
    assert [e["to_version"] for e in client.get(f"/promotions/{MODEL}.json").json()] == ["1", "2"]
    assert "torn" in client.get("/problems.json").json()[MODEL][0]
    assert _aliases(settings) == {"champion": "2", "previous": "1"}
