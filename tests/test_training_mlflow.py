"""MLflow under concurrent training tasks (a real executor runs the mapped candidates at once):
setup_mlflow's experiment, log_dataset_input's dataset."""

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


_LOG_SAME_DATASET = """
import sys, time
import mlflow, pandas as pd
from nightshift.training import log_dataset_input
uri, experiment_id, start_at, attempts = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
mlflow.set_tracking_uri(uri)
frame = pd.DataFrame({"line_count": range(50), "label": [0, 1] * 25})
dataset = mlflow.data.from_pandas(frame, source="/lake/features/source=hdfs", name="train", targets="label")
with mlflow.start_run(experiment_id=experiment_id) as run:
    time.sleep(max(0.0, start_at - time.time()))       # every process logs at the same instant
    log_dataset_input(dataset, context="training", attempts=attempts)
print(run.info.run_id)
"""


def _postgres_database():
    import os
    import uuid

    import psycopg2

    admin = os.environ.get("NIGHTSHIFT_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        conn = psycopg2.connect(admin, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        import pytest

        pytest.fail(f"PostgreSQL is not reachable at {admin} (the MLflow server's backend in make stack): {exc}")
    conn.autocommit = True
    name = f"nstest_mlflow_{uuid.uuid4().hex[:8]}"
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    return conn, name, admin.rsplit("/", 1)[0] + f"/{name}"


def test_candidates_logging_the_same_dataset_at_once_all_succeed_on_postgres(tmp_path):
    """The night's train_candidate tasks log the same training frame at the same moment, on the
    backend make stack uses (PostgreSQL): MLflow's look-up-then-insert of the dataset is not
    serialised, so without the retry of ``log_dataset_input`` some of them fail on the datasets
    primary key (seen in tests/test_stack.py). Six processes, released together."""
    import subprocess
    import sys
    import time

    from mlflow import MlflowClient

    from nightshift.settings import PROJECT_ROOT

    conn, name, uri = _postgres_database()
    try:
        client = MlflowClient(tracking_uri=uri)               # creates MLflow's schema once, before the race
        experiment_id = client.create_experiment("race", artifact_location=(tmp_path / "artifacts").as_uri())
        start_at = time.time() + 8
        procs = [subprocess.Popen([sys.executable, "-c", _LOG_SAME_DATASET, uri, experiment_id, str(start_at), "4"],
                                  cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(6)]
        results = [(p.wait(timeout=180), p.stdout.read().strip(), p.stderr.read()) for p in procs]
        assert [code for code, _, _ in results] == [0] * 6, [err[-2000:] for code, _, err in results if code]
        runs = [client.get_run(run_id) for _, run_id, _ in results]
        uuids = {i.dataset.digest for r in runs for i in r.inputs.dataset_inputs}
        assert len(uuids) == 1 and all(len(r.inputs.dataset_inputs) == 1 for r in runs)   # one dataset, six links
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
