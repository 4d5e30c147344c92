"""``AIRFLOW__CORE__EXECUTOR=nightshift.warm_executor.LocalExecutor``: Airflow's LocalExecutor whose
worker processes import the heavy libraries once, before their loop, so that the task processes
they fork inherit them (see ``nightshift.warm_tasks``).

The class is named ``LocalExecutor`` on purpose: Airflow's SimpleAuthManager judges "looks like
production" by the executor's class name, and ``is_local`` and everything else are inherited.
Only the worker's entry point changes: :meth:`LocalExecutor._spawn_worker` runs the upstream one
with :func:`_run_warm_worker` as the process target, which preloads, then calls the upstream
``_run_worker`` with the same arguments. The scheduler, the API server and the DAG processor
import this module (they load the executor class) but never start workers, so they pay nothing.
"""

from __future__ import annotations

import os

from airflow.executors import local_executor as _upstream

from nightshift import warm_tasks

_UPSTREAM_RUN_WORKER = _upstream._run_worker


def _run_warm_worker(**kwargs) -> None:
    """A LocalExecutor worker: preload (unless ``NIGHTSHIFT_WARM_TASKS=0``), then the upstream loop."""
    if warm_tasks.enabled():
        import structlog

        log = structlog.get_logger(kwargs.get("logger_name") or __name__)
        result = warm_tasks.preload()
        log.info("Worker preloaded %d modules in %.1f s pid=%d", result["modules"], result["seconds"], os.getpid(),
                 failed=result["failed"] or None)
    _UPSTREAM_RUN_WORKER(**kwargs)


class LocalExecutor(_upstream.LocalExecutor):
    """The upstream LocalExecutor; its workers start with :func:`_run_warm_worker`."""

    def _spawn_worker(self):
        # upstream builds multiprocessing.Process(target=_run_worker, kwargs=...) from the module
        # global: point it at the warm entry point for this call only, so the Process arguments stay
        # upstream's (the target is picklable by name for the spawn start method too)
        original = _upstream._run_worker
        _upstream._run_worker = _run_warm_worker
        try:
            return super()._spawn_worker()
        finally:
            _upstream._run_worker = original
