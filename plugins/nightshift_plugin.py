"""Airflow plugin: the Nightshift promotion log in the Airflow UI (Browse > Promotion log).

A thin shell: the app lives in ``nightshift.web``.
"""

from airflow.plugins_manager import AirflowPlugin

from nightshift.web import create_app


class NightshiftPlugin(AirflowPlugin):
    name = "nightshift"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/nightshift", "name": "Nightshift"}]
    external_views = [
        {"name": "Promotion log", "href": "/nightshift/promotions", "destination": "nav", "category": "browse"},
    ]
