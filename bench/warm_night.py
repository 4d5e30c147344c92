"""Nights through the embedded scheduler (the Airflow of ``make demo``), warm or cold task processes.

    .venv/bin/python bench/warm_night.py --out /tmp/warm-night [--days 2] [--cold]

Generates ``--days`` days of the demo's HDFS scenario (day 1 has too little labelled history, day 2
trains the first champion) into ``<out>/lake``, starts scheduler, dag-processor and api-server on
``<out>/airflow`` (SQLite, LocalExecutor, free ports; nothing of the checkout's ``data/`` or
``.airflow/`` is touched), runs each day's nightly DAG run and the scoring run its Asset event
starts, and prints each night's wall time and every task's duration (from the API). ``--cold`` sets
``NIGHTSHIFT_WARM_TASKS=0`` (the plain LocalExecutor). ``<out>`` is wiped first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nightshift.localenv import NIGHTLY_DAG_ID, local_environment, migrate_airflow_db  # noqa: E402
from nightshift_datagen.demo import DEMO_SCENARIO, SCORING_DAG_ID  # noqa: E402
from nightshift_datagen.hdfs import generate  # noqa: E402
from nightshift_stack.local import EmbeddedAirflowLock, LocalAirflow  # noqa: E402


def durations(airflow: LocalAirflow, dag_id: str, run_id: str) -> dict[str, float]:
    r = airflow.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
    out = {}
    for ti in airflow._ok(r, "task instances")["task_instances"]:
        key = ti["task_id"] if ti.get("map_index", -1) < 0 else f"{ti['task_id']}[{ti['map_index']}]"
        out[key] = (round(ti["duration"], 1) if ti.get("duration") is not None else None, ti.get("state"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--cold", action="store_true", help="NIGHTSHIFT_WARM_TASKS=0")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    base = dict(os.environ, NIGHTSHIFT_WARM_TASKS="0" if args.cold else "1")
    env = local_environment(airflow_home=out / "airflow", data_root=out / "lake", base=base)
    print(f"executor: {env['AIRFLOW__CORE__EXECUTOR']}; load average {os.getloadavg()[0]:.2f}", flush=True)
    scenario = dataclasses.replace(DEMO_SCENARIO, days=args.days)
    days = [d.day for d in generate(out / "lake", scenario)]
    logs = out / "logs"
    migrate_airflow_db(env, logs / "airflow-db-migrate.log")
    env["NIGHTSHIFT_END_DATE"] = max(days)
    report = {"executor": env["AIRFLOW__CORE__EXECUTOR"], "nights": {}}
    with EmbeddedAirflowLock(out / "airflow", "bench/warm_night.py"), LocalAirflow(env, logs) as airflow:
        airflow.wait_for_dags([NIGHTLY_DAG_ID, SCORING_DAG_ID])
        for day in days:
            run_id = f"nightly__{day}"
            t0 = time.monotonic()
            airflow.trigger(NIGHTLY_DAG_ID, run_id, day, {"source": "hdfs"}, note="bench/warm_night.py")
            run = airflow.wait_run(NIGHTLY_DAG_ID, run_id, 20 * 60)
            wall = time.monotonic() - t0
            tasks = durations(airflow, NIGHTLY_DAG_ID, run_id)
            report["nights"][day] = {"state": run["state"], "wall_s": round(wall, 1), "tasks": tasks}
            print(f"{run_id}: {run['state']} in {wall:.0f} s (load {os.getloadavg()[0]:.2f})", flush=True)
            for task, (seconds, state) in tasks.items():
                print(f"  {task:<28}{seconds if seconds is not None else '-':>8}  {state}", flush=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            runs = airflow.runs(SCORING_DAG_ID)
            if runs and all(r["state"] in ("success", "failed") for r in runs):
                break
            time.sleep(2)
        for r in airflow.runs(SCORING_DAG_ID):
            tasks = durations(airflow, SCORING_DAG_ID, r["dag_run_id"])
            report["nights"][r["dag_run_id"]] = {"state": r["state"], "tasks": tasks}
            print(f"{SCORING_DAG_ID} {r['dag_run_id']}: {r['state']}; "
                  + ", ".join(f"{t} {s}" for t, (s, _) in tasks.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    failed = [k for k, v in report["nights"].items() if v["state"] != "success"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
