"""Through the deployed topology (``make stack``), by its interfaces only: Airflow's REST API with a
token from ``POST /auth/token``, the scheduler, MLflow's REST API with credentials, the champion
model server. One stack for the module: its own state dir, ports, fresh Postgres databases with
unique names; every process is stopped at the end, also on failure.

The tests run in order and build on each other (a -> b/c -> d); the policy is made permissive
(negative margin, wide tolerances) so that every trained challenger passes the gate and each step
has a promotion to observe.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from nightshift_datagen.hdfs import Scenario, generate
from nightshift.settings import PROJECT_ROOT

# In `make test` (and alone: `make test-stack`, i.e. `pytest -m stack`); skipped, saying why, only
# when no PostgreSQL server is reachable as superuser (the stack creates its databases there).
pytestmark = [pytest.mark.stack, pytest.mark.e2e]

# the public default login of Airflow/MLflow images: must be refused by the stack
PUBLIC_DEFAULT_LOGIN = ("admin", "admin")
MODEL = "log_anomaly_hdfs"
TODAY = dt.datetime.now(dt.timezone.utc).date()
DAYS = [(TODAY - dt.timedelta(days=n)).isoformat() for n in (3, 2, 1)]
SCENARIO = Scenario(start_day=DAYS[0], days=3, seed=3, blocks_per_day=300, anomaly_rate=0.06)
DEADLINE_S = 20
PERMISSIVE = {"margin": -1.0, "backtest_tolerance": 1.0, "slice_tolerance": 1.0, "mode": "auto",
              "bootstrap_resamples": 200}
# A small training config for the test: two quick candidates, base parameters only (no search).
TRAINING = {"tuning": {"budget_s": 0, "max_configs": 1},
            "candidates": [{"name": "baseline_logreg", "kind": "logistic_regression", "params": {"C": 1.0, "max_iter": 1000}},
                           {"name": "decision_tree", "kind": "decision_tree", "params": {"max_depth": 8, "min_samples_leaf": 2}}]}
# Test-only deployment settings (the stack and the DAGs are the same otherwise):
# - the Spark tasks run in local[2] inside the task process instead of on the standalone worker (an
#   executor JVM per application on top of the driver's, one core each, on a 2-core machine); the
#   master and worker still start and must be healthy (test_spark_cluster_is_up);
# - the test Spark JVM settings (tests/conftest.py FAST_JVM_OPTS) for the drivers and the daemons;
# - the dag-processor re-parses files every 10 minutes instead of 30 s (the DAGs do not change);
# - a cluster policy shortens promote_champion's retry delay (1 min, exponential: 1-2 min) to 15 s;
# - the nightly run's deadline is DEADLINE_S after it was queued instead of 6 h, so that the
#   triggerer's deadline callback fires for real (each night takes longer) and raises its alert;
# - MLflow's client retries a refused connection twice instead of 7 times (backoff 2 s doubling to
#   2 min: about 4 min before a task with the server down fails and Airflow's own retry takes over).
# The waits' timeouts are guards against a hung run, sized for a 2-core machine that other work
# shares (a night took 4-6 min at load 14), not the expected times.
TEST_POLICY = """from datetime import timedelta


def task_policy(task):
    if task.dag_id == "nightshift_nightly" and task.task_id == "promote_champion":
        task.retry_delay = timedelta(seconds=15)
