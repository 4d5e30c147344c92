"""Airflow plugin: the Nightshift view inside the Airflow UI.

A thin shell: the app lives in ``nightshift.web``. It adds
- the **Nightshift** page in the navigation (an external view with ``url_route``: shown inside the
  Airflow UI at ``/plugin/nightshift``), and the promotion log under Browse;
- a **Night** tab on every DAG run (a ``dag_run`` external view): that run's decision record.

Airflow does not protect FastAPI plugin apps by itself, so every route gets Airflow's auth
dependency: without the logged-in user's token (the UI's cookie or a Bearer token from
``POST /auth/token``) the answer is 401, as for ``/api/v2``. A rollback from the view also needs
the right to trigger the ``nightshift_rollback`` DAG, and is recorded as the logged-in user.

The app is built when ``fastapi_apps`` is first read (by the API server), not when this file is
loaded: every task process loads the plugins folder too (the task runner integrates the plugins'
macros), and importing Airflow's API security module, FastAPI and ``nightshift.web`` there cost
about 1.2 s per task for an app no task uses.
"""

from functools import cache

from airflow.plugins_manager import AirflowPlugin


@cache
def nightshift_fastapi_apps() -> list[dict]:
    """The plugin's ``fastapi_apps``: the Nightshift app behind Airflow's auth (built once)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag, requires_access_view
    from fastapi import Depends

    from nightshift.web import create_app

    def logged_in_user_name(user: GetUserDep) -> str:
        return user.get_name()

    return [{
        "app": create_app(
            dependencies=[Depends(requires_access_view(AccessView.WEBSITE))],
            rollback_dependencies=[Depends(requires_access_dag("POST", DagAccessEntity.RUN,
                                                               param_dag_id="nightshift_rollback"))],
            user_name=logged_in_user_name,
        ),
        "url_prefix": "/nightshift",
        "name": "Nightshift",
    }]


class _BuiltWhenRead:
    """A class attribute whose value ``build()`` returns, computed when it is read (on the class or
    an instance), so that loading the plugin does not build it."""

    def __init__(self, build):
        self.build = build

    def __get__(self, instance, owner=None):
        return self.build()


class NightshiftPlugin(AirflowPlugin):
    name = "nightshift"
    fastapi_apps = _BuiltWhenRead(nightshift_fastapi_apps)
    external_views = [
        {"name": "Nightshift", "href": "/nightshift/view", "url_route": "nightshift", "destination": "nav"},
        {"name": "Promotion log", "href": "/nightshift/promotions", "url_route": "nightshift-promotions",
         "destination": "nav", "category": "browse"},
        {"name": "Night", "href": "/nightshift/runs/{DAG_ID}/{RUN_ID}", "url_route": "night",
         "destination": "dag_run"},
    ]
