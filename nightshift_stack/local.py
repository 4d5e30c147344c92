"""The embedded topology: Airflow's scheduler, dag-processor and api-server on the local SQLite
metadata database (LocalExecutor), as child processes, on 127.0.0.1.

``make demo`` runs its days through it: each day is a DAG run created through the REST API (run id
``nightly__<day>``, logical date = the day, the day in the run's note), queued and run by the
scheduler, the scoring DAG started by the scheduler from the day's Asset event. Task logs land in
``$AIRFLOW_HOME/logs``, where ``make ui`` finds them afterwards.

One embedded Airflow per ``AIRFLOW_HOME`` at a time (``make demo`` and ``make ui`` take the same
lock): two schedulers on one SQLite file would run each other's tasks, and the demo wipes the file.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from nightshift_stack.services import TASK_LATENCY_SETTINGS
from nightshift_stack.stack import free_port, stop_process_group

TERMINAL = ("success", "failed")

# The nights' Spark job runs on a Spark Connect server kept running next to the scheduler (the
# Airflow connection nightshift_spark_connect, nightshift.spark_jobs): no driver JVM start-up and
# no cold JIT per night. NIGHTSHIFT_SPARK_CONNECT=0: none, each night spark-submits its own driver.
SPARK_CONNECT_SWITCH = "NIGHTSHIFT_SPARK_CONNECT"
SPARK_CONNECT_CONN_ENV = "AIRFLOW_CONN_NIGHTSHIFT_SPARK_CONNECT"


def wants_spark_connect(env: dict[str, str]) -> bool:
    return env.get(SPARK_CONNECT_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def spark_connect_connection(port: int) -> str:
    """The Airflow connection (JSON, for ``AIRFLOW_CONN_NIGHTSHIFT_SPARK_CONNECT``) of a local server."""
    return json.dumps({"conn_type": "spark_connect", "host": "127.0.0.1", "port": port})


def start_spark_connect_server(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    """A Spark Connect server (local master, ``nightshift.spark.connect_server_command``) in its
    own process group, logging to ``log_path``; :func:`nightshift.spark.wait_for_connect_server`
    tells when it listens."""
    from nightshift.spark import connect_server_command

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(connect_server_command(port), env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop_spark_connect_server(proc: subprocess.Popen) -> None:
    """SIGTERM its process group, reap it (a zombie still counts in its group), SIGKILL what is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    stop_process_group(proc.pid, timeout_s=5)
    proc.wait()


class LocalAirflowError(RuntimeError):
    pass


class EmbeddedAirflowLock:
    """An exclusive lock on ``$AIRFLOW_HOME/embedded-airflow.lock`` for the lifetime of the process
    that starts Airflow on that home; the holder's description is written into the file."""

    def __init__(self, airflow_home: Path, holder: str):
        self.path = Path(airflow_home) / "embedded-airflow.lock"
        self.holder = holder
        self._fd: int | None = None

    def __enter__(self) -> "EmbeddedAirflowLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 500).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LocalAirflowError(
                f"Airflow is already running on {self.path.parent}: {other}. Stop it first "
                "(Ctrl-C in its terminal), the two would share one SQLite database.") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.holder} (pid {os.getpid()})\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