"""


def _pg_available() -> bool:
    try:
        import psycopg2

        psycopg2.connect(os.environ.get("NIGHTSHIFT_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                         connect_timeout=3).close()
        return True
    except Exception:
        return False


class Stack:
    def __init__(self, base: Path, env: dict[str, str]):
        self.base, self.env = base, env
        self.state = base / "state"
        self.lake = Path(env["NIGHTSHIFT_DATA_ROOT"])

    # ---------------------------------------------------------------- plumbing
    def cli(self, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nightshift_stack", *args], env=self.env, cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=timeout)

    @property
    def cfg(self) -> dict:
        return json.loads((self.state / "stack.json").read_text())

    @property
    def secrets(self) -> dict[str, str]:
        from nightshift_stack.stack import read_env_file

        return read_env_file(self.state / ".env")

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.cfg['ports'][service + '_port']}"

    _token: str | None = None

    def token(self) -> str:
        import httpx

        if self._token:
            return self._token
        s = self.secrets
        r = httpx.post(self.url("airflow") + "/auth/token",
                       json={"username": s["AIRFLOW_ADMIN_USER"], "password": s["AIRFLOW_ADMIN_PASSWORD"]})
        assert r.status_code in (200, 201), r.text
        self._token = r.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kw):
        import httpx

        headers = {"Authorization": f"Bearer {self.token()}", **kw.pop("headers", {})}
        r = httpx.request(method, self.url("airflow") + path, headers=headers, timeout=90, **kw)
        return r

    def mlflow(self, path: str, **params):
        import httpx

        s = self.secrets
        return httpx.get(self.url("mlflow") + path, params=params, timeout=30,
                         auth=(s["MLFLOW_ADMIN_USER"], s["MLFLOW_ADMIN_PASSWORD"]))

    def champion(self) -> str | None:
        r = self.mlflow("/api/2.0/mlflow/registered-models/alias", name=MODEL, alias="champion")
        if r.status_code != 200:
            return None
        return r.json()["model_version"]["version"]

    def log(self) -> list[dict]:
        r = self.api("GET", f"/nightshift/promotions/{MODEL}.json")
        return r.json() if r.status_code == 200 else []

    def runs(self, dag_id: str) -> list[dict]:
        r = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "run_after"})
        assert r.status_code == 200, r.text
        return r.json()["dag_runs"]

    def ti(self, dag_id: str, run_id: str, task_id: str) -> dict:
        r = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        return r.json() if r.status_code == 200 else {}

    def tails(self) -> str:
        from nightshift_stack.stack import log_tail

        return "\n".join(log_tail(self.state, n, 15) for n in ("airflow-scheduler", "mlflow", "model-server"))

    def wait(self, predicate, seconds: float, what: str):
        deadline = time.monotonic() + seconds
        import httpx

        while time.monotonic() < deadline:
            try:
                value = predicate()
            except httpx.TransportError:  # a busy API server on 2 cores: ask again
                value = None
            if value:
                return value
            time.sleep(2)
        raise AssertionError(f"timed out after {seconds}s waiting for {what}\n{self.tails()}")

    def serving(self) -> dict:
        path = self.state / "serve" / "status.json"
        return json.loads(path.read_text()) if path.exists() else {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, spark_conf_dir):
    if not _pg_available():
        pytest.skip("no PostgreSQL reachable as superuser at 127.0.0.1:5432 (NIGHTSHIFT_PG_ADMIN_URL)")
    base = tmp_path_factory.mktemp("stack")
    lake, config = base / "lake", base / "config"
    generate(lake, SCENARIO)
    shutil.copytree(PROJECT_ROOT / "config", config)
    policy = yaml.safe_load((config / "promotion.yaml").read_text())
    policy.update(PERMISSIVE)
    (config / "promotion.yaml").write_text(yaml.safe_dump(policy))
    training = yaml.safe_load((config / "training.yaml").read_text())
    training.update(TRAINING)
    (config / "training.yaml").write_text(yaml.safe_dump(training))
    from tests.conftest import FAST_JVM_OPTS

    (base / "state" / "airflow" / "config").mkdir(parents=True)
    (base / "state" / "airflow" / "config" / "airflow_local_settings.py").write_text(TEST_POLICY)
    prefix = f"nstest_{uuid.uuid4().hex[:8]}_"
    env = dict(os.environ, NIGHTSHIFT_STACK_DIR=str(base / "state"), NIGHTSHIFT_STACK_ENV_FILE=str(base / "state" / ".env"),
               NIGHTSHIFT_STACK_PORTS="auto", NIGHTSHIFT_STACK_DB_PREFIX=prefix, NIGHTSHIFT_DATA_ROOT=str(lake),
               NIGHTSHIFT_CONFIG_DIR=str(config), NIGHTSHIFT_START_DATE=DAYS[0], NIGHTSHIFT_CATCHUP="true",
               NIGHTSHIFT_SERVE_POLL_S="2", NIGHTSHIFT_STACK_SPARK_MASTER="local[2]",
               NIGHTSHIFT_STACK_SPARK_DEFAULTS=str(spark_conf_dir / "spark-defaults.conf"),
               SPARK_DAEMON_JAVA_OPTS=FAST_JVM_OPTS, AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="600",
               MLFLOW_HTTP_REQUEST_MAX_RETRIES="2", NIGHTSHIFT_NIGHT_DEADLINE_HOURS=str(DEADLINE_S / 3600))
    s = Stack(base, env)
    # roles of their own too, so that a test never changes the passwords of a developer's stack
    from nightshift_stack.stack import write_secrets

    path = write_secrets(base / "state" / ".env")
    text = path.read_text().replace("=nightshift_airflow", f"={prefix}airflow").replace("=nightshift_mlflow", f"={prefix}mlflow")
    path.write_text(text)
    started = time.monotonic()
    try:
        up = s.cli("up", timeout=420)
        print(f"stack up in {time.monotonic() - started:.0f}s\n{up.stdout[-3000:]}")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-5000:]
        yield s
    finally:
        s.cli("down", timeout=120)
        import psycopg2

        conn = psycopg2.connect(os.environ.get("NIGHTSHIFT_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
        conn.autocommit = True
        with conn.cursor() as cur:
            for db in ("airflow", "mlflow", "mlflow_auth"):
                cur.execute(f'DROP DATABASE IF EXISTS "{prefix}{db}" WITH (FORCE)')
            for role in ("airflow", "mlflow"):
                cur.execute(f'DROP ROLE IF EXISTS "{prefix}{role}"')
        conn.close()


# ------------------------------------------------------------------------------------------ e


def test_unauthenticated_requests_are_refused(stack):
    import httpx

    airflow, mlflow = stack.url("airflow"), stack.url("mlflow")
    for path in ["/api/v2/dags", "/nightshift/promotions", "/nightshift/promotions.json", "/nightshift/problems.json",
                 f"/nightshift/promotions/{MODEL}.json", "/nightshift/view", "/nightshift/nights/hdfs.json",
                 "/nightshift/rollback/hdfs", "/nightshift/runs/nightshift_nightly/x", "/nightshift/datadocs/site/index.html"]:
        assert httpx.get(airflow + path).status_code == 401, path
        assert httpx.get(airflow + path, headers={"Authorization": "Bearer not-a-token"}).status_code in (401, 403), path
    user, password = PUBLIC_DEFAULT_LOGIN
    assert httpx.post(airflow + "/auth/token", json={"username": user, "password": password}).status_code == 401
    for path in ["/", "/api/2.0/mlflow/registered-models/search", "/api/2.0/mlflow/experiments/search?max_results=1"]:
        assert httpx.get(mlflow + path).status_code == 401, path
    assert httpx.get(mlflow + "/api/2.0/mlflow/registered-models/search", auth=PUBLIC_DEFAULT_LOGIN).status_code == 401
    # with the credentials it answers
    assert stack.mlflow("/api/2.0/mlflow/registered-models/search").status_code == 200
    assert stack.api("GET", "/nightshift/promotions.json").status_code == 200


def test_spark_cluster_is_up(stack):
    """The standalone master and its worker run and the worker is registered with all its cores
    (the test's Spark tasks run in local[2]: see the module's settings above)."""
    import httpx

    state = httpx.get(stack.url("spark_ui") + "/json/", timeout=30).json()
    assert state["status"] == "ALIVE", state
    workers = [w for w in state["workers"] if w["state"] == "ALIVE"]
    assert len(workers) == 1 and workers[0]["cores"] == 2, state["workers"]


def _night_line(stack, day: str) -> str:
    report = json.loads((stack.lake / "reports" / "source=hdfs" / f"dt={day}" / "night.json").read_text())
    from nightshift.night import describe

    return describe(report)


# ------------------------------------------------------------------------------------------ a


def test_scheduler_runs_the_past_days_and_scoring_follows(stack):
    for dag_id in ("nightshift_nightly", "nightshift_scoring"):
        stack.wait(lambda: stack.api("GET", f"/api/v2/dags/{dag_id}").status_code == 200, 120, f"{dag_id} parsed")
        r = stack.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        assert r.status_code == 200, r.text

    def nightly_done():
        # (a run that starts after midnight UTC adds today's interval: only the generated days count)
        runs = [r for r in stack.runs("nightshift_nightly")
                if r["run_type"] == "scheduled" and (r["data_interval_start"] or "")[:10] in DAYS]
        return runs if len(runs) == 3 and all(r["state"] in ("success", "failed") for r in runs) else None

    runs = stack.wait(nightly_done, 1800, "the three scheduled nightly runs")
    by_day = {r["data_interval_start"][:10]: r for r in runs}
    for day in DAYS:
        print(f"night {day}: {_night_line(stack, day)}")
    assert sorted(by_day) == DAYS
    assert {d: r["state"] for d, r in by_day.items()} == {d: "success" for d in DAYS}
    # day 1: not enough labelled history; day 2: first champion (v1); day 3: the challenger wins (v2)
    assert stack.ti("nightshift_nightly", by_day[DAYS[0]]["dag_run_id"], "plan_training")["state"] == "skipped"
    assert stack.champion() == "2"
    log = stack.log()
    assert [(e["action"], e["to_version"], e["day"]) for e in log] == [("promote", "1", DAYS[1]), ("promote", "2", DAYS[2])]
    assert all(e["decided_by"].startswith("airflow:scheduled__") for e in log)
    # the deadline (DEADLINE_S after a run was queued, shorter than any night) fired through the
    # triggerer: a night_deadline alert per scheduled run, in the lake's alert log
    def deadline_alerts():
        path = stack.lake / "alerts" / "alerts.jsonl"
        alerts = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
        runs = {a["details"]["run_id"] for a in alerts if a["kind"] == "night_deadline"}
        return runs if {r["dag_run_id"] for r in by_day.values()} <= runs else None

    stack.wait(deadline_alerts, 120, "a night_deadline alert for each scheduled night")

    # each validated day's Asset event ran the scoring DAG; day 3 was scored by v1 (v2 came later that run)
    def scored():
        runs = stack.runs("nightshift_scoring")
        return runs if runs and all(r["state"] in ("success", "failed") for r in runs) and \
            (stack.lake / "predictions" / "source=hdfs" / f"dt={DAYS[2]}").exists() else None

    stack.wait(scored, 900, "scoring of the validated days")
    import pandas as pd

    preds = pd.read_parquet(stack.lake / "predictions" / "source=hdfs" / f"dt={DAYS[2]}")
    assert len(preds) > 0 and set(preds["model_version"]) == {1}
    stack.wait(lambda: stack.serving().get("state") == "serving" and stack.serving().get("version") == "2", 400,
               "the model server on v2")


# ------------------------------------------------------------------------------------------ b + c


def test_manual_trigger_approval_as_the_user_and_promotion_with_mlflow_down(stack):
    r = stack.api("POST", "/api/v2/dags/nightshift_nightly/dagRuns",
                  json={"logical_date": None, "conf": {"day": DAYS[2], "source": "hdfs", "mode": "manual"}})
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    # Airflow 3.3 parks a human-in-the-loop task in its own state, awaiting_input (was deferred)
    stack.wait(lambda: stack.ti("nightshift_nightly", run_id, "await_approval").get("state")
               in ("awaiting_input", "deferred"), 1200,
               "the approval request")
    assert stack.champion() == "2" and len(stack.log()) == 2  # nothing moves while it waits
    # Airflow 3.3 race: the task process that parked the task reports "success" to the executor
    # when it exits; if the approval re-queues the task before the scheduler has handled that
    # event, the scheduler takes it for an external state change and fails the task (seen at
    # 5 s). A person answers minutes later; the test waits a few scheduler loops first.
    time.sleep(15)

    stopped = stack.cli("stop", "mlflow")
    assert stopped.returncode == 0, stopped.stderr
    try:
        r = stack.api("PATCH", f"/api/v2/dags/nightshift_nightly/dagRuns/{run_id}/taskInstances/await_approval/-1/hitlDetails",
                      json={"chosen_options": ["Approve"], "params_input": {}})
        assert r.status_code == 200, r.text
        stack.wait(lambda: stack.ti("nightshift_nightly", run_id, "promote_champion").get("state") == "up_for_retry",
                   600, "promote_champion to fail while MLflow is down")
        r = stack.api("GET", f"/api/v2/dags/nightshift_nightly/dagRuns/{run_id}/taskInstances/promote_champion/logs/1",
                      params={"full_content": True})
        assert r.status_code == 200, r.text
        log1 = json.dumps(r.json().get("content"))   # structured log events
        assert "RegistryUnavailable" in log1 and "unavailable while trying to" in log1, log1[-3000:]
        assert len(stack.log()) == 2
    finally:
        started = stack.cli("start", "mlflow")
        assert started.returncode == 0, started.stdout + started.stderr
    assert stack.champion() == "2"  # unchanged until the retry
    stack.wait(lambda: stack.runs("nightshift_nightly") and
               next(x for x in stack.runs("nightshift_nightly") if x["dag_run_id"] == run_id)["state"] in ("success", "failed"),
               600, "the retry of promote_champion")
    run = next(x for x in stack.runs("nightshift_nightly") if x["dag_run_id"] == run_id)
    assert run["state"] == "success"
    assert stack.champion() == "3"
    log = stack.log()
    assert len(log) == 3 and [e["to_version"] for e in log].count("3") == 1
    user = stack.secrets["AIRFLOW_ADMIN_USER"]
    assert (log[-1]["action"], log[-1]["decided_by"]) == ("promote", f"airflow-user:{user}")


# ------------------------------------------------------------------------------------------ d


def test_online_model_serves_the_new_champion_like_batch_scoring(stack):
    import httpx
    import pandas as pd

    from nightshift_model import to_model_input

    stack.wait(lambda: stack.serving().get("state") == "serving" and stack.serving().get("version") == "3", 400,
               "the model server on v3 after the promotion")
    r = stack.api("POST", "/api/v2/dags/nightshift_scoring/dagRuns",
                  json={"logical_date": None, "conf": {"day": DAYS[2], "source": "hdfs"}})
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    stack.wait(lambda: next((x for x in stack.runs("nightshift_scoring") if x["dag_run_id"] == run_id), {}).get("state")
               in ("success", "failed"), 900, "the scoring run")
    preds = pd.read_parquet(stack.lake / "predictions" / "source=hdfs" / f"dt={DAYS[2]}")
    assert set(preds["model_version"]) == {3}
    features = pd.read_parquet(stack.lake / "features" / "source=hdfs" / f"dt={DAYS[2]}")
    rows = to_model_input(features.head(5))
    payload = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    answer = httpx.post(stack.url("model") + "/invocations", json=payload, timeout=60)
    assert answer.status_code == 200, answer.text
    online = [p[1] for p in answer.json()["predictions"]]
    batch = preds.set_index("session_id").loc[features.head(5)["session_id"], "score"].tolist()
    assert online == pytest.approx(batch, abs=1e-9)


# ------------------------------------------------------------------------------------------ 3


def test_backfill_while_a_manual_run_promotes_one_promotion_at_a_time(stack):
    """A backfill of the first day (REST API) while a manual run retrains the third: the
    runs meet (one backfilled day is enough for that; two cost another night, ~100-150 s), the promotions are serialised (each log entry moves the alias from where the
    previous one left it), the registry agrees with the log, nothing is lost."""
    before, champion = stack.log(), stack.champion()
    r = stack.api("POST", "/api/v2/backfills",
                  json={"dag_id": "nightshift_nightly", "from_date": f"{DAYS[0]}T00:00:00Z",
                        "to_date": f"{DAYS[0]}T00:00:00Z", "reprocess_behavior": "completed", "max_active_runs": 1})
    assert r.status_code == 200, r.text
    backfill_id = r.json()["id"]
    r = stack.api("POST", "/api/v2/dags/nightshift_nightly/dagRuns",
                  json={"logical_date": None, "conf": {"day": DAYS[2], "source": "hdfs", "mode": "auto"}})
    assert r.status_code == 200, r.text
    manual_id = r.json()["dag_run_id"]

    def all_done():
        backfill = stack.api("GET", f"/api/v2/backfills/{backfill_id}").json()
        runs = stack.runs("nightshift_nightly")
        return runs if backfill.get("completed_at") and all(x["state"] in ("success", "failed") for x in runs) else None

    runs = stack.wait(all_done, 2400, "the backfill and the manual run")
    for day in DAYS:
        print(f"night {day}: {_night_line(stack, day)}")
    assert next(x for x in runs if x["dag_run_id"] == manual_id)["state"] in ("success", "failed")
    print("runs:", [(x["dag_run_id"], x["run_type"], x["state"]) for x in runs])
    log = stack.log()
    new = log[len(before):]
    assert log[:len(before)] == before          # nothing rewritten
    assert new, "no promotion"
    chain = [champion] + [e["to_version"] for e in new]
    assert [e["from_version"] for e in new] == chain[:-1], new   # one at a time: no lost update
    assert stack.champion() == chain[-1]
    # a run that did not succeed was refused by the compare-and-swap, not lost half-way
    for run in runs:
        if run["state"] != "success":
            ti = stack.ti("nightshift_nightly", run["dag_run_id"], "promote_champion")
            assert ti.get("state") == "failed", (run, ti)
