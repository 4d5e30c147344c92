"""setup_mlflow under concurrent training tasks (a real executor runs the mapped candidates at once)."""

from __future__ import annotations

import dataclasses

import mlflow


def test_setup_mlflow_uses_the_experiment_another_task_created_meanwhile(tmp_path, monkeypatch):
    from nightshift.settings import load_settings
    from nightshift.training import setup_mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    settings = dataclasses.replace(load_settings(), data_root=tmp_path, mlflow_tracking_uri=uri)
    mlflow.set_tracking_uri(uri)
    existing = mlflow.create_experiment("race")            # the other task's, after our lookup
    real_lookup = mlflow.get_experiment_by_name
    calls = []

    def lookup(name):
        calls.append(name)
        return None if len(calls) == 1 else real_lookup(name)

    monkeypatch.setattr(mlflow, "get_experiment_by_name", lookup)
    assert setup_mlflow(settings, "race") == existing
    assert len(calls) == 2
