"""The Nightshift view and the promotion log web app (served in the Airflow UI by
plugins/nightshift_plugin.py), on a lake of recorded nights and a real SQLite MLflow registry."""

from __future__ import annotations

import dataclasses
import re

import pytest
from fastapi.testclient import TestClient

from nightshift import promotion_log, registry
from nightshift.lake import Lake
from nightshift.settings import load_settings
from nightshift.web import create_app, trend_svg

MODEL = "log_anomaly_hdfs"
RUN = "scheduled__2026-11-0{}T00:00:00+00:00"
POLICY = {"floor_precision": 0.5, "floor_recall": 0.5}


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("NIGHTSHIFT_DATA_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.delenv("NIGHTSHIFT_MLFLOW_UI_URL", raising=False)
    return dataclasses.replace(load_settings(), lock_url=None)


def _decision(day: str, decision: str, reason: str, version: str | None, before: str | None, after: str | None,
              champion: dict | None = None, run: int = 1) -> dict:
    return {"day": day, "decision": decision, "reason": reason, "best_candidate": "random_forest",
            "best_run_id": None, "challenger_version": version, "champion_before": before, "champion_after": after,
            "candidates": {"random_forest": {"f1": 0.9, "precision": 0.9, "recall": 0.9}},
            "champion_metrics": champion, "policy": POLICY, "dry_run": False,
            "airflow": {"airflow.run_id": RUN.format(run)}}


@pytest.fixture
def nights(settings):
    """Four nights: skipped, promoted v1, failed validation, promoted v2 (v1 now 'previous'); then
    the champion v2 is found below the floors on a fifth night (kept)."""
    from mlflow import MlflowClient

    lake = Lake(settings.data_root)
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    client.create_registered_model(MODEL)
    for v, day in (("1", "2026-11-02"), ("2", "2026-11-04"), ("3", "2026-11-05")):
        client.create_model_version(MODEL, source=f"file:///nonexistent/model-{v}")
        client.set_model_version_tag(MODEL, v, "nightshift.gate_passed", "true" if v != "3" else "false")
        client.set_model_version_tag(MODEL, v, "nightshift.day", day)
        client.set_model_version_tag(MODEL, v, "nightshift.candidate", "random_forest")
    lake.write_report("hdfs", "2026-11-01", "decision", {"day": "2026-11-01", "decision": "skipped",
                                                         "reason": "need 2 validated labelled days", "run_id": RUN.format(1)})
    lake.write_report("hdfs", "2026-11-02", "decision",
                      _decision("2026-11-02", "promoted", "no champion yet", "1", None, "1", run=2))
    registry.move_champion(settings, MODEL, "1", expected_champion=None, action="promote", decided_by="airflow:n2",
                           reason="no champion yet", day="2026-11-02")
    lake.write_report("hdfs", "2026-11-03", "validation_parsed_lines", {
        "success": False, "suite": "parsed_lines", "failures": ["ingest: quarantine_rate observed 0.068 <b>"]})
    lake.write_report("hdfs", "2026-11-03", "decision", {"day": "2026-11-03", "decision": "failed", "run_id": RUN.format(3),
                                                         "reason": "validation failed: parsed_lines: quarantine_rate"})
    lake.write_report("hdfs", "2026-11-04", "decision",
                      _decision("2026-11-04", "promoted", "superior", "2", "1", "2",
                                {"f1": 0.8, "precision": 0.8, "recall": 0.8}, run=4))
    registry.move_champion(settings, MODEL, "2", expected_champion="1", action="promote", decided_by="airflow:n4",
                           reason="superior", day="2026-11-04")
    lake.write_report("hdfs", "2026-11-05", "decision", _decision(
        "2026-11-05", "kept", "floors failed", "3", "2", "2",
        {"f1": 0.05, "precision": 0.025, "recall": 1.0, "flagged": 2999, "sessions": 3000}, run=5))
    lake.write_report("hdfs", "2026-11-05", "scoring", {"flag_rate": 0.9997, "flagged": 2999, "sessions": 3000, "champion_version": 2, "skipped": None})
    return lake


def _rows(page: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"<tr class='night' data-day='([0-9-]+)' data-outcome='([a-z ]+)'", page)}


