"""Warm task processes: what a heavy task pays for its imports when forked from a cold vs a warm
LocalExecutor worker (``nightshift.warm_tasks``), and what a warm worker costs in memory.

    .venv/bin/python bench/warm_tasks.py [--repeat 3] [--json PATH]

Each run is a fresh ``python -c`` process standing in for one LocalExecutor worker: it imports
Airflow's task runner (as a worker forked from the scheduler has), then, when warm, runs
``nightshift.warm_tasks.preload()`` (timed; RSS, PSS and the process's threads before and after).
It then forks, the way the task supervisor does (``os.fork()``), one child per heavy task:

* ``train_candidate``: the DAG task's and ``nightshift.training._train_candidate``'s imports plus
  what its work loads lazily (``mlflow.sklearn``, ``sklearn.model_selection``, MLflow's SQLAlchemy
  store for the local ``sqlite:`` tracking URI);
* ``evaluate_candidates``: the DAG task's and ``nightshift.promotion``'s imports (``sklearn.base``,
  ``nightshift.modeling``, MLflow and its store);
* ``work``: a child that uses the libraries after the fork: a 600x600 matrix product (OpenBLAS
  threads), a LogisticRegression and a HistGradientBoostingClassifier fit (OpenMP), a Parquet round
  trip (pyarrow) and an MLflow run with a logged sklearn model against a new SQLite store. It must
  finish within ``--timeout`` (a deadlocked child is killed and reported).

Cold and warm runs alternate; the figures are medians. Wall times move with the machine's load
(printed): compare runs made one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

TASK_IMPORTS = {
    "train_candidate": [
        "from nightshift.context import TaskContext",
        "from nightshift.training import TrainingPlan, train_candidate",
        "import mlflow, numpy, pandas, sklearn",
        "from mlflow.models import infer_signature",
        "import nightshift_model",
        "from nightshift.modeling import build_model, fit_model, to_model_input",
        "from nightshift.tuning import search",
        "import mlflow.sklearn, sklearn.model_selection, mlflow.store.tracking.sqlalchemy_store",
    ],
    "evaluate_candidates": [
        "from nightshift.context import TaskContext",
        "from nightshift.promotion import evaluate_candidates",
        "from nightshift.training import TrainingPlan",
        "import mlflow, numpy",
        "from sklearn.base import clone",
        "from nightshift.modeling import fit_model, to_model_input",
        "import mlflow.store.tracking.sqlalchemy_store",
    ],
}

WORK = """
import numpy as np, pandas as pd, mlflow, mlflow.sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.ensemble import HistGradientBoostingClassifier
from mlflow.models import infer_signature
rng = np.random.default_rng(0)
a = rng.random((600, 600)); (a @ a).sum()
X = pd.DataFrame(rng.random((400, 6)), columns=[f"f{i}" for i in range(6)]); y = (X["f0"] > 0.5).astype(int)
lr = LogisticRegression(max_iter=200).fit(X, y)
HistGradientBoostingClassifier(max_iter=20).fit(X, y)
X.to_parquet(f"{tmp}/x.parquet"); pd.read_parquet(f"{tmp}/x.parquet")
mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
exp = mlflow.create_experiment("warm", artifact_location=f"file://{tmp}/artifacts")
with mlflow.start_run(experiment_id=exp):
    mlflow.log_params({"C": 1.0}); mlflow.log_metric("acc", float(lr.score(X, y)))
    mlflow.sklearn.log_model(lr, name="model", signature=infer_signature(X, lr.predict(X)),
                             serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
"""

PROBE = """
import gc, json, os, sys, tempfile, threading, time
import airflow.sdk.execution_time.task_runner, airflow.sdk.execution_time.supervisor, airflow.executors.local_executor
mode, children, timeout = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
HEAVY = ("numpy", "pandas", "pyarrow", "scipy", "sklearn", "mlflow", "great_expectations", "pyspark")

def memory():
    out = {}
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "Threads")):
            key, value = line.split(":"); out[key] = int(value.split()[0])
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Pss:"):
            out["Pss"] = int(line.split()[1])
    return {"rss_mb": round(out["VmRSS"] / 1024, 1), "pss_mb": round(out.get("Pss", 0) / 1024, 1),
            "os_threads": out["Threads"], "py_threads": [t.name for t in threading.enumerate()]}

