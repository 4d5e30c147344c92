"""``make demo``: generate a realistic multi-day HDFS log set and run the nightly DAG on each day.

The scenario shows the whole product loop: a first day with too little labelled history, a first
champion, a kept champion, a drift day (a new software version) after which a retrained model wins,
and a corrupted day that fails validation without touching the champion.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import time
from pathlib import Path

from nightshift_datagen.hdfs import Scenario, generate
from nightshift.lake import Lake
from nightshift.localenv import local_environment, migrate_airflow_db, run_dag, run_nightly_dag
from nightshift.settings import load_settings
from nightshift.summary import summarize

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


def _next_day(day: str) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()


def main() -> int:
    started = time.monotonic()
    settings = load_settings()
    env = local_environment()
    data_root, airflow_home = settings.data_root, Path(env["AIRFLOW_HOME"])
    _reset(data_root, airflow_home)
    logs = data_root / "demo-logs"

    print(f"[demo] generating {DEMO_SCENARIO.days} days of HDFS logs into {data_root}/raw ...", flush=True)
    for day in generate(data_root, DEMO_SCENARIO):
        print(f"[demo]   {day.describe()}", flush=True)
    print("[demo] preparing the Airflow metadata database (SQLite) ...", flush=True)
    migrate_airflow_db(env, logs / "airflow-db-migrate.log")

    start = dt.date.fromisoformat(DEMO_SCENARIO.start_day)
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range(DEMO_SCENARIO.days)]
    for day in days:
        t0 = time.monotonic()
        print(f"[demo] running the nightly DAG for {day} through Airflow ...", end=" ", flush=True)
        code = run_nightly_dag(day, env, logs / f"nightly-{day}.log")
        state = "succeeded" if code == 0 else "FAILED (see the log; expected for the corrupted day)"
        print(f"{state} in {time.monotonic() - t0:.0f}s  [log: {logs / f'nightly-{day}.log'}]", flush=True)
        if code == 0:
            # in production the scheduler starts it from the validated-features Asset event
            t0 = time.monotonic()
            print(f"[demo] scoring {day} with the champion (nightshift_scoring) ...", end=" ", flush=True)
            code = run_dag("nightshift_scoring", _next_day(day), {"source": "hdfs", "day": day}, env,
                           logs / f"scoring-{day}.log")
            print(f"{'succeeded' if code == 0 else 'FAILED (see the log)'} in {time.monotonic() - t0:.0f}s", flush=True)

    lake = Lake(data_root)
    print("\n" + summarize(lake, "hdfs", days) + "\n")
    print(f"Demo finished in {time.monotonic() - started:.0f}s.")
    print("Browse the runs:   make ui   (Airflow http://localhost:8080, MLflow http://localhost:5000)")
    print("Promotion log:     .venv/bin/nightshift promotions --source hdfs")
    print('Roll back:         .venv/bin/nightshift rollback --source hdfs --reason "..."')
    print(f"Data Docs:         {lake.gx_dir / 'uncommitted' / 'data_docs' / 'local_site' / 'index.html'}")
    print(f"Reports per day:   {data_root / 'reports' / 'source=hdfs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
