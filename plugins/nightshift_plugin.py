"""Airflow plugin: the Nightshift promotion log in the Airflow UI (Browse > Promotion log).

A thin shell: the app lives in ``nightshift.web``. Airflow does not protect FastAPI plugin apps by
itself, so every route gets Airflow's auth dependency: without the logged-in user's token (the UI's
cookie or a Bearer token from ``POST /auth/token``) the answer is 401, as for ``/api/v2``.
"""

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import requires_access_view
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends

from nightshift.web import create_app


class NightshiftPlugin(AirflowPlugin):
    name = "nightshift"
    fastapi_apps = [{"app": create_app(dependencies=[Depends(requires_access_view(AccessView.WEBSITE))]),
                     "url_prefix": "/nightshift", "name": "Nightshift"}]
    external_views = [
        {"name": "Promotion log", "href": "/nightshift/promotions", "destination": "nav", "category": "browse"},
    ]
