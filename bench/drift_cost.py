"""What drift detection adds to a night (issue 11), measured on a lake of validated days
(default: ``./data`` after ``make demo``), per day:

- **profile (Spark)**: the two queries the features job runs for the day's drift profile over the
  written features (lines per template, sessions per distinct set of templates:
  ``nightshift.features.template_line_counts`` and ``session_template_sets``), in a warm local[2]
  session, median of ``--repeat`` runs (the rest of the features job is there without drift);
- **learned bounds**: the inputs of the learned GX expectations (volume bounds of both suites,
  template-share bounds) from the recent validated days' reports;
- **drift check**: ``check_input_drift``'s computation without its writes (``day_drift`` against
  the champion's training days and the recent days, the drift table's rows);
- **plots**: the decision record's template-distribution and drift-trend plots;
- **task**: the ``check_input_drift`` task's wall time in the lake's Airflow runs (task start-up
  included), read from the metadata DB of ``--airflow-home`` when it has them (``make demo``).

    .venv/bin/python bench/drift_cost.py                    # ./data, .airflow, source hdfs
    .venv/bin/python bench/drift_cost.py --data /path/to/lake --airflow-home /path/to/airflow --repeat 5
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    """Median wall seconds of ``repeat`` calls, and the last result."""
    seconds, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def task_seconds(airflow_home: Path, task_id: str = "check_input_drift") -> dict[str, float]:
    """Wall seconds of ``task_id`` per nightly run, keyed by the run's day (run id ``nightly__<day>``
    or a ``day`` in its conf); empty without a metadata DB."""
    db = airflow_home / "airflow.db"
    if not db.exists():
        return {}
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT ti.run_id, ti.start_date, ti.end_date FROM task_instance ti "
                           "WHERE ti.dag_id = 'nightshift_nightly' AND ti.task_id = ? AND ti.state = 'success'",
                           (task_id,)).fetchall()
    import datetime as dt

    out = {}
    for run_id, start, end in rows:
        day = run_id.split("__", 1)[1][:10] if "__" in run_id else run_id
        out[day] = (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=PROJECT_ROOT / "data")
    p.add_argument("--airflow-home", type=Path, default=PROJECT_ROOT / ".airflow")
    p.add_argument("--source", default="hdfs")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    from nightshift.decision_record import render_drift_image, render_drift_trend
    from nightshift.drift import (day_drift, drift_table_rows, learned_template_share_bounds, learned_volume_bounds,
                                  load_thresholds)
    from nightshift.features import session_template_sets, template_line_counts
    from nightshift.lake import Lake
    from nightshift.settings import load_settings
    from nightshift.spark import get_spark

    lake, source = Lake(args.data), args.source
    thresholds = load_thresholds(load_settings().config_dir, source)
    days = [d for d in lake.days_with("features", source) if lake.read_report(source, d, "drift")]
    if not days:
        raise SystemExit(f"no day of {source} with features and a drift report under {args.data}: run make demo first")
    spark = get_spark("nightshift-drift-cost", master="local[2]",
                      conf={"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"})
    tasks = task_seconds(args.airflow_home)
    header = ("day", "sessions", "profile (Spark) s", "learned bounds s", "drift check s", "plots s",
              "check_input_drift task s")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    plots_dir = Path(tempfile.mkdtemp(prefix="drift-cost-"))
    for day in days:
        features = spark.read.parquet(str(lake.features_dir(source, day))).cache()
        sessions = features.count()
        profile_s, _ = timed(lambda: (template_line_counts(features), session_template_sets(features)), args.repeat)
        features.unpersist()
        bounds_s, _ = timed(lambda: (learned_volume_bounds(lake, source, day, "parsed_lines", thresholds),
                                     learned_volume_bounds(lake, source, day, "session_features", thresholds),
                                     learned_template_share_bounds(lake, source, day, thresholds)), args.repeat)
        champion = (lake.read_report(source, day, "drift") or {}).get("champion_version")
        check_s, drift = timed(lambda: (day_drift(lake, source, day, thresholds, champion),
                                        drift_table_rows(lake, source))[0], args.repeat)
        plots_s, _ = timed(lambda: (render_drift_image(plots_dir, lake, drift),
                                    render_drift_trend(plots_dir, lake, source, day)), args.repeat)
        task = tasks.get(day)
        print(f"| {day} | {sessions:,} | {profile_s:.2f} | {bounds_s:.3f} | {check_s:.3f} | {plots_s:.2f} | "
              f"{f'{task:.1f}' if task is not None else '-'} |", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
