"""Per-task start-up cost: parsing a DAG file and importing what its tasks import.

    .venv/bin/python bench/task_startup.py [--repo DIR] [--repeat 5] [--json PATH]

Two tables, each figure the median of ``--repeat`` runs:

1. **DAG modules**, one fresh ``python -c`` process per run (as a fresh interpreter, e.g. a DAG
   processor, sees them): the process's wall time, the time to import Airflow's task runner, then
   the time to run the DAG file on top of it, and the heavy modules loaded by the end.
2. **Tasks**: what one task process of the LocalExecutor pays before its own work. On Linux the
   executor's worker, which has imported Airflow's task runner, forks a child per task; the child
   parses the DAG file, loads the plugins folder (``get_template_context`` integrates the plugins'
   macros) and runs the callable. Here one parent process imports the task runner and forks a child
   per run and task, which times the same three steps: the DAG file (``runpy``), the plugins
   (``integrate_macros_plugins``) and the callable's imports, read from the DAG file's source (the
   task function's own ``import`` statements and those of the module-level helpers it calls) plus
   ``TaskContext.load()`` when the function calls it. Nothing else of the task runs, so these are
   the import costs a task pays whatever its work (a task like ``train_candidate`` imports mlflow
   and scikit-learn later, inside ``nightshift.training``).

``--repo`` measures another checkout with this venv (``PYTHONPATH``, plugins folder and DAG files
of that checkout), e.g. the commit before a change::

    git worktree add /tmp/ts-before <commit>
    .venv/bin/python bench/task_startup.py --repo /tmp/ts-before
    git worktree remove /tmp/ts-before

Airflow runs with a throwaway ``AIRFLOW_HOME`` and lake; nothing is written to the checkout.
Wall times move with the load of the machine (printed): compare runs made one after the other.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# modules whose presence in sys.modules is reported (the costly ones a light task does not need)
HEAVY = ("numpy", "pandas", "pyarrow", "scipy", "sklearn", "nightshift_model", "mlflow", "pyspark",
         "great_expectations", "fastapi", "airflow.api_fastapi.core_api.security")
# what the LocalExecutor's worker process has imported before it forks a task
TASK_RUNNER_IMPORTS = ("import airflow.sdk.execution_time.task_runner, airflow.sdk.execution_time.supervisor, "
                       "airflow.executors.local_executor")

DAG_PROBE = f"""
import json, runpy, sys, time
t0 = time.perf_counter()
{TASK_RUNNER_IMPORTS}
t1 = time.perf_counter()
runpy.run_path(sys.argv[1])
t2 = time.perf_counter()
import nightshift
print(json.dumps({{"airflow_s": t1 - t0, "dag_s": t2 - t1, "heavy": [m for m in {HEAVY!r} if m in sys.modules],
                  "nightshift": nightshift.__file__}}))
