"""``make demo``: generate a realistic multi-day HDFS log set and run the nightly DAG on each day.

Each day is a real DAG run (``nightly__<day>``, logical date = the day) created through Airflow's
REST API and executed by the scheduler (LocalExecutor, SQLite), which also starts the scoring DAG
from the day's Asset event: :class:`nightshift_stack.local.LocalAirflow`.

The scenario shows the whole product loop: a first day with too little labelled history, a first
champion, a kept champion, a drift day (a new software version) after which a retrained model wins,
and a corrupted day that fails validation without touching the champion.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from nightshift_datagen.hdfs import DaySummary, Scenario, generate
from nightshift.lake import Lake
from nightshift.localenv import NIGHTLY_DAG_ID, local_environment, migrate_airflow_db
from nightshift.settings import load_settings
from nightshift.summary import summarize
from nightshift_stack.local import EmbeddedAirflowLock, LocalAirflow, LocalAirflowError, interrupt_safe

SCORING_DAG_ID = "nightshift_scoring"

DEMO_SCENARIO = Scenario(
    start_day="2026-11-01", days=6, seed=7, blocks_per_day=3000, anomaly_rate=0.03, drift_day=3, corrupt_day=5
)
MARKER = ".nightshift-demo"


def _reset(data_root: Path, airflow_home: Path) -> None:
    """Start from a clean demo lake; refuse to wipe a lake the demo did not create."""
    if data_root.exists() and any(data_root.iterdir()) and not (data_root / MARKER).exists():
        raise SystemExit(
            f"{data_root} exists and was not created by the demo; refusing to overwrite it. "
            "Set NIGHTSHIFT_DATA_ROOT to another directory or move it away."
        )
    shutil.rmtree(data_root, ignore_errors=True)
    data_root.mkdir(parents=True)
    (data_root / MARKER).write_text("created by `make demo`; `make demo` wipes this directory\n")
    (airflow_home / "airflow.db").unlink(missing_ok=True)
    shutil.rmtree(airflow_home / "logs", ignore_errors=True)  # task logs of the previous demo's runs


NIGHTLY_TIMEOUT_S = 20 * 60   # guards against a hung run, not the expected time (about a minute)
SCORING_TIMEOUT_S = 10 * 60


def _print_task(task: str, state: str) -> None:
    """Progress: each task of the night on the day's line as it finishes."""
    print(task if state == "success" else f"{task}({state})", end=" ", flush=True)


def _run_day(airflow: LocalAirflow, generated: DaySummary, scored_before: int) -> tuple[dict, int]:
    """Trigger the nightly run of ``day`` and wait for it and for the scoring run its Asset event
    starts; returns (the nightly run, the number of scoring runs expected so far)."""
    day = generated.day
    run_id = f"nightly__{day}"
    t0 = time.monotonic()
    airflow.trigger(NIGHTLY_DAG_ID, run_id, day, {"source": "hdfs"},
                    note=f"make demo: the generated HDFS day {day} ({generated.describe()})")
    print(f"[demo] {run_id}: ", end="", flush=True)
    run = airflow.wait_run(NIGHTLY_DAG_ID, run_id, NIGHTLY_TIMEOUT_S, on_task_done=_print_task)
    expected = scored_before
    if airflow.task_states(NIGHTLY_DAG_ID, run_id).get("publish_features") == "success":
        expected += 1
    state = run["state"] if run["state"] == "success" else "FAILED"
    if run["state"] != "success" and generated.corrupted_lines:
        state += " (expected: the corrupted day fails validation)"
    print(f"-> {state} in {time.monotonic() - t0:.0f}s", flush=True)
    if expected > scored_before:
        # the scheduler started nightshift_scoring from the day's validated-features Asset event
        deadline = time.monotonic() + SCORING_TIMEOUT_S
        while True:
            runs = airflow.runs(SCORING_DAG_ID)
            if len(runs) >= expected and all(r["state"] in ("success", "failed") for r in runs):
                break
            if time.monotonic() > deadline:
                raise LocalAirflowError(f"no finished scoring run for {day} after {SCORING_TIMEOUT_S}s: "
                                        f"{[(r['dag_run_id'], r['state']) for r in runs]}")
            time.sleep(1)
        last = runs[-1]
        print(f"[demo]   scoring (started by the scheduler from the Asset event, run {last['dag_run_id']}): "
              f"{last['state']}", flush=True)
    return run, expected


@interrupt_safe
def main() -> int:
    started = time.monotonic()
    settings = load_settings()
    env = local_environment()
    data_root, airflow_home = settings.data_root, Path(env["AIRFLOW_HOME"])
    try:
        with EmbeddedAirflowLock(airflow_home, "make demo"):
            _reset(data_root, airflow_home)
            logs = data_root / "demo-logs"
            print(f"[demo] generating {DEMO_SCENARIO.days} days of HDFS logs into {data_root}/raw ...", flush=True)
            described = {}
            for day in generate(data_root, DEMO_SCENARIO):
                described[day.day] = day
                print(f"[demo]   {day.describe()}", flush=True)
            print("[demo] preparing the Airflow metadata database (SQLite) ...", flush=True)
            migrate_airflow_db(env, logs / "airflow-db-migrate.log")
            t0 = time.monotonic()
            # the generated days are in the past: no scheduled run after the last one (the DAG
            # is unpaused for the demo's runs; catchup is off, but the scheduler would still add
            # the latest interval, yesterday, which has no data)
            env["NIGHTSHIFT_END_DATE"] = max(described)
            with LocalAirflow(env, logs) as airflow:
                dags = [NIGHTLY_DAG_ID, SCORING_DAG_ID]
                airflow.wait_for_dags(dags)
                print(f"[demo] Airflow is up in {time.monotonic() - t0:.0f}s: scheduler, dag-processor and api-server "
                      f"(LocalExecutor, SQLite), logs in {logs}; each day is a run the scheduler executes",
                      flush=True)
                try:
                    scored = 0
                    for day in sorted(described):
                        _, scored = _run_day(airflow, described[day], scored)
                finally:
                    # paused again, as a fresh install has them: `make ui` then shows the runs
                    # without its scheduler starting new ones
                    try:
                        airflow.pause(dags)
                    except Exception as exc:  # noqa: BLE001  (do not hide what stopped the demo)
                        print(f"[demo] could not pause {dags}: {exc}", file=sys.stderr)
    except LocalAirflowError as exc:
        print(f"\n[demo] ERROR: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n[demo] interrupted: Airflow stopped", file=sys.stderr)
        return 130

    days = sorted(described)
    lake = Lake(data_root)
    print("\n" + summarize(lake, "hdfs", days) + "\n")
    print(f"Demo finished in {time.monotonic() - started:.0f}s.")
    print("Browse the runs:   make ui   (Airflow http://127.0.0.1:8080, MLflow http://127.0.0.1:5000)")
    print("Promotion log:     .venv/bin/nightshift promotions --source hdfs")
    print('Roll back:         .venv/bin/nightshift rollback --source hdfs --reason "..."')
    print(f"Data Docs:         {lake.gx_dir / 'uncommitted' / 'data_docs' / 'local_site' / 'index.html'}")
    print(f"Reports per day:   {data_root / 'reports' / 'source=hdfs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