def test_the_view_shows_the_champion_every_night_and_a_trend(settings, nights):
    client = TestClient(create_app())
    page = client.get("/view").text
    assert _rows(page) == {"2026-11-01": "skipped", "2026-11-02": "promoted", "2026-11-03": "failed",
                           "2026-11-04": "promoted", "2026-11-05": "kept"}
    header = page.split("<div class='header champion'>")[1].split("</div>")[0]
    assert "v2</a>" in header and "since the night of" in header and "2026-11-04" in header
    assert "promote by airflow:n4" in header and "Previous: v1" in header
    # the champion was found below the floors on its last night: said above the table
    assert "champion-warning" in page and "precision 0.025 (floor 0.5)" in page and "2,999 of 3,000" in page
    assert "<svg class='trend'" in page and page.count("<polyline") >= 1
    # every night links its decision record; nights with a run link the Airflow run page
    assert page.count("class='l-record'") == 5 and page.count("class='l-run'") == 5
    assert "http://127.0.0.1:5000/#/models/log_anomaly_hdfs/versions/3" in page
    data = client.get("/nights/hdfs.json").json()
    assert data["champion"]["version"] == "2" and data["champion"]["previous"]["version"] == "1"
    assert [n["outcome"] for n in data["nights"]] == ["skipped", "promoted", "failed", "promoted", "kept"]
    assert client.get("/view?source=nope").status_code == 404


def test_a_failed_night_has_a_record_with_its_reasons(settings, nights):
    client = TestClient(create_app())
    page = client.get("/records/hdfs/2026-11-03")
    assert page.status_code == 200 and "failed" in page.text
    assert "quarantine_rate observed 0.068 &lt;b&gt;" in page.text       # escaped
    record = nights.reports_dir("hdfs", "2026-11-04") / "decision_record"
    record.mkdir(parents=True)
    (record / "decision.html").write_text("<html><body>the real record</body></html>")
    assert client.get("/records/hdfs/2026-11-04").text == "<html><body>the real record</body></html>"
    assert client.get("/records/hdfs/2026-13-01").status_code == 404
    assert client.get("/records/hdfs/2026-10-01").status_code == 404


def test_data_docs_are_served_with_the_exact_page_of_the_day(settings, nights):
    site = nights.gx_dir / "uncommitted" / "data_docs" / "local_site"
    page = site / "validations" / "hdfs" / "parsed_lines" / "lines" / "hdfs 2026-11-03 parsed_lines.lines" / "t" / "p.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html>lines of 11-03</html>")
    (site / "index.html").write_text("<html>index</html>")
    (nights.root / "secret.txt").write_text("not for the web")
    report = nights.read_report("hdfs", "2026-11-03", "validation_parsed_lines")
    nights.write_report("hdfs", "2026-11-03", "validation_parsed_lines", {**report, "data_docs_pages": {"lines": page.as_uri()}})
    client = TestClient(create_app())
    r = client.get("/datadocs/hdfs/2026-11-03")
    assert r.status_code == 200 and r.text == "<html>lines of 11-03</html>"
    assert client.get("/datadocs/site/").text == "<html>index</html>"
    assert client.get("/datadocs/site/..%2F..%2F..%2Fsecret.txt").status_code == 404
    assert client.get("/datadocs/hdfs/2026-11-01").status_code == 404          # not validated: said, not a blank page


