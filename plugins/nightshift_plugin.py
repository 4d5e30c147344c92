"""Airflow plugin: the Nightshift view inside the Airflow UI.

A thin shell: the app lives in ``nightshift.web``. It adds
- the **Nightshift** page in the navigation (an external view with ``url_route``: shown inside the
  Airflow UI at ``/plugin/nightshift``), and the promotion log under Browse;
- a **Night** tab on every DAG run (a ``dag_run`` external view): that run's decision record.

Airflow does not protect FastAPI plugin apps by itself, so every route gets Airflow's auth
dependency: without the logged-in user's token (the UI's cookie or a Bearer token from
``POST /auth/token``) the answer is 401, as for ``/api/v2``. A rollback from the view also needs
the right to trigger the ``nightshift_rollback`` DAG, and is recorded as the logged-in user.
"""

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag, requires_access_view
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends

from nightshift.web import create_app


def logged_in_user_name(user: GetUserDep) -> str:
    return user.get_name()


class NightshiftPlugin(AirflowPlugin):
    name = "nightshift"
    fastapi_apps = [{
        "app": create_app(
            dependencies=[Depends(requires_access_view(AccessView.WEBSITE))],
            rollback_dependencies=[Depends(requires_access_dag("POST", DagAccessEntity.RUN,
                                                               param_dag_id="nightshift_rollback"))],
            user_name=logged_in_user_name,
        ),
        "url_prefix": "/nightshift",
        "name": "Nightshift",
    }]
    external_views = [
        {"name": "Nightshift", "href": "/nightshift/view", "url_route": "nightshift", "destination": "nav"},
        {"name": "Promotion log", "href": "/nightshift/promotions", "url_route": "nightshift-promotions",
         "destination": "nav", "category": "browse"},
        {"name": "Night", "href": "/nightshift/runs/{DAG_ID}/{RUN_ID}", "url_route": "night",
         "destination": "dag_run"},
    ]