"""

TASK_PROBE = f"""
import json, os, runpy, sys, time
{TASK_RUNNER_IMPORTS}
specs, repeat = json.loads(sys.argv[1]), int(sys.argv[2])
for spec in specs:
    for _ in range(repeat):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            try:
                t0 = time.perf_counter()
                runpy.run_path(spec["path"])
                t1 = time.perf_counter()
                from airflow.sdk.plugins_manager import integrate_macros_plugins
                integrate_macros_plugins()
                t2 = time.perf_counter()
                exec("\\n".join(spec["imports"]), {{}})
                if spec["context"]:
                    from nightshift.context import TaskContext
                    TaskContext.load()
                t3 = time.perf_counter()
                out = {{"dag_s": t1 - t0, "plugins_s": t2 - t1, "task_s": t3 - t2,
                       "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}
            except BaseException as exc:
                out = {{"error": f"{{type(exc).__name__}}: {{exc}}"}}
            os.write(write_end, json.dumps(out).encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            result = pipe.read()
        os.waitpid(pid, 0)
        print(json.dumps({{"dag": spec["dag"], "task": spec["task"], **json.loads(result)}}), flush=True)
"""

_TASK_DECORATOR = re.compile(r"^task(\.\w+)?(\(|$)")


def task_specs(dag_path: Path) -> list[dict]:
    """Each task function of a DAG file: its imports (and its module-level helpers' imports), and
    whether it calls ``TaskContext.load()``."""
    tree = ast.parse(dag_path.read_text())
    helpers = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    specs = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.FunctionDef)
                and any(_TASK_DECORATOR.match(ast.unparse(d)) for d in node.decorator_list)):
            continue
        called = {c.func.id for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
        bodies = [node, *(helpers[name] for name in sorted(called) if name in helpers)]
        nodes = [n for body in bodies for n in ast.walk(body)]
        specs.append({
            "dag": dag_path.stem, "task": node.name, "path": str(dag_path),
            "imports": [ast.unparse(n) for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom))],
            "context": any(isinstance(n, ast.Attribute) and n.attr == "load" and isinstance(n.value, ast.Name)
                           and n.value.id == "TaskContext" for n in nodes),
        })
    return specs


def environment(repo: Path, scratch: Path) -> dict[str, str]:
    """The probes' environment; they also run in ``repo`` (``python -c`` puts the working directory
    first on ``sys.path``, before ``PYTHONPATH``)."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "AIRFLOW_HOME": str(scratch / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo / "plugins"),
        "NIGHTSHIFT_DATA_ROOT": str(scratch / "lake"),
        "NIGHTSHIFT_CONFIG_DIR": str(repo / "config"),
        "NIGHTSHIFT_SOURCES_DIR": str(repo / "sources"),
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def _last_json(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def measure_dag_modules(repo: Path, dag_files: list[Path], repeat: int, env: dict[str, str]) -> list[dict]:
    rows = []
    for path in dag_files:
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", DAG_PROBE, str(path)], env=env, cwd=repo,
                                 capture_output=True, text=True, timeout=300)
            wall = time.perf_counter() - start
            if out.returncode != 0:
                raise SystemExit(f"{path.name}: the probe failed:\n{out.stderr[-3000:]}")
            runs.append({**_last_json(out.stdout), "wall_s": wall})
            if not Path(runs[-1]["nightshift"]).is_relative_to(repo):
                raise SystemExit(f"the probe imported {runs[-1]['nightshift']}, not {repo}'s nightshift")
        rows.append({"dag": path.stem, **{k: statistics.median(r[k] for r in runs) for k in ("wall_s", "airflow_s", "dag_s")},
                     "heavy": runs[-1]["heavy"]})
    return rows


def measure_tasks(repo: Path, specs: list[dict], repeat: int, env: dict[str, str]) -> list[dict]:
    out = subprocess.run([sys.executable, "-c", TASK_PROBE, json.dumps(specs), str(repeat)], env=env,
                         cwd=repo, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"the task probe failed:\n{out.stderr[-3000:]}")
    runs: dict[tuple[str, str], list[dict]] = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            run = json.loads(line)
            runs.setdefault((run["dag"], run["task"]), []).append(run)
    rows = []
    for spec in specs:
        done = runs.get((spec["dag"], spec["task"]), [])
        errors = [r["error"] for r in done if "error" in r]
        if errors or not done:
            rows.append({"dag": spec["dag"], "task": spec["task"], "error": errors[0] if errors else "no result"})
            continue
        row = {"dag": spec["dag"], "task": spec["task"], "context": spec["context"],
               **{k: statistics.median(r[k] for r in done) for k in ("dag_s", "plugins_s", "task_s")},
               "heavy": done[-1]["heavy"]}
        row["total_s"] = row["dag_s"] + row["plugins_s"] + row["task_s"]
        rows.append(row)
    return rows


def _short(heavy: list[str]) -> str:
    return ", ".join(m.replace("airflow.api_fastapi.core_api.security", "airflow api security") for m in heavy) or "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=PROJECT_ROOT, help="checkout to measure (default: this one)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (the median is printed)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "dags", "nightshift", "plugins"],
                           capture_output=True, text=True).stdout.strip()
    dag_files = sorted((repo / "dags").glob("*.py"))
    print(f"checkout {repo} at {commit}{' (+ uncommitted changes)' if dirty else ''}; median of {args.repeat}; "
          f"1-min load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="nightshift-task-startup-") as scratch:
        env = environment(repo, Path(scratch))
        dag_rows = measure_dag_modules(repo, dag_files, args.repeat, env)
        print("\nDAG modules, fresh `python -c` per run:")
        print(f"  {'DAG file':24s} {'process s':>9s} {'Airflow s':>9s} {'DAG file s':>10s}  heavy modules loaded")
        for r in dag_rows:
            print(f"  {r['dag']:24s} {r['wall_s']:9.2f} {r['airflow_s']:9.2f} {r['dag_s']:10.3f}  {_short(r['heavy'])}")

        specs = [spec for path in dag_files for spec in task_specs(path)]
        task_rows = measure_tasks(repo, specs, args.repeat, env)
        print("\nTasks, forked from a process that imported Airflow's task runner (the LocalExecutor's way):")
        print(f"  {'DAG':22s} {'task':26s} {'DAG file s':>10s} {'plugins s':>9s} {'imports s':>9s} {'total s':>8s}"
              "  heavy modules loaded")
        for r in task_rows:
            if "error" in r:
                print(f"  {r['dag']:22s} {r['task']:26s} error: {r['error']}")
                continue
            print(f"  {r['dag']:22s} {r['task']:26s} {r['dag_s']:10.3f} {r['plugins_s']:9.3f} {r['task_s']:9.3f}"
                  f" {r['total_s']:8.3f}  {_short(r['heavy'])}")
        ok = [r for r in task_rows if "error" not in r]
        if ok:
            worst = max(ok, key=lambda r: r["task_s"])
            print(f"\nheaviest task imports: {worst['dag']}.{worst['task']} {worst['task_s']:.3f} s; "
                  f"start-up summed over the tasks of nightshift_nightly (each once): "
                  f"{sum(r['total_s'] for r in ok if r['dag'] == 'nightshift_nightly'):.2f} s")
    if args.json:
        args.json.write_text(json.dumps({"repo": str(repo), "commit": commit, "repeat": args.repeat,
                                         "dag_modules": dag_rows, "tasks": task_rows}, indent=2))
    return 1 if any("error" in r for r in task_rows) else 0


if __name__ == "__main__":
    sys.exit(main())