def test_a_run_opens_its_night(settings, nights):
    client = TestClient(create_app())
    r = client.get(f"/runs/nightshift_nightly/{RUN.format(3)}", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/records/hdfs/2026-11-03"
    assert client.get(f"/runs/nightshift_nightly/{RUN.format(3)}/datadocs", follow_redirects=False).headers["location"] == \
        "/datadocs/hdfs/2026-11-03"
    missing = client.get("/runs/nightshift_nightly/manual__never")
    assert missing.status_code == 404 and "No night recorded for this run yet" in missing.text
    assert "has none" in client.get("/runs/nightshift_scoring/manual__x").text
    assert client.get(f"/runs/nightshift_nightly/{RUN.format(3)}/mlflow").status_code == 404   # no candidate that night


def test_rollback_from_the_view_goes_through_the_locked_logged_path(settings, nights):
    client = TestClient(create_app(user_name=lambda: "alice"))
    form = client.get("/rollback/hdfs").text
    assert "Champion now: <b>v2</b>" in form and "Target: <b>v1</b>" in form and "passed the promotion gate" in form
    assert client.post("/rollback/hdfs", data={"reason": "x", "expected_champion": "2", "to_version": "1"}).status_code == 400
    # a form opened before the champion changed is refused, nothing moves
    stale = client.post("/rollback/hdfs", data={"reason": "undo", "expected_champion": "1", "to_version": "1"})
    assert stale.status_code == 409 and "Rollback refused" in stale.text and "Traceback" not in stale.text
    assert str(registry.champion(settings, MODEL).version) == "2"
    done = client.post("/rollback/hdfs", data={"reason": "v2 floods the operators", "expected_champion": "2",
                                               "to_version": "1"}, follow_redirects=False)
    assert done.status_code == 303 and "Rolled%20back" in done.headers["location"]
    assert str(registry.champion(settings, MODEL).version) == "1"
    last = promotion_log.read(settings.data_root, MODEL)[-1]
    assert (last["action"], last["from_version"], last["to_version"]) == ("rollback", "2", "1")
    assert last["decided_by"] == "airflow-user:alice (nightshift view)" and last["reason"] == "v2 floods the operators"
    # an unvetted version is refused unless forced
    refused = client.post("/rollback/hdfs", data={"reason": "try v3", "expected_champion": "1", "to_version": "3"})
    assert refused.status_code == 409 and "never passed the promotion gate" in refused.text


def test_without_a_logged_in_user_the_app_refuses_to_roll_back(settings, nights):
    client = TestClient(create_app())
    r = client.post("/rollback/hdfs", data={"reason": "undo", "expected_champion": "2", "to_version": "1"})
    assert r.status_code == 403 and str(registry.champion(settings, MODEL).version) == "2"


def test_trend_svg_without_metrics_says_so():
    assert "No metrics yet" in trend_svg([])


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


def test_plugin_registers_the_app_the_view_the_run_tab_and_guards_rollback():
    import importlib.util

    from nightshift.settings import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location("nightshift_plugin", PROJECT_ROOT / "plugins" / "nightshift_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.NightshiftPlugin
    assert plugin.fastapi_apps[0]["url_prefix"] == "/nightshift"
    views = {v["name"]: v for v in plugin.external_views}
    assert views["Nightshift"]["url_route"] == "nightshift" and views["Nightshift"]["href"] == "/nightshift/view"
    assert views["Night"]["destination"] == "dag_run" and "{RUN_ID}" in views["Night"]["href"]
    app = plugin.fastapi_apps[0]["app"]
    post = next(r for r in app.routes if getattr(r, "path", "") == "/rollback/{source}" and "POST" in r.methods)
    guards = [d.dependency.__qualname__ for d in post.dependencies]
    assert guards == ["requires_access_view.<locals>.inner", "requires_access_dag.<locals>.inner"]   # login, then
    # the right to trigger nightshift_rollback


def test_an_alias_moved_outside_nightshift_is_said_in_the_header(settings, nights):
    from mlflow import MlflowClient

    client = TestClient(create_app())
    assert "outside-move" not in client.get("/view").text
    MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri) \
        .set_registered_model_alias(MODEL, "champion", "3")          # by hand, as in MLflow's UI
    page = client.get("/view").text
    assert "outside-move" in page and "points at v3" in page and "last move installed v2" in page


def _night_row(page: str, day: str) -> str:
    return page.split(f"<tr class='night' data-day='{day}'")[1].split("</tr>")[0]


def test_the_drift_column_shows_a_flagged_night_and_a_normal_one(settings, nights):
    stats = {"js_distance": 0.02, "unseen_line_share": 0.0}
    nights.write_report("hdfs", "2026-11-04", "drift", {
        "flagged": False, "summary": "no drift (JS 0.020, unseen 0.0%)",
        "references": {"recent": {"days": ["2026-11-02"], "stats": stats}}})
    nights.write_report("hdfs", "2026-11-05", "drift", {
        "flagged": True, "summary": "drift: flagged: vs recent: unseen templates: 31.1% of lines",
        "references": {"recent": {"days": ["2026-11-02", "2026-11-04"],
                                  "stats": {"js_distance": 0.5, "unseen_line_share": 0.311}}}})
    page = TestClient(create_app()).get("/view").text
    assert "<th>drift</th>" in page
    flagged, normal = _night_row(page, "2026-11-05"), _night_row(page, "2026-11-04")
    assert "<td class='drift flagged'>drift: flagged (JS 0.50, unseen 31.1%)</td>" in flagged
    assert "<td class='drift'>none (JS 0.02, unseen 0.0%)</td>" in normal and "flagged" not in normal
    assert "<td class='drift'>-</td>" in _night_row(page, "2026-11-01")             # no drift report: a dash
    assert [n["drift_flagged"] for n in TestClient(create_app()).get("/nights/hdfs.json").json()["nights"]] == [
        False, False, False, False, True]
