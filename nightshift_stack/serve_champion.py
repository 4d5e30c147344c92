"""Serve the champion online: MLflow's model server, restarted whenever the ``champion`` alias moves.

``python -m nightshift_stack.serve_champion --model log_anomaly_hdfs --host 127.0.0.1 --port 5001``

Every ``--poll`` seconds the alias is read from the registry (``MLFLOW_TRACKING_URI`` with
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``). When it points at another version,
the server of the old version is stopped and ``mlflow models serve -m models:/<model>/<version>
--env-manager local`` is started for the new one (no answers for the few seconds in between). ``<state-dir>/status.json`` tells
what is served: ``{"state": "waiting" | "starting" | "serving" | "registry unavailable", "version": ...}``.
Requests: ``POST /invocations`` with ``{"dataframe_records": [<model input row>]}``; the answer is
``{"predictions": [[P(normal), P(anomalous)]]}``, the same numbers as batch scoring's ``score``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

running = True


def _status(state_dir: Path, **fields) -> None:
    tmp = state_dir / "status.json.tmp"
    tmp.write_text(json.dumps({**fields, "time": time.time()}))
    tmp.replace(state_dir / "status.json")


def _champion_version(client, model: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model, "champion").version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _answers(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/ping", timeout=3) as r:
            return r.status == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5001)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--poll", type=float, default=float(os.environ.get("NIGHTSHIFT_SERVE_POLL_S", "5")))
    args = p.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)

    def _term(*_):
        global running
        running = False

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    from mlflow import MlflowClient

    client = MlflowClient()
    served, proc = None, None
    _status(args.state_dir, state="waiting", version=None, model=args.model)
    try:
        while running:
            try:
                version = _champion_version(client, args.model)
            except Exception as exc:  # registry down: keep serving what we have
                _status(args.state_dir, state="registry unavailable", version=served, model=args.model,
                        error=f"{exc.__class__.__name__}: {str(exc)[:300]}")
                time.sleep(args.poll)
                continue
            if version != served or (proc is not None and proc.poll() is not None):
                _stop(proc)
                proc, served = None, version
                if version is not None:
                    _status(args.state_dir, state="starting", version=version, model=args.model)
                    log = open(args.state_dir / f"serve-v{version}.log", "ab")
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{args.model}/{version}",
                         "--env-manager", "local", "--host", args.host, "--port", str(args.port), "--workers", "1"],
                        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
                    deadline = time.monotonic() + 180
                    while running and proc.poll() is None and time.monotonic() < deadline:
                        if _answers(args.host, args.port):
                            break
                        time.sleep(0.5)
                    ok = proc.poll() is None and _answers(args.host, args.port)
                    _status(args.state_dir, state="serving" if ok else "failed", version=version, model=args.model)
                    if not ok:
                        _stop(proc)
                        proc = None
                        served = None  # try again at the next poll
                else:
                    _status(args.state_dir, state="waiting", version=None, model=args.model)
            time.sleep(args.poll)
    finally:
        _stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
