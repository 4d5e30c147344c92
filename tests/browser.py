"""Helpers for the browser tests: the Airflow api-server and the MLflow server started as real
processes on free local ports, and headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
installed by ``.ci/run`` when absent) driven by Selenium. Screenshots go to ``test-artifacts/``
(``NIGHTSHIFT_TEST_ARTIFACTS`` to put them elsewhere), which is kept out of git."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from nightshift.settings import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
HAVE_BROWSER = bool(CHROMIUM and CHROMEDRIVER)


def artifacts_dir(name: str) -> Path:
    base = Path(os.environ.get("NIGHTSHIFT_TEST_ARTIFACTS") or PROJECT_ROOT / "test-artifacts")
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _wait_up(url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if status(url) < 500:
                return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} not up after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def servers(env: dict[str, str], logs: Path, timeout_s: float = 240):
    """The Airflow api-server (login required: users ``operator`` (admin) and ``viewer``) and an
    MLflow server on the same stores as ``env``; yields their URLs and the users' passwords."""
    logs.mkdir(parents=True, exist_ok=True)
    airflow_port, mlflow_port = free_port(), free_port()
    passwords = {"operator": secrets.token_urlsafe(12), "viewer": secrets.token_urlsafe(12)}
    password_file = Path(env["AIRFLOW_HOME"]) / "test_passwords.json"
    password_file.write_text(json.dumps(passwords))
    airflow_url, mlflow_url = f"http://127.0.0.1:{airflow_port}", f"http://127.0.0.1:{mlflow_port}"
    env = {**env, "AIRFLOW__API__BASE_URL": airflow_url, "NIGHTSHIFT_MLFLOW_UI_URL": mlflow_url,
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "operator:admin,viewer:viewer",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file)}
    env.pop("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", None)
    data_root = Path(env["NIGHTSHIFT_DATA_ROOT"])
    commands = {
        "api-server": [str(Path(sys.executable).parent / "airflow"), "api-server", "--host", "127.0.0.1",
                       "--port", str(airflow_port)],
        "mlflow": [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", env["MLFLOW_TRACKING_URI"],
                   "--default-artifact-root", (data_root / "mlflow" / "artifacts").as_uri(),
                   "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"],
    }
    processes = {}
    try:
        for name, command in commands.items():
            log = open(logs / f"{name}.log", "wb")
            processes[name] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True)
        _wait_up(f"{airflow_url}/api/v2/monitor/health", processes["api-server"], logs / "api-server.log", timeout_s)
        _wait_up(f"{mlflow_url}/health", processes["mlflow"], logs / "mlflow.log", timeout_s)
        yield {"airflow": airflow_url, "mlflow": mlflow_url, "passwords": passwords, "env": env}
    finally:
        for process in processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)


@contextlib.contextmanager
def chromium(window: str = "1400,1000"):
    """A headless Chromium session (Selenium)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", f"--window-size={window}"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, timeout_s: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s).until(condition)


def log_in(driver, airflow_url: str, user: str, password: str) -> None:
    """Through Airflow's own login form (the simple auth manager's page)."""
    from selenium.webdriver.common.by import By

    driver.get(f"{airflow_url}/auth/login?next=%2F")
    wait_for(driver, lambda d: d.find_elements(By.NAME, "username"))
    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, lambda d: any(c["name"] == "_token" for c in d.get_cookies()))
