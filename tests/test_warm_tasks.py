"""Warm task processes (nightshift.warm_tasks, nightshift.warm_executor): the LocalExecutor's
workers preload the heavy libraries and the task processes they fork inherit them, and can use
them (OpenBLAS, OpenMP, pyarrow, MLflow on SQLite) without hanging."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from nightshift import warm_tasks

# a LocalExecutor worker (nightshift.warm_executor._run_warm_worker) whose upstream loop is replaced
# by one task: fork a child as the supervisor does and report what the child found and could do
WORKER = textwrap.dedent("""
    import json, os, sys, tempfile, time
    import airflow.sdk.execution_time.task_runner, airflow.sdk.execution_time.supervisor
    from nightshift import warm_executor

    HEAVY = ("numpy", "pandas", "pyarrow", "scipy", "sklearn", "mlflow", "mlflow.sklearn")
    work = sys.argv[1] == "work"

    def one_task(**kwargs):
        tmp = tempfile.mkdtemp(prefix="warm-test-")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            out = {"found": [m for m in HEAVY if m in sys.modules],
                   "ours": sorted(m for m in sys.modules if m.split(".")[0] in ("nightshift", "nightshift_model"))}
            try:
                if work:
                    import numpy as np, pandas as pd, mlflow, mlflow.sklearn
                    from sklearn.linear_model import LogisticRegression
                    from sklearn.ensemble import HistGradientBoostingClassifier
                    rng = np.random.default_rng(0)
                    a = rng.random((400, 400)); (a @ a).sum()                       # OpenBLAS threads
                    X = pd.DataFrame(rng.random((300, 4)), columns=list("abcd")); y = (X["a"] > 0.5).astype(int)
                    lr = LogisticRegression().fit(X, y)
                    HistGradientBoostingClassifier(max_iter=10).fit(X, y)           # OpenMP threads
                    X.to_parquet(f"{tmp}/x.parquet"); pd.read_parquet(f"{tmp}/x.parquet")  # pyarrow
                    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
                    exp = mlflow.create_experiment("warm", artifact_location=f"file://{tmp}/artifacts")
                    with mlflow.start_run(experiment_id=exp) as run:
                        mlflow.log_metric("acc", float(lr.score(X, y)))
                        mlflow.sklearn.log_model(lr, name="model", serialization_format="cloudpickle",
                                                 pip_requirements=["scikit-learn"])
                    out["run"] = mlflow.get_run(run.info.run_id).data.metrics
            except BaseException as exc:
                out["error"] = f"{type(exc).__name__}: {exc}"
            os.write(write_end, json.dumps(out).encode())
            os._exit(0)
        os.close(write_end)
        deadline = time.monotonic() + 60
        while not os.waitpid(pid, os.WNOHANG)[0]:
            if time.monotonic() > deadline:
                os.kill(pid, 9); os.waitpid(pid, 0)
                print(json.dumps({"error": "the forked task hung for 60 s"})); return
            time.sleep(0.05)
        with os.fdopen(read_end) as pipe:
            print(json.dumps(json.loads(pipe.read())))

    warm_executor._UPSTREAM_RUN_WORKER = one_task
    warm_executor._run_warm_worker(logger_name="test")
""")


def _worker(tmp_path, mode: str, switch: str) -> dict:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "false", warm_tasks.SWITCH: switch}
    proc = subprocess.run([sys.executable, "-c", WORKER, mode], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_task_forked_from_a_warm_worker_inherits_the_libraries_and_can_use_them(tmp_path):
    out = _worker(tmp_path, "work", "1")
    assert "error" not in out, out["error"]
    # found in sys.modules before the task imported anything
    assert out["found"] == ["numpy", "pandas", "pyarrow", "scipy", "sklearn", "mlflow", "mlflow.sklearn"]
    # the project's own code is never preloaded: every task imports it fresh
    assert out["ours"] == ["nightshift", "nightshift.warm_executor", "nightshift.warm_tasks"]
    assert 0.5 < out["run"]["acc"] <= 1.0


def test_switched_off_the_worker_preloads_nothing(tmp_path):
    out = _worker(tmp_path, "imports-only", "0")
    assert out["found"] == [], out


def test_the_executor_starts_its_workers_with_the_warm_entry_point(monkeypatch):
    from airflow.executors import local_executor

    from nightshift import warm_executor

    started = []

    class FakeProcess:
        pid = 4242

        def __init__(self, target, kwargs):
            started.append((target, kwargs))

        def start(self):
            pass

    monkeypatch.setattr(local_executor.multiprocessing, "Process", FakeProcess)
    executor = warm_executor.LocalExecutor(parallelism=1)
    executor.activity_queue = executor.result_queue = executor._unread_messages = object()
    executor.workers = {}
    executor._spawn_worker()
    (target, kwargs), = started
    assert target is warm_executor._run_warm_worker
    assert {"logger_name", "input", "output", "unread_messages", "team_conf"} <= set(kwargs)
    assert local_executor._run_worker is warm_executor._UPSTREAM_RUN_WORKER  # restored
    assert executor.workers == {4242: executor.workers[4242]}
    assert issubclass(warm_executor.LocalExecutor, local_executor.LocalExecutor)


@pytest.mark.parametrize("value, expected", [(None, warm_tasks.WARM_EXECUTOR), ("1", warm_tasks.WARM_EXECUTOR),
                                             ("0", "LocalExecutor"), ("false", "LocalExecutor"),
                                             ("off", "LocalExecutor")])
def test_the_switch_chooses_the_executor(tmp_path, value, expected):
    from nightshift.localenv import local_environment

    base = {k: v for k, v in os.environ.items() if k != warm_tasks.SWITCH}
    if value is not None:
        base[warm_tasks.SWITCH] = value
    assert warm_tasks.executor_setting(base) == expected
    env = local_environment(airflow_home=tmp_path / "airflow", data_root=tmp_path / "lake", base=base)
    assert env["AIRFLOW__CORE__EXECUTOR"] == expected


@pytest.mark.parametrize("value, expected", [(None, warm_tasks.WARM_EXECUTOR), ("0", "LocalExecutor")])
def test_make_stack_configures_the_warm_executor_unless_switched_off(tmp_path, monkeypatch, value, expected):
    from nightshift_stack import stack
    from nightshift_stack.services import SECRETS

    monkeypatch.setenv("NIGHTSHIFT_DATA_ROOT", str(tmp_path / "lake"))
    if value is None:
        monkeypatch.delenv(warm_tasks.SWITCH, raising=False)
    else:
        monkeypatch.setenv(warm_tasks.SWITCH, value)
    cfg = {"ports": stack.DEFAULT_PORTS, "db": {"airflow": "a", "mlflow": "m", "mlflow_auth": "ma"}}
    env, _ = stack.environment(tmp_path, cfg, {k: "x" for k in SECRETS})
    assert env["AIRFLOW__CORE__EXECUTOR"] == expected
