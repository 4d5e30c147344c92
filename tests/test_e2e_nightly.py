"""End to end: the nightly DAG through real Airflow (``airflow dags test``), real spark-submit,
real Great Expectations and a real MLflow store, over six generated days, then a rollback:

day 0: normal, but only one labelled day exists -> training skipped, recorded
day 1: normal -> first champion promoted (floors pass)
day 2: corrupted (garbage, truncated lines, a format change) -> validation fails, champion unchanged
day 3: drift (a new software version): the champion breaks (below the floors on the day's holdout);
       a challenger trained on the old days replaces it only if it passes the floors and is
       significantly better there, else the champion is kept
days 4-5: after the drift: retrained on the new version (the drift day among its training days), a
       challenger wins -> promoted
then the rollback DAG moves the champion back to 'previous', and the promotion log shows all of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nightshift_datagen.hdfs import Scenario, generate
from nightshift.ingest import read_parsed_lines
from nightshift.lake import Lake
from nightshift import promotion_log
from nightshift.localenv import run_dag, run_nightly_dag
from tests.conftest import serve_webhook

pytestmark = pytest.mark.e2e

SCENARIO = Scenario(start_day="2026-03-01", days=6, seed=11, blocks_per_day=400, anomaly_rate=0.05, corrupt_day=2,
                    drift_day=3)
DAYS = [SCENARIO.day(i) for i in range(SCENARIO.days)]


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, airflow_env):
    """Generate the days and run the nightly DAG for each, in order (once for the module), with the
    alerts' webhook pointed at a local sink; day 1 is scored as its Asset event would have it (a
    quiet night). Then the rollback DAG; then the champion watch for real (``champion_watch``)."""
    base = tmp_path_factory.mktemp("e2e")
    data_root, airflow_home = base / "data", base / "airflow"
    summaries = generate(data_root, SCENARIO)
    env = airflow_env(airflow_home, data_root, spark_connect=True)    # the nights' Spark job: as in make demo
    env["NIGHTSHIFT_CONFIG_DIR"] = str(shipped_config_with_a_short_search(base / "config"))
    lake, logs = Lake(data_root), base / "logs"
    alerts: dict[str, list[dict]] = {}       # what reached the webhook during each run
    with serve_webhook() as (url, received):
        env["AIRFLOW_CONN_NIGHTSHIFT_ALERTS"] = json.dumps({"conn_type": "http", "host": url})

        def run(name: str, call) -> int:
            before = len(received)
            code = call(logs / f"{name}.log")
            alerts[name] = received[before:]
            return code

        codes = {}
        for day in DAYS:
            codes[day] = run(day, lambda log, day=day: run_nightly_dag(day, env, log))
            if day == DAYS[1]:
                codes[f"score {day}"] = run(f"score {day}", lambda log: _score(day, env, log))
        codes["rollback"] = run("rollback", lambda log: run_dag("nightshift_rollback", "2026-03-07",
                                                                {"source": "hdfs", "reason": "e2e: undo"}, env, log))
        # what the nights and the rollback left, before the champion watch moves the alias again
        # and its retraining night rewrites its day's reports
        nights = {"decisions": {d: lake.read_report("hdfs", d, "decision") for d in DAYS},
                  "promotion_log": promotion_log.read(lake.root, MODEL), "champion": _champion(env)}
        watch = champion_watch(env, lake, run, codes, nights)
    return {"lake": lake, "env": env, "codes": codes, "logs": logs, "alerts": alerts, "nights": nights,
            "watch": watch, "airflow_home": airflow_home, "generated": {s.day: s for s in summaries}}


def champion_watch(env, lake, run, codes, nights) -> dict:
    """The champion watch end to end in Airflow runs: the operator rolls back to the pre-drift
    champion (v1, trained on day 0); the scoring DAG scores the drift day with it (suspect
    predictions: an alert and a retraining request) and the day after (v1 below the floors on two
    labelled days in a row: the watch alerts, rolls back automatically, ``watch_auto_rollback``
    being on in this config, and triggers ``nightshift_nightly``); then that queued run is executed
    (``airflow dags test`` with its logical date and conf) and retrains the day."""
    import sqlite3

    v1 = nights["decisions"][DAYS[1]]["challenger_version"]
    if nights["champion"] != v1:
        codes["rollback to v1"] = run("rollback to v1", lambda log: run_dag(
            "nightshift_rollback", "2026-03-08", {"source": "hdfs", "to_version": v1,
                                                  "reason": "e2e: the pre-drift champion back"}, env, log))
    watch = {"champion_before": _champion(env)}
    for day in DAYS[3:5]:
        codes[f"score {day}"] = run(f"score {day}", lambda log, day=day: _score(day, env, log))
    watch["report"] = lake.read_report("hdfs", DAYS[4], "champion_watch")
    watch["champion_after_watch"] = _champion(env)
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        watch["triggered"] = db.execute("SELECT run_id, run_type, state, conf, logical_date FROM dag_run "
                                        "WHERE dag_id = 'nightshift_nightly' AND state = 'queued'").fetchall()
        watch["flag_states"] = {f"score {json.loads(conf)['day']}": state for conf, state in db.execute(
            "SELECT r.conf, t.state FROM task_instance t JOIN dag_run r ON r.run_id = t.run_id AND r.dag_id = t.dag_id "
            "WHERE t.dag_id = 'nightshift_scoring' AND t.task_id = 'flag_suspect_predictions'")}
        watch["retraining_events"] = [json.loads(extra) for (extra,) in db.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.name = 'nightshift_retraining_requested' ORDER BY e.id")]
    if len(watch["triggered"]) == 1:
        _, _, _, conf, logical_date = watch["triggered"][0]
        codes["retraining"] = run("retraining", lambda log: run_dag(
            "nightshift_nightly", logical_date, json.loads(conf), env, log))
    watch["retrained"] = lake.read_report("hdfs", DAYS[4], "decision")
    watch["champion_after"] = _champion(env)
    return watch


MODEL = "log_anomaly_hdfs"


def _score(day: str, env, log) -> int:
    return run_dag("nightshift_scoring", day, {"source": "hdfs", "day": day}, env, log)


def _champion(env) -> str | None:
    from mlflow import MlflowClient

    uri = env["MLFLOW_TRACKING_URI"]
    try:
        return str(MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(MODEL, "champion").version)
    except Exception:
        return None


def shipped_config_with_a_short_search(config: Path) -> Path:
    """The shipped config/ with the search budget cut to E2E_TUNING: every candidate still runs
    its search through the real tasks (first configuration, then as many as fit), without
    spending the shipped 60 s per candidate per night on 2 cores (the nights' long pole); and the
    champion watch's automatic rollback on, so that its path runs."""
    import shutil

    import yaml

    from nightshift.settings import PROJECT_ROOT

    shutil.copytree(PROJECT_ROOT / "config", config)
    training = yaml.safe_load((config / "training.yaml").read_text())
    training["tuning"] = {**training["tuning"], **E2E_TUNING}
    (config / "training.yaml").write_text(yaml.safe_dump(training, sort_keys=False))
    promotion = (config / "promotion.yaml").read_text()
    assert "watch_auto_rollback: false" in promotion
    (config / "promotion.yaml").write_text(promotion.replace("watch_auto_rollback: false", "watch_auto_rollback: true"))
    return config


E2E_TUNING = {"budget_s": 5, "max_configs": 2}


def _log_tail(run, day):
    return (run["logs"] / f"{day}.log").read_text()[-3000:]


def test_good_days_succeed_and_the_corrupted_day_fails(pipeline_run):
    codes = pipeline_run["codes"]
    for day in [DAYS[0], DAYS[1], DAYS[3], DAYS[4], DAYS[5], "rollback"]:
        assert codes[day] == 0, _log_tail(pipeline_run, day)
    assert codes[DAYS[2]] != 0


def test_each_night_s_spark_job_ran_on_the_spark_connect_server(pipeline_run, spark_connect_server):
    """As in ``make demo``, the nightly's ``ingest_and_validate`` ran ``jobs/ingest.py`` as a client of
    the Spark Connect server of the connection ``nightshift_spark_connect``: every night's spark
    report names the server, and no driver JVM of its own was started (no JVM options to report).
    The spark-submit path is the BGL module's (tests/test_e2e_bgl.py)."""
    for day in DAYS:
        report = pipeline_run["lake"].read_report("hdfs", day, "spark_ingest")
        assert report["spark_connect"].rstrip("/") == spark_connect_server["url"], (day, report)
        assert report["jvm_options"] == [] and report["exit_code"] == 0, (day, report)
    log = (pipeline_run["logs"] / f"{DAYS[1]}.log").read_text()
    assert "running ingest.py as its client" in log and "Spark-Submit cmd" not in log


def test_every_input_line_is_parsed_or_quarantined(pipeline_run, spark):
    lake = pipeline_run["lake"]
    for day in DAYS:
        raw_lines = sum(len(p.read_bytes().splitlines()) for p in lake.raw_dir("hdfs", day).iterdir())
        parsed = read_parsed_lines(spark, lake.parsed_dir("hdfs", day)).count()
        quarantined = spark.read.parquet(str(lake.quarantine_dir("hdfs", day))).count()
        assert parsed + quarantined == raw_lines == pipeline_run["generated"][day].lines
        report = lake.read_report("hdfs", day, "ingest")
        assert (report["parsed_lines"], report["quarantined_lines"]) == (parsed, quarantined)
    assert lake.read_report("hdfs", DAYS[0], "ingest")["quarantined_lines"] == 0


def test_validation_results(pipeline_run):
    lake = pipeline_run["lake"]
    for day in DAYS[:2]:
        for suite in ("parsed_lines", "session_features"):
            assert lake.read_report("hdfs", day, f"validation_{suite}")["success"] is True
    failed = lake.read_report("hdfs", DAYS[2], "validation_parsed_lines")
    assert failed["success"] is False
    assert any("quarantine_rate" in reason for reason in failed["failures"]), failed["failures"]
    # the failed day keeps its data (its features were built in the same Spark application as
    # ingest) and goes no further: features not validated, a "failed" decision, never trained on later
    assert lake.parsed_dir("hdfs", DAYS[2]).exists() and lake.quarantine_dir("hdfs", DAYS[2]).exists()
    assert lake.features_dir("hdfs", DAYS[2]).exists()
    assert lake.read_report("hdfs", DAYS[2], "validation_session_features") is None
    failed_night = lake.read_report("hdfs", DAYS[2], "decision")   # every night has a decision record
    assert failed_night["decision"] == "failed" and failed_night["reason"].startswith("validation failed: parsed_lines: ")
    night = lake.read_report("hdfs", DAYS[2], "night")
    assert night["spark_steps_s"].keys() == {"ingest", "features", "validate_parsed_lines"}   # stopped after it failed
    later = [lake.read_report("hdfs", d, "decision") for d in DAYS[3:]]
    trained = [r for r in later if r and r.get("train_days")]
    assert trained, later
    for decision in trained:
        assert DAYS[2] not in decision["train_days"] + decision["holdout_days"], decision
    assert (lake.gx_dir / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()


def test_training_decisions_and_champion_alias(pipeline_run):
    import mlflow
    from mlflow import MlflowClient

    lake = pipeline_run["lake"]
    first = lake.read_report("hdfs", DAYS[0], "decision")
    assert first["decision"] == "skipped" and "need 2" in first["reason"]
    second = lake.read_report("hdfs", DAYS[1], "decision")
    assert second["decision"] == "promoted", second["reason"]
    assert second["holdout_days"] == [DAYS[1]] and second["train_days"] == [DAYS[0]]
    assert set(second["candidates"]) == {"baseline_logreg", "decision_tree", "random_forest", "gradient_boosting",
                                         "pca_detector", "isolation_forest", "invariants_miner"}

    uri = pipeline_run["env"]["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)      # earlier tests may have left MLflow's global registry URI elsewhere
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    runs = mlflow.search_runs(experiment_names=["nightshift-hdfs"], output_format="list",
                              filter_string=f"tags.`nightshift.day` = '{DAYS[1]}'")
    assert len(runs) == 7 and {r.data.tags["nightshift.candidate"] for r in runs} == set(second["candidates"])
    for r in runs:
        assert r.data.metrics["holdout_f1"] == pytest.approx(second["candidates"][r.data.tags["nightshift.candidate"]]["f1"])
        # every run names the Airflow run and task that trained it
        assert r.data.tags["airflow.dag_id"] == "nightshift_nightly" and r.data.tags["airflow.task_id"] == "train_candidate"
        assert r.data.tags["airflow.url"].endswith(r.data.tags["airflow.run_id"].replace(":", "%3A").replace("+", "%2B"))
    v1 = client.get_model_version("log_anomaly_hdfs", second["challenger_version"])
    assert v1.tags["nightshift.decision"] == "promoted" and v1.tags["nightshift.gate_passed"] == "true"
    assert v1.description.startswith(f"**promoted** on the night of {DAYS[1]} (hdfs); champion after: v{v1.version}")
    decision_artifact = json.loads(
        open(mlflow.artifacts.download_artifacts(run_id=second["best_run_id"], artifact_path="decision.json")).read()
    )
    assert decision_artifact["decision"] == "promoted"
    assert mlflow.artifacts.download_artifacts(run_id=second["best_run_id"], artifact_path="decision_record/precision_recall.png")
    # the corrupted day registered nothing: the next version comes from the drift day
    versions = {v.tags["nightshift.day"]: v.version for v in client.search_model_versions("name='log_anomaly_hdfs'")}
    assert DAYS[2] not in versions and set(versions) == {DAYS[1], DAYS[3], DAYS[4], DAYS[5]}

    # the champion scores raw session event counts, including templates it never saw
    import pandas as pd

    model = mlflow.pyfunc.load_model(f"models:/log_anomaly_hdfs/{second['challenger_version']}")
    unseen = pd.DataFrame([{"line_count": 3, "duration_s": 1.0, "warn_count": 0, "error_count": 0,
                            "event_counts": json.dumps({"999999": 3})}])
    probabilities = model.predict(unseen)
    assert probabilities.shape == (1, 2) and abs(probabilities.sum() - 1.0) < 1e-9


def test_drift_rejection_promotion_rollback_and_the_log(pipeline_run):
    nights = pipeline_run["nights"]          # as the six nights and the rollback left them
    drift = nights["decisions"][DAYS[3]]
    floors = drift["policy"]["floor_precision"], drift["policy"]["floor_recall"]
    broken = drift["champion_metrics"]
    assert broken["precision"] < floors[0] or broken["recall"] < floors[1], broken      # the champion broke
    floor_check = next(c for c in drift["checks"] if c["name"] == "floors")
    if drift["decision"] == "promoted":      # only a challenger that passes the floors may replace it
        assert floor_check["passed"] and drift["bootstrap_holdout"]["lower"] > 0, drift["reason"]
    else:
        assert drift["decision"] == "kept" and drift["champion_after"] == drift["champion_before"], drift["reason"]
    later = [nights["decisions"][d] for d in DAYS[4:]]
    promoted = [r for r in later if r["decision"] == "promoted"]
    assert promoted, [r["reason"] for r in later]
    after = promoted[0]
    # the default rule (non_inferior): significantly better on the pooled days, or non-inferior with a better
    # point estimate or against a stale champion; the check names which clause passed
    bootstrap = next(c for c in after["checks"] if c["name"] == "bootstrap")
    assert bootstrap["via"] and all(c["passed"] for c in after["checks"]), after["reason"]
    assert after["bootstrap"]["lower"] > -after["policy"]["non_inferiority_delta"]
    assert DAYS[3] in after["train_days"]

    # the log holds every alias move, in order: each promotion, then the rollback to 'previous'
    second = nights["decisions"][DAYS[1]]
    moved = ([drift] if drift["decision"] == "promoted" else []) + promoted
    chain = [second["challenger_version"]] + [r["challenger_version"] for r in moved]
    entries = nights["promotion_log"]
    expected = [("promote", None, chain[0])] + [("promote", a, b) for a, b in zip(chain, chain[1:])]
    expected.append(("rollback", chain[-1], chain[-2]))
    assert [(e["action"], e["from_version"], e["to_version"]) for e in entries] == expected
    # the rollback is recorded as the user who triggered it (`airflow dags test` runs as dag_test)
    assert entries[-1]["decided_by"].startswith("airflow-user:dag_test") and entries[-1]["reason"] == "e2e: undo"

    assert nights["champion"] == chain[-2]                                     # rolled back one step


def test_the_drift_day_is_flagged_before_its_labels_are_used_and_normal_days_are_not(pipeline_run):
    import mlflow

    from nightshift.lake import report_mtime

    lake = pipeline_run["lake"]
    drift = {d: lake.read_report("hdfs", d, "drift") for d in DAYS}
    assert drift[DAYS[0]]["flagged"] is False and drift[DAYS[0]]["summary"] == "no reference yet (first validated day)"
    assert drift[DAYS[1]]["flagged"] is False, drift[DAYS[1]]["summary"]
    assert drift[DAYS[2]] is None                    # the corrupted day stopped at validation
    flagged = drift[DAYS[3]]
    assert flagged["flagged"] and flagged["summary"].startswith("drift: flagged"), flagged
    assert flagged["references"]["recent"]["days"] == [DAYS[0], DAYS[1]]
    # recorded before the night trained on anything (labels are read only by training and evaluation)
    uri = pipeline_run["env"]["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["nightshift-hdfs"], output_format="list",
                              filter_string=f"tags.`nightshift.day` = '{DAYS[3]}'")
    assert runs and report_mtime(lake, "hdfs", DAYS[3], "drift") * 1000 < min(r.info.start_time for r in runs)
    # the decision record of the drift night shows it, with the template plot
    record_dir = lake.reports_dir("hdfs", DAYS[3]) / "decision_record"
    assert "**drift: flagged" in (record_dir / "decision.md").read_text()
    assert (record_dir / "template_distribution.png").is_file() and (record_dir / "drift_trend.png").is_file()


# ---------------------------------------------------------------- the operator's cockpit, in a browser

def test_alerts_reach_the_webhook_for_the_failed_and_the_drift_night_and_none_on_quiet_nights(pipeline_run):
    alerts = {run: [(a["kind"], a["day"]) for a in got] for run, got in pipeline_run["alerts"].items()}
    assert alerts[DAYS[0]] == alerts[DAYS[1]] == alerts[f"score {DAYS[1]}"] == [], alerts     # quiet normal nights
    assert alerts[DAYS[2]] == [("failed_night", DAYS[2])], alerts
    assert ("input_drift", DAYS[3]) in alerts[DAYS[3]] and ("failed_night", DAYS[3]) not in alerts[DAYS[3]], alerts
    failed = pipeline_run["alerts"][DAYS[2]][0]
    assert failed["message"].startswith("validation failed: parsed_lines: ") and failed["airflow_run_id"], failed
    # every alert is also kept in the lake, the delivery recorded
    from nightshift.alerts import read_alerts

    kept = read_alerts(pipeline_run["lake"].root)
    assert len(kept) == sum(len(got) for got in pipeline_run["alerts"].values())
    assert all(a["delivered"] is True for a in kept), kept


def test_scoring_marks_the_drift_day_s_predictions_suspect_and_a_normal_day_s_not(pipeline_run):
    import pandas as pd

    lake, codes, alerts = pipeline_run["lake"], pipeline_run["codes"], pipeline_run["alerts"]
    v1 = pipeline_run["nights"]["decisions"][DAYS[1]]["challenger_version"]
    for day, suspect in ((DAYS[1], False), (DAYS[3], True)):
        assert codes[f"score {day}"] == 0, _log_tail(pipeline_run, f"score {day}")
        report = lake.read_report("hdfs", day, "scoring")
        assert str(report["champion_version"]) == v1 and report["suspect"] is suspect, report
        predictions = pd.read_parquet(lake.predictions_dir("hdfs", day), columns=["suspect", "model_version"])
        assert len(predictions) == report["sessions"] and set(predictions["suspect"]) == {suspect}
        # training/serving skew: tonight's features against those the champion was trained on
        skew = report["prediction_drift"]["skew"]
        assert skew and skew["reference_days"] == [DAYS[0]], skew
    drifted = lake.read_report("hdfs", DAYS[3], "scoring")["prediction_drift"]
    assert any(r.startswith("input drift") for r in drifted["reasons"]), drifted
    [suspect_alert] = [a for a in alerts[f"score {DAYS[3]}"] if a["kind"] == "prediction_drift"]
    assert suspect_alert["day"] == DAYS[3] and suspect_alert["message"].startswith(f"predictions of v{v1} are suspect")
    # and a retraining request (the Asset event the nightshift_retraining DAG consumes) names v1; the
    # quiet night's scoring emitted none (an empty event would start a retraining run for nothing)
    events = pipeline_run["watch"]["retraining_events"]
    assert events and all(e.get("requests") for e in events), events
    assert [(r["source"], r["day"], r["version"]) for e in events for r in e["requests"]][0] == ("hdfs", DAYS[3], v1)
    states = pipeline_run["watch"]["flag_states"]
    assert states[f"score {DAYS[1]}"] == "skipped" and states[f"score {DAYS[3]}"] == "success", states


def test_the_champion_watch_rolls_back_and_its_retraining_run_retrains(pipeline_run):
    """alert -> automatic rollback -> retraining, each in an Airflow run (issue 11)."""
    watch, codes = pipeline_run["watch"], pipeline_run["codes"]
    v1 = pipeline_run["nights"]["decisions"][DAYS[1]]["challenger_version"]
    assert watch["champion_before"] == v1
    report = watch["report"]
    assert report and report["alert"] and report["failing_version"] == v1, report
    assert [r["day"] for r in report["realized"]][-2:] == [DAYS[3], DAYS[4]]
    moved = report["rolled_back"]
    assert moved["action"] == "rollback" and moved["from_version"] == v1, moved
    assert moved["decided_by"] == "nightshift:champion-watch"
    assert watch["champion_after_watch"] == moved["to_version"] == report["retrain_for_version"] != v1
    [(kind, day)] = [(a["kind"], a["day"]) for a in pipeline_run["alerts"][f"score {DAYS[4]}"]
                     if a["kind"] == "champion_watch"]
    assert day == DAYS[4]
    # the run the watch triggered, executed: it retrains the day while the rolled-back-to version is champion
    [(run_id, run_type, _, conf, _)] = watch["triggered"]
    assert run_type == "operator_triggered", run_id
    assert json.loads(conf) == {"source": "hdfs", "day": DAYS[4], "retrain_for_version": moved["to_version"]}
    assert codes["retraining"] == 0, _log_tail(pipeline_run, "retraining")
    retrained = watch["retrained"]
    assert retrained["decision"] in ("promoted", "kept") and retrained["candidates"], retrained
    assert retrained["champion_before"] == moved["to_version"], retrained
    assert retrained["best_run_id"] != pipeline_run["nights"]["decisions"][DAYS[4]]["best_run_id"]
    assert DAYS[3] in retrained["train_days"] or DAYS[3] in retrained["holdout_days"], retrained


def cockpit_tour(ui: dict, lake, shots) -> dict:
    """From the Airflow UI alone (a real api-server, real login, headless Chromium): which model is
    in production, since when and why, what happened each night, every link type opens its page,
    and a rollback through the view moves the alias and is logged as the logged-in user. Returns
    what it saw (for the caller's asserts on the registry)."""
    import urllib.parse
    from urllib.request import Request, urlopen

    from selenium.webdriver.common.by import By

    from nightshift import promotion_log, registry
    from tests.browser import chromium, log_in, status, wait_for

    airflow, model = ui["airflow"], "log_anomaly_hdfs"
    days = lake.days_with("reports", "hdfs")
    outcomes = {d: (lake.read_report("hdfs", d, "decision") or {}).get("decision") for d in days}

    # no token: refused like /api/v2; a viewer may look but not roll back
    assert status(f"{airflow}/nightshift/view") == 401 and status(f"{airflow}/nightshift/nights/hdfs.json") == 401
    token_request = Request(f"{airflow}/auth/token", data=json.dumps(
        {"username": "viewer", "password": ui["passwords"]["viewer"]}).encode(), headers={"Content-Type": "application/json"})
    viewer = {"Authorization": "Bearer " + json.loads(urlopen(token_request, timeout=30).read())["access_token"]}
    assert status(f"{airflow}/nightshift/nights/hdfs.json", viewer) == 200
    assert status(f"{airflow}/nightshift/rollback/hdfs", viewer, data=b"reason=not+allowed") == 403

    seen: dict = {}
    with chromium() as d:
        log_in(d, airflow, "operator", ui["passwords"]["operator"])

        def open_view():
            d.switch_to.default_content()
            d.get(f"{airflow}/plugin/nightshift")
            frame = wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, "iframe[src*='/nightshift/view']"))[0]
            d.switch_to.frame(frame)
            wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.night"))

        open_view()
        d.switch_to.default_content()
        d.save_screenshot(str(shots / "01-nightshift-view.png"))
        d.switch_to.frame(d.find_element(By.CSS_SELECTOR, "iframe[src*='/nightshift/view']"))
        rows = {r.get_attribute("data-day"): r.get_attribute("data-outcome") for r in d.find_elements(By.CSS_SELECTOR, "tr.night")}
        assert rows == outcomes and len(rows) == 6, rows
        header = d.find_element(By.CSS_SELECTOR, ".header.champion").text
        seen["champion_before"] = str(registry.champion(ui["settings"], model).version)
        assert f"Champion of {model}: v{seen['champion_before']}" in header and "Chosen:" in header, header
        links = {}
        for kind in ("l-run", "l-mlflow", "l-version", "l-record", "l-datadocs"):
            anchors = d.find_elements(By.CSS_SELECTOR, f"tr.night a.{kind}")
            assert anchors, kind
            links[kind] = anchors[0].get_attribute("href")

        # follow each link type to its page
        d.switch_to.default_content()
        def last_segment(href: str) -> str:
            return urllib.parse.unquote(href.rstrip("/").rsplit("/", 1)[1])     # MLflow routes in the fragment

        def body(d) -> str:
            return d.find_element(By.TAG_NAME, "body").text

        newest = days[-1]
        expected = {    # what each page must show once rendered (Airflow's and MLflow's are single-page apps)
            "l-run": lambda d: "Task Instances" in body(d) and last_segment(links["l-run"]) in body(d),
            "l-mlflow": lambda d: "/runs/" in d.current_url and last_segment(links["l-mlflow"]) in body(d),
            "l-version": lambda d: f"Version {last_segment(links['l-version'])}" in body(d),
            "l-record": lambda d: "Nightshift decision: hdfs" in body(d) or f"Decision record: hdfs, night of" in body(d),
            "l-datadocs": lambda d: "Expectation Validation Result" in body(d) and f"hdfs {newest}" in body(d),
        }
        for i, (kind, href) in enumerate(links.items(), start=2):
            d.get(href)
            wait_for(d, expected[kind], 60)
            d.save_screenshot(str(shots / f"0{i}-{kind[2:]}.png"))

        # the Night tab of a nightly run opens that night's record
        run_id = (lake.read_report("hdfs", days[1], "decision") or {}).get("airflow", {}).get("airflow.run_id") \
            or lake.read_report("hdfs", days[1], "night")["run_id"]
        d.get(f"{airflow}/dags/nightshift_nightly/runs/{urllib.parse.quote(run_id, safe='')}/plugin/night")
        frame = wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, "iframe[src*='/nightshift/runs/']"))[0]
        d.switch_to.frame(frame)
        wait_for(d, lambda d: days[1] in d.find_element(By.TAG_NAME, "body").text, 60)
        d.switch_to.default_content()
        d.save_screenshot(str(shots / "07-night-tab.png"))

        # roll back through the view: the form names the target and its gate result, asks why
        open_view()
        d.find_element(By.CSS_SELECTOR, "a.rollback").click()
        wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".header.target"))
        target = d.find_element(By.CSS_SELECTOR, ".header.target").text
        seen["target"] = target.split("Target: v")[1].split(" ")[0]
        assert "passed the promotion gate" in target, target
        d.find_element(By.NAME, "reason").send_keys("browser test: the operator undoes the last move")
        d.switch_to.default_content()
        d.save_screenshot(str(shots / "08-rollback-form.png"))
        d.switch_to.frame(d.find_element(By.CSS_SELECTOR, "iframe"))
        d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".ok"), 60)
        assert f"v{seen['champion_before']} -> v{seen['target']} by operator" in d.find_element(By.CSS_SELECTOR, ".ok").text
        d.switch_to.default_content()
        d.save_screenshot(str(shots / "09-rolled-back.png"))
        d.get(f"{airflow}/nightshift/promotions")
        wait_for(d, lambda d: "airflow-user:operator (nightshift view)" in d.find_element(By.TAG_NAME, "body").text)
        d.save_screenshot(str(shots / "10-promotion-log.png"))
        # the task's extra links (kept by Airflow when the task ended) lead to the same evidence
        quoted = urllib.parse.quote(run_id, safe="")
        token = next(c["value"] for c in d.get_cookies() if c["name"] == "_token")
        extra = json.loads(urlopen(Request(
            f"{airflow}/api/v2/dags/nightshift_nightly/dagRuns/{quoted}/taskInstances/evaluate_candidates/links",
            headers={"Authorization": f"Bearer {token}"}), timeout=30).read())["extra_links"]
        seen["extra_links"] = extra
        # (the tasks ran without [api] base_url, so the links name the default address: follow their path here)
        record_link = urllib.parse.urlparse(extra["Decision record"] or "")
        assert urllib.parse.unquote(record_link.path) == f"/nightshift/runs/nightshift_nightly/{run_id}/record", extra
        d.get(f"{airflow}{record_link.path}")
        wait_for(d, lambda d: days[1] in d.find_element(By.TAG_NAME, "body").text, 60)

    last = promotion_log.read(lake.root, model)[-1]
    assert (last["action"], last["from_version"], last["to_version"]) == ("rollback", seen["champion_before"], seen["target"])
    assert last["decided_by"] == "airflow-user:operator (nightshift view)"
    assert str(registry.champion(ui["settings"], model).version) == seen["target"]
    return seen


@pytest.mark.skipif(not __import__("tests.browser", fromlist=["HAVE_BROWSER"]).HAVE_BROWSER,
                    reason="chromium and chromium-driver are not installed (.ci/run installs them)")
def test_the_operator_s_cockpit_in_a_browser(pipeline_run, tmp_path):
    """Runs last in this module: it rolls the champion back once more."""
    import dataclasses

    from nightshift.settings import load_settings
    from tests.browser import artifacts_dir, servers

    env = pipeline_run["env"]
    settings = dataclasses.replace(load_settings(), data_root=pipeline_run["lake"].root,
                                   mlflow_tracking_uri=env["MLFLOW_TRACKING_URI"], lock_url=None)
    with servers(env, tmp_path / "server-logs") as ui:
        cockpit_tour({**ui, "settings": settings}, pipeline_run["lake"], artifacts_dir("cockpit"))