report = {"mode": mode, "before": memory()}
if mode == "warm":
    from nightshift import warm_tasks
    report["preload"] = warm_tasks.preload()
report["after"] = memory()
report["children"] = {}
for name, code in children.items():
    read_end, write_end = os.pipe()
    tmp = tempfile.mkdtemp(prefix="warm-tasks-")
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            preloaded = [m for m in HEAVY if m in sys.modules]
            t0 = time.perf_counter()
            exec(code, {"tmp": tmp})
            out = {"seconds": time.perf_counter() - t0, "preloaded": preloaded,
                   "imported": [m for m in HEAVY if m in sys.modules and m not in preloaded]}
        except BaseException as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write_end, json.dumps(out).encode())
        os._exit(0)
    os.close(write_end)
    while time.perf_counter() - started < timeout:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9); os.waitpid(pid, 0)
        report["children"][name] = {"error": f"timed out after {timeout} s (deadlock?)"}
        continue
    with os.fdopen(read_end) as pipe:
        report["children"][name] = json.loads(pipe.read() or '{"error": "no output"}')
print(json.dumps(report))
"""


def run(mode: str, timeout: float) -> dict:
    children = {name: "\n".join(lines) for name, lines in TASK_IMPORTS.items()}
    children["work"] = WORK
    with tempfile.TemporaryDirectory(prefix="warm-tasks-home-") as home:
        env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "NIGHTSHIFT_DATA_ROOT": str(Path(home) / "lake"), "MLFLOW_DISABLE_TELEMETRY": "true",
               "GX_ANALYTICS_ENABLED": "false",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run([sys.executable, "-c", PROBE, mode, json.dumps(children), str(timeout)],
                              env=env, capture_output=True, text=True, timeout=timeout * 4 + 120)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} probe failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds a child may take")
    parser.add_argument("--json", type=Path, help="write all runs here")
    args = parser.parse_args(argv)

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    runs = {"cold": [], "warm": []}
    for _ in range(args.repeat):
        for mode in ("cold", "warm"):
            runs[mode].append(run(mode, args.timeout))
    print(f"load average after:  {os.getloadavg()[0]:.2f}")

    errors = [(mode, name, child["error"]) for mode, rs in runs.items() for r in rs
              for name, child in r["children"].items() if "error" in child]
    med = lambda values: statistics.median(values) if values else float("nan")  # noqa: E731
    names = [*TASK_IMPORTS, "work"]
    print(f"\nper child, median of {args.repeat} (s):")
    print(f"{'child':<22}{'cold':>8}{'warm':>8}{'saved':>8}   imported by the warm child itself")
    for name in names:
        cold = med([r["children"][name]["seconds"] for r in runs["cold"] if "seconds" in r["children"][name]])
        warm = med([r["children"][name]["seconds"] for r in runs["warm"] if "seconds" in r["children"][name]])
        imported = sorted({m for r in runs["warm"] for m in r["children"][name].get("imported", [])})
        print(f"{name:<22}{cold:>8.2f}{warm:>8.2f}{cold - warm:>8.2f}   {', '.join(imported) or '-'}")
    pre = [r["preload"]["seconds"] for r in runs["warm"]]
    print(f"\nworker preload (once per worker, at scheduler start): median {med(pre):.2f} s; "
          f"failed imports: {runs['warm'][0]['preload']['failed'] or 'none'}")
    print(f"{'worker memory':<22}{'cold':>10}{'warm':>10}")
    for key in ("rss_mb", "pss_mb", "os_threads"):
        cold = med([r["after"][key] for r in runs["cold"]])
        warm = med([r["after"][key] for r in runs["warm"]])
        print(f"{key:<22}{cold:>10}{warm:>10}")
    print(f"python threads in a warm worker: {runs['warm'][0]['after']['py_threads']}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    for mode, name, error in errors:
        print(f"ERROR {mode} {name}: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