class LocalAirflow:
    """Start the components on ``env`` (from :func:`nightshift.localenv.local_environment`), talk
    to them through the REST API only, stop them on exit (also on Ctrl-C or an error). The caller
    holds the :class:`EmbeddedAirflowLock` of the Airflow home."""

    def __init__(self, env: dict[str, str], logs_dir: Path, port: int | None = None, start_timeout_s: float = 240):
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = dict(env)
        self.env.update({
            "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__API__WORKERS": "1",
            # a task's calls to the execution API give up after 5 s by default: too short on a busy
            # 2-core machine (the same setting as make stack)
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            # the DAG files do not change during a run of the demo: parse them once, not every 30 s
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "false",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        })
        # the gaps between a night's tasks (nightshift_stack.services.TASK_LATENCY_SETTINGS)
        for key, value in TASK_LATENCY_SETTINGS.items():
            self.env.setdefault(key, value)
        self.env.pop("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", None)
        self.spark_connect_port = free_port() if wants_spark_connect(self.env) else None
        if self.spark_connect_port:
            self.env[SPARK_CONNECT_CONN_ENV] = spark_connect_connection(self.spark_connect_port)
        self.home = Path(self.env["AIRFLOW_HOME"])
        self.logs_dir = Path(logs_dir)
        self.start_timeout_s = start_timeout_s
        self._procs: dict[str, subprocess.Popen] = {}
        self._token: str | None = None

    COMPONENTS = {
        "airflow-apiserver": ["airflow", "api-server"],
        "airflow-scheduler": ["airflow", "scheduler"],
        "airflow-dag-processor": ["airflow", "dag-processor"],
    }

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> "LocalAirflow":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def start(self) -> None:
        from nightshift.spark import wait_for_connect_server

        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if self.spark_connect_port:       # first: its JVM takes the longest to be ready
            self._procs["spark-connect"] = start_spark_connect_server(self.env, self.spark_connect_port,
                                                                      self.log_path("spark-connect"))
        for name, cmd in self.COMPONENTS.items():
            with open(self.log_path(name), "ab") as log:
                self._procs[name] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise LocalAirflowError(f"{name} exited during start-up (code {proc.returncode})\n"
                                            + self.tail(name))
            health = self._health()
            if health and all((health.get(k) or {}).get("status") == "healthy"
                              for k in ("metadatabase", "scheduler", "dag_processor")):
                break
            if time.monotonic() > deadline:
                raise LocalAirflowError(f"Airflow not healthy after {self.start_timeout_s:.0f}s: {health}\n"
                                        + "\n".join(self.tail(n) for n in self._procs))
            time.sleep(1)
        if self.spark_connect_port:
            try:
                wait_for_connect_server("127.0.0.1", self.spark_connect_port, self._procs["spark-connect"],
                                        timeout_s=max(10.0, deadline - time.monotonic()))
            except RuntimeError as exc:
                raise LocalAirflowError(f"{exc}\n" + self.tail("spark-connect")) from exc

    def stop(self) -> None:
        """SIGTERM each component's process group (the scheduler's task processes with it), then
        SIGKILL what is left."""
        for proc in self._procs.values():          # all at once: each may take seconds to stop
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self._procs.values():
            try:
                proc.wait(timeout=20)                   # reaps it (a zombie still counts in its group)
            except subprocess.TimeoutExpired:
                pass
            stop_process_group(proc.pid, timeout_s=5)   # whatever is left of its group, then SIGKILL
            proc.wait()
        self._procs.clear()

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log_path(name)
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(no log)"]
        return f"--- last {lines} lines of {path} ---\n" + "\n".join(text)

    # ---------------------------------------------------------------- REST API
    def _health(self) -> dict | None:
        import httpx

        try:
            r = httpx.get(self.base_url + "/api/v2/monitor/health", timeout=5)
        except httpx.TransportError:
            return None
        return r.json() if r.status_code == 200 else None

    def password(self) -> tuple[str, str]:
        """The admin login Airflow generated on its first start (SimpleAuthManager)."""
        path = self.home / "simple_auth_manager_passwords.json.generated"
        users = json.loads(path.read_text())
        user = next(iter(users))
        return user, users[user]

    def api(self, method: str, path: str, **kw):
        import httpx

        if self._token is None:
            user, password = self.password()
            r = httpx.post(self.base_url + "/auth/token", json={"username": user, "password": password}, timeout=30)
            if r.status_code not in (200, 201):
                raise LocalAirflowError(f"login as {user} refused: {r.status_code} {r.text[:300]}")
            self._token = r.json()["access_token"]
        for attempt in range(5):  # a busy API server on 2 cores: ask again
            try:
                return httpx.request(method, self.base_url + path, timeout=60,
                                     headers={"Authorization": f"Bearer {self._token}"}, **kw)
            except httpx.TransportError:
                if attempt == 4:
                    raise
                time.sleep(2)

    def _ok(self, r, what: str) -> dict:
        if r.status_code not in (200, 201):
            raise LocalAirflowError(f"{what}: HTTP {r.status_code} {r.text[:500]}")
        return r.json()

    def wait_for_dags(self, dag_ids: list[str], timeout_s: float = 180) -> None:
        """Until the dag-processor has parsed them; then unpause them."""
        deadline = time.monotonic() + timeout_s
        for dag_id in dag_ids:
            while self.api("GET", f"/api/v2/dags/{dag_id}").status_code != 200:
                if time.monotonic() > deadline:
                    errors = self.api("GET", "/api/v2/importErrors").text[:3000]
                    raise LocalAirflowError(f"{dag_id} not parsed after {timeout_s:.0f}s; import errors: {errors}\n"
                                            + self.tail("airflow-dag-processor"))
                time.sleep(1)
            self._ok(self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False}), f"unpause {dag_id}")

    def pause(self, dag_ids: list[str]) -> None:
        for dag_id in dag_ids:
            self._ok(self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": True}), f"pause {dag_id}")

    def trigger(self, dag_id: str, run_id: str, day: str, conf: dict, note: str) -> dict:
        """A run for ``day`` as the scheduler would create it: logical date and data interval start
        = the day, data interval end = the next midnight, runnable at once."""
        import datetime as dt

        start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
        end = start + dt.timedelta(days=1)
        body = {"dag_run_id": run_id, "logical_date": start.isoformat(), "data_interval_start": start.isoformat(),
                "data_interval_end": end.isoformat(), "run_after": end.isoformat(), "conf": conf, "note": note}
        return self._ok(self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body), f"trigger {dag_id} {run_id}")

    def runs(self, dag_id: str) -> list[dict]:
        r = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "run_after"})
        return self._ok(r, f"list runs of {dag_id}")["dag_runs"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self._ok(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"), f"run {run_id}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        r = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        out: dict[str, str] = {}
        for ti in self._ok(r, f"task instances of {run_id}")["task_instances"]:
            key = ti["task_id"] if ti.get("map_index", -1) < 0 else f"{ti['task_id']}[{ti['map_index']}]"
            out[key] = ti.get("state") or "none"
        return out

    def wait_run(self, dag_id: str, run_id: str, timeout_s: float, on_task_done=None) -> dict:
        """Until the run is in a terminal state; ``on_task_done(task, state)`` is called once per task
        that finishes (progress). Raises when the timeout passes or a component died."""
        deadline = time.monotonic() + timeout_s
        seen: dict[str, str] = {}
        while True:
            self._check_alive()
            run = self.run(dag_id, run_id)
            if on_task_done is not None:
                for task, state in self.task_states(dag_id, run_id).items():
                    if state in ("success", "failed", "skipped", "upstream_failed") and task not in seen:
                        seen[task] = state
                        on_task_done(task, state)
            if run["state"] in TERMINAL:
                return run
            if time.monotonic() > deadline:
                raise LocalAirflowError(f"{dag_id} {run_id} not done after {timeout_s:.0f}s (state {run['state']})\n"
                                        + self.tail("airflow-scheduler"))
            time.sleep(1)

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise LocalAirflowError(f"{name} stopped (code {proc.returncode})\n" + self.tail(name))


def interrupt_safe(fn):
    """Turn SIGTERM into KeyboardInterrupt, so that the context managers above stop the components."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    def wrapper(*a, **kw):
        previous = signal.signal(signal.SIGTERM, handler)
        try:
            return fn(*a, **kw)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper
