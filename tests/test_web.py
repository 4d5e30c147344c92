"""The promotion log web app (served in the Airflow UI by plugins/nightshift_plugin.py)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from nightshift import promotion_log
from nightshift.web import create_app


def test_lists_the_log_as_html_and_json(tmp_path):
    client = TestClient(create_app(tmp_path))
    assert "No alias moves recorded" in client.get("/promotions").text
    promotion_log.append(tmp_path, {"model_name": "log_anomaly_hdfs", "action": "promote", "from_version": None,
                                    "to_version": "1", "decided_by": "airflow:run1", "mlflow_run_id": "abc",
                                    "day": "2026-11-02", "metrics": {"f1": 0.9}, "reason": "no champion yet <b>"})
    page = client.get("/promotions").text
    assert "log_anomaly_hdfs" in page and "airflow:run1" in page and "&lt;b&gt;" in page     # escaped
    assert client.get("/promotions/log_anomaly_hdfs.json").json()[0]["to_version"] == "1"
    assert client.get("/promotions/unknown.json").status_code == 404


def test_plugin_registers_the_app_and_a_nav_link():
    import importlib.util

    from nightshift.settings import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location("nightshift_plugin", PROJECT_ROOT / "plugins" / "nightshift_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.NightshiftPlugin
    assert plugin.fastapi_apps[0]["url_prefix"] == "/nightshift"
    assert plugin.external_views[0]["href"] == "/nightshift/promotions"
