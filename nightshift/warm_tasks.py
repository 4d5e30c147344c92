"""Warm task processes: the LocalExecutor's workers import the heavy libraries once.

Under the LocalExecutor on Linux every task process is an ``os.fork()`` of one of the executor's
worker processes (``airflow.executors.local_executor._run_worker`` ->
``airflow.sdk.execution_time.supervisor.ActivitySubprocess.start``). A worker that has imported
numpy, pandas, pyarrow, scipy, scikit-learn and MLflow before its loop hands them to every task it
forks: ``train_candidate``, ``evaluate_candidates``, ``promote_champion``, ``score_sessions`` and
``check_input_drift`` no longer pay those imports (``bench/warm_tasks.py`` measures it).

``nightshift.warm_executor.LocalExecutor`` (``AIRFLOW__CORE__EXECUTOR``, set by
:func:`executor_setting`) is the upstream LocalExecutor whose workers call :func:`preload` first.
``NIGHTSHIFT_WARM_TASKS=0`` turns it off (the plain ``LocalExecutor`` is configured instead).

Only third-party libraries are preloaded, never ``nightshift`` itself: the workers live as long as
the scheduler, and the project's code must stay fresh in every task. Fork safety: the imports start
no Python thread; the native threads they start (one OpenBLAS pool thread each for numpy's and
scipy's OpenBLAS, pyarrow's jemalloc background thread) are stopped or re-created around ``fork()``
by the libraries' own ``pthread_atfork`` handlers; no OpenMP parallel region runs (libgomp's pool
is created on first use, in the task). ``tests/test_warm_tasks.py`` forks a child of a preloaded
process and fits models (OpenBLAS, OpenMP), writes Parquet and logs an MLflow run in it.

This module imports nothing heavy (``nightshift.localenv`` and ``nightshift_stack`` read it).
"""

from __future__ import annotations

import importlib
import os
import time
from typing import Mapping

SWITCH = "NIGHTSHIFT_WARM_TASKS"
WARM_EXECUTOR = "nightshift.warm_executor.LocalExecutor"
PLAIN_EXECUTOR = "LocalExecutor"

# what the heavy tasks import (nightshift.training, nightshift.promotion, nightshift_model,
# nightshift.tuning, MLflow's sqlite and HTTP stores); Great Expectations runs in the Spark jobs,
# not in the workers' task processes, and is left out (3.6 s and ~150 MB for nothing)
PRELOAD = (
    "numpy",
    "pyarrow",
    "pyarrow.parquet",
    "pandas",
    "scipy.sparse",
    "scipy.linalg",
    "scipy.optimize",
    "scipy.stats",
    "sklearn",
    "sklearn.base",
    "sklearn.pipeline",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.tree",
    "sklearn.preprocessing",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.decomposition",
    "mlflow",
    "mlflow.sklearn",
    "mlflow.models",
    "mlflow.data.pandas_dataset",
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.store.tracking.rest_store",
    "mlflow.store.model_registry.rest_store",
)


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """False when ``NIGHTSHIFT_WARM_TASKS`` is ``0``/``false``/``no``/``off``; on by default."""
    value = (os.environ if env is None else env).get(SWITCH, "1")
    return value.strip().lower() not in {"0", "false", "no", "off"}


def executor_setting(env: Mapping[str, str] | None = None) -> str:
    """The ``AIRFLOW__CORE__EXECUTOR`` value: the warm LocalExecutor unless switched off."""
    return WARM_EXECUTOR if enabled(env) else PLAIN_EXECUTOR


def preload(modules: tuple[str, ...] = PRELOAD) -> dict:
    """Import ``modules``; a module that fails to import is reported, not raised (the task that
    needs it will raise its own error). Then ``gc.freeze()``: the preloaded objects move to the
    permanent generation, so the forked tasks' collections neither scan them nor copy their pages.
    Returns ``{"seconds", "modules", "failed"}``."""
    import gc

    started = time.perf_counter()
    failed = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a missing optional library must not stop the worker
            failed[name] = f"{type(exc).__name__}: {exc}"
    gc.collect()
    gc.freeze()
    return {"seconds": round(time.perf_counter() - started, 3), "modules": len(modules) - len(failed),
            "failed": failed}
