"""Deployment tooling: the production topology of Nightshift started natively on one machine.

``make stack`` / ``make stack-down`` (``python -m nightshift_stack up|down|status|secrets``).
Every service is its own process with its own log file under the state directory (``.stack/``),
bound to 127.0.0.1. ``services.py`` is the one list of services; ``docker-compose.yaml`` mirrors it
(``tests/test_compose.py`` checks that both stay in step). Not imported by the ``nightshift`` package.

The embedded topology of one laptop lives here too: ``local.py`` (Airflow's scheduler, dag-processor
and api-server on SQLite, for ``make demo``) and ``ui.py`` (``make ui``).
"""
