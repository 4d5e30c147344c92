"""Alerts (nightshift.alerts): delivered to a webhook, recorded in the lake, never fatal."""

from __future__ import annotations

import pytest

from nightshift.alerts import read_alerts, send_alert, webhook_url
from tests.browser import free_port


def test_an_alert_reaches_the_webhook_and_the_lake(tmp_path, webhook_sink):
    url, received = webhook_sink
    alert = send_alert("input_drift", "hdfs", "2026-11-04", "drift: flagged", {"js": 0.4}, url=url, data_root=tmp_path)
    assert alert["delivered"] is True
    assert [(a["kind"], a["message"], a["details"]) for a in received] == [("input_drift", "drift: flagged", {"js": 0.4})]
    assert read_alerts(tmp_path) == [alert]


def test_without_a_webhook_or_with_a_dead_one_the_alert_is_logged_and_kept(tmp_path, capfd):
    assert webhook_url() is None        # no nightshift_alerts connection here
    quiet = send_alert("failed_night", "hdfs", "2026-11-06", "validation failed", data_root=tmp_path)
    dead = send_alert("failed_night", "hdfs", "2026-11-06", "validation failed",
                      url=f"http://127.0.0.1:{free_port()}/hook", data_root=tmp_path)
    logged = "".join(capfd.readouterr())      # Airflow's logging (once imported) writes the records itself
    assert quiet["delivered"] is None and "not delivered" in logged
    assert dead["delivered"] is False and "could not be delivered" in logged
    assert [a["delivered"] for a in read_alerts(tmp_path)] == [None, False]
    with pytest.raises(ValueError, match="unknown alert kind"):
        send_alert("mood", "hdfs", "2026-11-06", "x", data_root=tmp_path)
