"""Manual promotion mode through real Airflow: the nightly run waits at the human-in-the-loop
``await_approval`` task until an operator approves through Airflow's REST API (what the UI calls),
then the alias moves and the approver is recorded in the promotion log."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from nightshift import promotion_log
from nightshift_datagen.hdfs import Scenario, generate
from nightshift.lake import Lake
from nightshift.localenv import NIGHTLY_DAG_ID
from nightshift_stack.stack import free_port
from tests.conftest import prepare_validated_day

pytestmark = pytest.mark.e2e

SCENARIO = Scenario(start_day="2026-04-01", days=2, seed=3, blocks_per_day=300, anomaly_rate=0.06)
DAYS = [SCENARIO.day(i) for i in range(SCENARIO.days)]


def _wait(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def test_manual_mode_waits_for_approval_then_promotes(tmp_path, airflow_env, spark):
    import httpx

    data_root, airflow_home = tmp_path / "data", tmp_path / "airflow"
    generate(data_root, SCENARIO)
    env = airflow_env(airflow_home, data_root)
    prepare_validated_day(spark, data_root, "hdfs", DAYS[0])    # the first night's data, in-process

    port = free_port()
    api_env = {**env, "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": f"http://localhost:{port}"}
    api = subprocess.Popen(["airflow", "api-server", "--port", str(port)], env=api_env, start_new_session=True,
                           stdout=open(tmp_path / "api.log", "w"), stderr=subprocess.STDOUT)
    conf = json.dumps({"day": DAYS[1], "source": "hdfs", "mode": "manual"})
    run = subprocess.Popen(["airflow", "dags", "test", NIGHTLY_DAG_ID, "2026-04-03", "-c", conf], env=env,
                           start_new_session=True, stdout=open(tmp_path / "day1.log", "w"), stderr=subprocess.STDOUT)
    try:
        def pending():
            with sqlite3.connect(airflow_home / "airflow.db") as db:
                return db.execute(
                    "select ti.run_id, h.subject from hitl_detail h join task_instance ti on ti.id = h.ti_id "
                    "where ti.task_id = 'await_approval' and h.chosen_options is null").fetchone()

        run_id, subject = _wait(pending, 600, "the approval request")
        assert subject == "Promote log_anomaly_hdfs v1 to champion?"
        # nothing has moved while the run waits
        assert promotion_log.read(data_root, "log_anomaly_hdfs") == []

        base = f"http://127.0.0.1:{port}"
        _wait(lambda: _healthy(base), 120, "the API server")
        password = json.loads((airflow_home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        token = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password}).json()["access_token"]
        response = httpx.patch(
            f"{base}/api/v2/dags/{NIGHTLY_DAG_ID}/dagRuns/{run_id}/taskInstances/await_approval/-1/hitlDetails",
            headers={"Authorization": f"Bearer {token}"}, json={"chosen_options": ["Approve"], "params_input": {}},
        )
        assert response.status_code == 200, response.text
        assert run.wait(timeout=300) == 0, (tmp_path / "day1.log").read_text()[-3000:]
    finally:
        for proc in (run, api):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)

    decision = Lake(data_root).read_report("hdfs", DAYS[1], "decision")
    assert decision["mode"] == "manual" and decision["decision"] == "promoted"
    assert decision["reason"].startswith("approved by airflow-user:admin")
    (entry,) = promotion_log.read(data_root, "log_anomaly_hdfs")
    assert (entry["action"], entry["to_version"], entry["decided_by"]) == ("promote", "1", "airflow-user:admin")


def _healthy(base: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
