"""Task start-up stays light: what a task process imports before doing its own work.

Under the LocalExecutor every task is a new process that parses its DAG file, loads the plugins
folder (the task runner integrates the plugins' macros) and runs the callable, whose first lines
import ``nightshift`` modules and call ``TaskContext.load()``. None of that may import numpy,
pandas, scikit-learn or scipy (``nightshift_model``), nor FastAPI and Airflow's API security module
(the plugin's app): together they cost seconds per task (``bench/task_startup.py``). Code that
needs them imports them in the function that uses them.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

from nightshift.settings import PROJECT_ROOT

DAGS_DIR = PROJECT_ROOT / "dags"
# made lazy: the candidate kinds (nightshift.candidate_kinds) instead of nightshift_model in
# load_training_config and plan_training, numpy inside nightshift.gate's and nightshift.promotion's
# functions, the plugin's app built when the API server reads it
NOT_AT_START_UP = ("numpy", "pandas", "sklearn", "scipy", "nightshift_model", "fastapi",
                   "airflow.api_fastapi.core_api.security", "nightshift.web")


def _task_imports() -> list[str]:
    """Every import statement inside a function of a DAG file (the tasks' and the helpers')."""
    statements = []
    for path in sorted(DAGS_DIR.glob("*.py")):
        for function in ast.walk(ast.parse(path.read_text())):
            if isinstance(function, ast.FunctionDef):
                statements += [ast.unparse(n) for n in ast.walk(function) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return sorted(set(statements))


def test_parsing_plugins_task_imports_and_task_context_load_nothing_heavy(tmp_path):
    imports = _task_imports()
    assert "from nightshift.context import TaskContext" in imports
    probe = f"""
import json, runpy, sys
for path in {json.dumps([str(p) for p in sorted(DAGS_DIR.glob('*.py'))])}:
    runpy.run_path(path)
from airflow.sdk.plugins_manager import _get_plugins, integrate_macros_plugins
integrate_macros_plugins()
assert [p.name for p in _get_plugins()[0]] == ["nightshift"], _get_plugins()
exec({chr(10).join(imports)!r}, {{}})
from nightshift.context import TaskContext
TaskContext.load()
print(json.dumps(sorted(m for m in {NOT_AT_START_UP!r} if m in sys.modules)))
"""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"), "NIGHTSHIFT_DATA_ROOT": str(tmp_path / "lake"),
           "NIGHTSHIFT_CONFIG_DIR": str(PROJECT_ROOT / "config")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_light_candidate_kinds_are_nightshift_models():
    import nightshift_model
    from nightshift import candidate_kinds

    assert candidate_kinds.SUPERVISED_KINDS == nightshift_model.SUPERVISED_KINDS
    assert candidate_kinds.DETECTOR_KINDS == nightshift_model.DETECTOR_KINDS
