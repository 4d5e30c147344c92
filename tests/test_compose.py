"""Mechanical checks of docker-compose.yaml and the images it builds.

No Docker engine is needed: the file is read with PyYAML and cross-checked against the Dockerfiles,
requirements.txt, nightshift/settings.py and docker/postgres-init.sql. One test also runs
``docker compose config -q`` when Docker Compose v2 is installed, and is skipped otherwise.

These checks catch wiring mistakes (a typo in a service name, a mismatched pin, a secret that
differs between Airflow components); they do not prove that the stack starts.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yaml"

AIRFLOW_SERVICES = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]
SPARK_SERVICES = ["spark-master", "spark-worker"]
EXPECTED_SERVICES = {"postgres", "mlflow", "model-server", *AIRFLOW_SERVICES, *SPARK_SERVICES}
REPO_DIRS = ["dags", "plugins", "jobs", "sources", "config", "expectations"]
LAKE_PATH = "/opt/nightshift/data"

# ${NAME}, ${NAME:-default}, ${NAME-default}; "$${...}" is an escaped literal "$" for the container.
INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yaml must be a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _requirements() -> dict[str, Requirement]:
    reqs = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            reqs[req.name.lower()] = req
    return reqs


def _pin(name: str) -> str:
    spec = list(_requirements()[name].specifier)
    assert len(spec) == 1 and spec[0].operator == "==", f"{name} must be pinned with == in requirements.txt"
    return spec[0].version


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...]
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def _expand_defaults(value: str) -> str:
    """What Compose substitutes when none of the variables is set (``${A:-x}`` -> ``x``)."""
    return INTERPOLATION.sub(lambda m: "set-in-env" if (m.group("op") or "").endswith("?") else (m.group("default") or ""),
                             value)


def _depends_on(service: dict) -> dict[str, dict]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return deps


def _command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def _option(cmd: list[str], flag: str) -> str:
    assert flag in cmd, f"{flag} missing from {cmd}"
    return cmd[cmd.index(flag) + 1]


def _volumes(service: dict) -> list[dict]:
    """Volumes in long form: {type, source, target, read_only}."""
    out = []
    for vol in service.get("volumes") or []:
        if isinstance(vol, dict):
            out.append({"type": vol.get("type", "volume"), "source": vol.get("source"),
                        "target": vol["target"], "read_only": bool(vol.get("read_only"))})
            continue
        parts = vol.split(":")
        if len(parts) == 1:  # anonymous volume
            out.append({"type": "volume", "source": None, "target": parts[0], "read_only": False})
            continue
        source, target, mode = parts[0], parts[1], (parts[2] if len(parts) > 2 else "")
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        out.append({"type": kind, "source": source, "target": target, "read_only": "ro" in mode.split(",")})
    return out


def _mount(service: dict, target: str) -> dict | None:
    return next((v for v in _volumes(service) if v["target"] == target), None)


def _split_image(ref: str) -> tuple[str, str | None, str | None]:
    """``registry:5000/name:tag@sha256:...`` -> (name, tag, digest)."""
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        return ref[: ref.rindex(":")], last.split(":", 1)[1], digest
    return ref, None, digest


def _assert_pinned(ref: str, where: str) -> None:
    assert "$" not in ref, f"{where}: image {ref!r} is built from a variable; pin it literally"
    name, tag, digest = _split_image(ref)
    assert tag or digest, f"{where}: image {ref!r} has no tag (that means :latest)"
    assert tag != "latest", f"{where}: image {ref!r} uses :latest"


def _dockerfile(service: dict) -> Path:
    build = service["build"]
    if isinstance(build, str):
        build = {"context": build}
    context = (ROOT / build.get("context", ".")).resolve()
    return context / build.get("dockerfile", "Dockerfile")


def _build_context(service: dict) -> Path:
    build = service["build"]
    return (ROOT / (build if isinstance(build, str) else build.get("context", "."))).resolve()


def _from_lines(dockerfile: Path) -> list[tuple[str, str | None]]:
    """(image, stage name) for every FROM line."""
    out = []
    for line in dockerfile.read_text().splitlines():
        words = line.strip().split()
        if not words or words[0].upper() != "FROM":
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        stage = args[2] if len(args) >= 3 and args[1].upper() == "AS" else None
        out.append((args[0], stage))
    return out


def _python_minor_of_image(ref: str) -> str:
    """Python major.minor of an apache/airflow:X-pythonY or python:Y-... image reference."""
    _, tag, _ = _split_image(ref)
    match = re.search(r"python(\d+\.\d+)", tag) if "airflow" in ref else re.match(r"(\d+\.\d+)", tag)
    assert match, f"cannot tell the Python version of {ref!r}"
    return match.group(1)


def _built_services(services: dict, dockerfile_name: str) -> list[str]:
    return [n for n, s in services.items() if "build" in s and _dockerfile(s).name == dockerfile_name]


# --------------------------------------------------------------------------- structure


def test_compose_file_loads_with_the_expected_services(services):
    assert set(services) == EXPECTED_SERVICES


def test_depends_on_names_existing_services_and_has_no_cycle(services):
    graph = {}
    for name, service in services.items():
        deps = _depends_on(service)
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep!r}"
            assert dep != name, f"{name} depends on itself"
            assert spec.get("condition", "service_started") in {
                "service_started", "service_healthy", "service_completed_successfully"}
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
        graph[name] = set(deps)
    # Kahn's algorithm: a cycle leaves nodes behind.
    remaining = {n: set(d) for n, d in graph.items()}
    while True:
        ready = [n for n, d in remaining.items() if not d]
        if not ready:
            break
        for n in ready:
            del remaining[n]
        for d in remaining.values():
            d.difference_update(ready)
    assert not remaining, f"depends_on cycle among {sorted(remaining)}"


def test_airflow_init_runs_db_migrate_once_and_the_others_wait_for_it(services):
    init = services["airflow-init"]
    assert _command(init) == ["airflow", "db", "migrate"]
    assert str(init.get("restart", "no")) in {"no", "False"}, "airflow-init must not restart: it runs once"
    assert _depends_on(init)["postgres"]["condition"] == "service_healthy"
    for name in AIRFLOW_SERVICES[1:]:
        deps = _depends_on(services[name])
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name


def test_airflow_components_run_the_expected_commands(services):
    assert _command(services["airflow-scheduler"]) == ["airflow", "scheduler"]
    assert _command(services["airflow-dag-processor"]) == ["airflow", "dag-processor"]
    assert _command(services["airflow-triggerer"]) == ["airflow", "triggerer"]
    api = " ".join(_command(services["airflow-apiserver"]))
    assert "airflow api-server" in api and "airflow webserver" not in api


def test_every_image_is_pinned(services):
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name} has neither image nor build"
        if "image" in service:
            _assert_pinned(service["image"], f"service {name}")


def test_every_build_has_a_dockerfile_with_pinned_from_lines(services):
    built = [n for n, s in services.items() if "build" in s]
    assert built, "no service is built"
    for name in built:
        dockerfile = _dockerfile(services[name])
        assert _build_context(services[name]).is_dir(), f"{name}: build context missing"
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        froms = _from_lines(dockerfile)
        assert froms, f"{dockerfile} has no FROM line"
        stages = set()
        for image, stage in froms:
            if image not in stages:  # FROM <earlier stage> is not an image
                _assert_pinned(image, str(dockerfile.relative_to(ROOT)))
            if stage:
                stages.add(stage)


def test_build_contexts_send_only_what_the_dockerfiles_copy(services):
    """A context of the repo root must not ship .venv/.git/data: <Dockerfile>.dockerignore allow-lists."""
    for name, service in services.items():
        if "build" not in service:
            continue
        dockerfile, context = _dockerfile(service), _build_context(service)
        ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
        if not ignore.exists():
            ignore = context / ".dockerignore"
        assert ignore.exists(), f"{name}: no {dockerfile.name}.dockerignore: the whole context would be sent"
        patterns = [p.strip() for p in ignore.read_text().splitlines() if p.strip() and not p.startswith("#")]
        assert patterns[0] == "*", f"{ignore.name} should start with '*' and allow-list what is copied"
        allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
        for line in dockerfile.read_text().splitlines():
            words = line.split()
            if not words or words[0].upper() not in {"COPY", "ADD"} or any(w.startswith("--from") for w in words):
                continue
            sources = [w for w in words[1:-1] if not w.startswith("--")]
            for src in sources:
                assert (context / src).exists(), f"{dockerfile.name} copies {src}, which is not in its context"
                assert src.rstrip("/") in allowed, f"{dockerfile.name} copies {src}, but {ignore.name} ignores it"


def test_named_volumes_are_declared_and_bind_mounts_exist(compose, services):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for vol in _volumes(service):
            if vol["type"] == "volume" and vol["source"]:
                assert vol["source"] in declared, f"{name} uses undeclared named volume {vol['source']!r}"
                used.add(vol["source"])
            elif vol["type"] == "bind":
                assert "$" not in vol["source"], f"{name}: bind source {vol['source']} depends on a variable"
                assert (ROOT / vol["source"]).exists(), f"{name}: bind source {vol['source']} does not exist"
    assert declared <= used, f"declared but unused volumes: {sorted(declared - used)}"


def test_repo_dirs_are_mounted_read_only_on_every_airflow_service(services):
    for d in REPO_DIRS:
        assert (ROOT / d).is_dir(), f"{d}/ is mounted into the stack but is missing from the repo"
    for name in AIRFLOW_SERVICES:
        for d in REPO_DIRS:
            mount = _mount(services[name], f"/opt/nightshift/{d}")
            assert mount, f"{name}: {d}/ is not mounted at /opt/nightshift/{d}"
            assert mount["type"] == "bind" and Path(mount["source"]).parts[-1] == d and mount["read_only"], (name, mount)


def test_the_lake_volume_is_shared_at_the_same_path(services):
    for name in [*AIRFLOW_SERVICES, *SPARK_SERVICES, "mlflow"]:
        mount = _mount(services[name], LAKE_PATH)
        assert mount and mount["type"] == "volume" and mount["source"] == "lake", f"{name}: lake not at {LAKE_PATH}"
        assert not mount["read_only"], name
    artifacts = _option(_command(services["mlflow"]), "--artifacts-destination")
    assert artifacts.startswith(LAKE_PATH + "/"), "MLflow artifacts must live in the lake volume"


def test_ports_are_published_and_match_what_the_servers_listen_on(services):
    def published(name):
        out = {}
        for port in services[name].get("ports") or []:
            if isinstance(port, dict):
                out[int(port["target"])] = int(port["published"])
            else:
                *_, host, container = _expand_defaults(str(port)).split(":")
                out[int(container.split("/")[0])] = int(host)
        return out

    assert published("airflow-apiserver") == {8080: 8080}
    assert published("mlflow") == {5000: 5000}
    assert published("spark-master") == {8090: 8090}
    assert "--port 8080" in " ".join(_command(services["airflow-apiserver"]))
    assert _option(_command(services["mlflow"]), "--port") == "5000"
    assert _option(_command(services["mlflow"]), "--host") == "0.0.0.0"
    assert _option(_command(services["spark-master"]), "--webui-port") == "8090"


# --------------------------------------------------------------------------- settings and secrets


def test_secrets_are_mandatory_and_other_settings_have_one_default_each(compose):
    """A secret is ${NAME:?message} (no default: compose refuses to start without the generated .env);
    any other ${NAME:-default} uses the same default wherever NAME is used."""
    from nightshift_stack.services import SECRETS

    text = COMPOSE_FILE.read_text()
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}", text))
    assert required <= set(SECRETS), f"mandatory but not generated by make secrets: {sorted(required - set(SECRETS))}"
    assert required == set(SECRETS), f"secrets compose does not require: {sorted(set(SECRETS) - required)}"
    defaults: dict[str, set[str]] = {}
    for m in INTERPOLATION.finditer(text):
        if m.group("op") == ":?":
            continue
        assert m.group("name") not in SECRETS, f"{m.group(0)}: a secret must not have a default"
        assert m.group("op") == ":-", f"${{{m.group('name')}}} needs a ':-' default (or ':?' if it is a secret)"
        defaults.setdefault(m.group("name"), set()).add(m.group("default"))
    inconsistent = {k: v for k, v in defaults.items() if len(v) > 1}
    assert not inconsistent, f"different defaults for the same variable: {inconsistent}"


def test_airflow_services_share_one_configuration(services):
    envs = {name: _env(services[name]) for name in AIRFLOW_SERVICES}
    shared = ["AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
              "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__CORE__DAGS_FOLDER"]
    for key in shared:
        values = {name: env.get(key) for name, env in envs.items()}
        assert None not in values.values(), f"{key} missing on {[n for n, v in values.items() if v is None]}"
        assert len(set(values.values())) == 1, f"{key} differs between Airflow services: {values}"
    images = {services[n].get("image") for n in AIRFLOW_SERVICES}
    assert len(images) == 1, f"Airflow services must run one image: {images}"

    env = envs["airflow-scheduler"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/nightshift/dags"
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/nightshift/plugins"
    assert env["GX_ANALYTICS_ENABLED"] == "false"
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    from nightshift_stack.services import TASK_LATENCY_SETTINGS

    for name, service_env in envs.items():     # the same waits as make stack and make demo
        assert {k: service_env.get(k) for k in TASK_LATENCY_SETTINGS} == TASK_LATENCY_SETTINGS, name

    url = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert url.hostname == "airflow-apiserver" and url.port == 8080 and url.path == "/execution/"

    db = urlsplit(_expand_defaults(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))
    assert db.scheme == "postgresql+psycopg2" and db.hostname == "postgres" and db.port == 5432 and db.path == "/airflow"


def test_jwt_secret_comes_from_the_generated_env_file(services):
    raw = _env(services["airflow-scheduler"])["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert re.fullmatch(r"\$\{AIRFLOW__API_AUTH__JWT_SECRET:\?[^}]+\}", raw), raw


def _settings_env_names() -> set[str]:
    source = (ROOT / "nightshift" / "settings.py").read_text()
    return set(re.findall(r"""(?:_path_from_env|os\.environ\.get|os\.getenv)\(\s*["']([A-Z0-9_]+)["']""", source))


def test_env_vars_read_by_settings_are_set_where_nightshift_code_runs(services):
    names = _settings_env_names()
    assert {"NIGHTSHIFT_DATA_ROOT", "MLFLOW_TRACKING_URI"} <= names, "settings.py no longer reads the expected names"
    for service in [*AIRFLOW_SERVICES, *SPARK_SERVICES]:
        env = _env(services[service])
        missing = sorted(names - set(env))
        # The package is installed in site-packages, so its source-tree fallbacks would be wrong there.
        assert not missing, f"{service} does not set {missing} (read by nightshift/settings.py)"
        assert env["NIGHTSHIFT_DATA_ROOT"] == LAKE_PATH, service
        for key, d in [("NIGHTSHIFT_SOURCES_DIR", "sources"), ("NIGHTSHIFT_CONFIG_DIR", "config"),
                       ("NIGHTSHIFT_EXPECTATIONS_DIR", "expectations")]:
            if key in env:
                assert _mount(services[service], env[key]), f"{service}: {key}={env[key]} is not a mounted directory"


def test_mlflow_tracking_uri_points_at_the_mlflow_service_and_is_allowed(services):
    from mlflow.server.security_utils import is_allowed_host_header  # the server's own Host-header check

    uri = urlsplit(_env(services["airflow-scheduler"])["MLFLOW_TRACKING_URI"])
    assert uri.scheme == "http" and uri.hostname == "mlflow"
    cmd = _command(services["mlflow"])
    assert uri.port == int(_option(cmd, "--port"))
    allowed = [h.strip() for h in _expand_defaults(_option(cmd, "--allowed-hosts")).split(",")]
    assert "*" not in allowed, "do not accept every Host header"
    for host_header in [uri.netloc, "localhost:5000", "127.0.0.1:5000"]:
        assert is_allowed_host_header(allowed, host_header), f"MLflow would reject Host: {host_header}"
    assert not is_allowed_host_header(allowed, "evil.example:5000")


def test_database_credentials_match_the_postgres_init_script(services):
    pg_env = _env(services["postgres"])
    sql = (ROOT / "docker" / "postgres-init.sql").read_text()
    init_mount = next(v for v in _volumes(services["postgres"]) if v["target"].startswith("/docker-entrypoint-initdb.d/"))
    assert Path(init_mount["source"]).name == "postgres-init.sql" and init_mount["target"].endswith(".sql")

    getenv = dict(re.findall(r"^\\getenv\s+(\w+)\s+(\w+)\s*$", sql, flags=re.M))  # psql var -> env var
    assert getenv, "postgres-init.sql should read the users and passwords with \\getenv"
    for env_name in getenv.values():
        assert env_name in pg_env, f"postgres-init.sql reads {env_name}, which the postgres service does not set"

    created = set(re.findall(r"^CREATE DATABASE (\w+)", sql, flags=re.M))
    assert created == {"airflow", "mlflow", "mlflow_auth"}

    urls = {
        "airflow": _env(services["airflow-scheduler"])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "mlflow": _option(_command(services["mlflow"]), "--backend-store-uri"),
    }
    for db, raw in urls.items():
        m = re.fullmatch(r"postgresql\+psycopg2://(?P<user>[^:@]+|\$\{[^}]+\}):(?P<pw>\$\{[^}]+\})@postgres:5432/(?P<db>\w+)", raw)
        assert m, f"unexpected {db} database URL: {raw}"
        assert m.group("db") == db
        prefix = db.upper()
        # The URL uses exactly what the postgres container hands to the init script.
        assert pg_env[f"{prefix}_DB_USER"] == m.group("user"), db
        assert pg_env[f"{prefix}_DB_PASSWORD"] == m.group("pw"), db


def test_postgres_is_pinned_and_healthchecked(services):
    pg = services["postgres"]
    assert _split_image(pg["image"])[:2] == ("postgres", "16")
    test = pg["healthcheck"]["test"]
    assert "pg_isready" in (test if isinstance(test, str) else " ".join(test))
    assert _mount(pg, "/var/lib/postgresql/data")["type"] == "volume"


def test_healthchecks_use_the_airflow_3_endpoints(services):
    api = " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    assert "/api/v2/monitor/health" in api
    assert "/health" in " ".join(services["airflow-scheduler"]["healthcheck"]["test"])
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"


# --------------------------------------------------------------------------- versions


def test_airflow_image_matches_the_requirements_pin(services):
    [name] = set(_built_services(services, "airflow.Dockerfile")) & {"airflow-scheduler"}
    froms = _from_lines(_dockerfile(services[name]))
    assert len(froms) == 1
    image = froms[0][0]
    base, tag, _ = _split_image(image)
    assert base == "apache/airflow"
    assert tag.split("-python")[0] == _pin("apache-airflow"), f"{image} vs apache-airflow=={_pin('apache-airflow')}"
    assert services[name]["image"].endswith(":" + _pin("apache-airflow"))


def test_mlflow_image_matches_the_requirements_pin(services):
    dockerfile = _dockerfile(services["mlflow"]).read_text()
    pins = dict(re.findall(r'"?([A-Za-z0-9_.-]+)==([A-Za-z0-9_.]+)"?', dockerfile))
    assert pins.get("mlflow") == _pin("mlflow"), f"mlflow.Dockerfile pins {pins.get('mlflow')}"
    assert "psycopg2-binary" in pins, "mlflow server needs psycopg2 for the Postgres backend store"
    assert _requirements()["psycopg2-binary"].specifier.contains(pins["psycopg2-binary"])
    assert services["mlflow"]["image"].endswith(":" + _pin("mlflow"))


def test_driver_and_executors_run_the_same_python_minor(services):
    """PySpark refuses executors whose Python major.minor differs from the driver's (Airflow image)."""
    requires = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    minors = {}
    for dockerfile in {_dockerfile(s) for s in services.values() if "build" in s}:
        for image, _ in _from_lines(dockerfile):
            minors[dockerfile.name] = _python_minor_of_image(image)
    assert len(set(minors.values())) == 1, f"Python versions differ between images: {minors}"
    assert requires.contains(next(iter(minors.values())) + ".0"), f"{minors} outside requires-python {requires}"


def test_spark_image_installs_the_project_requirements(services):
    assert set(_built_services(services, "spark.Dockerfile")) == set(SPARK_SERVICES)
    text = _dockerfile(services["spark-master"]).read_text()
    assert "-r /opt/nightshift/src/requirements.txt" in text and "--no-deps /opt/nightshift/src" in text
    assert "openjdk-17" in text and "JAVA_HOME" in text
    assert services["spark-master"]["image"].endswith(":" + _pin("pyspark"))


def test_airflow_image_has_java_and_the_project(services):
    text = _dockerfile(services["airflow-scheduler"]).read_text()
    assert "openjdk-17" in text and "JAVA_HOME" in text
    assert "-r /opt/nightshift/src/requirements.txt" in text and "--no-deps /opt/nightshift/src" in text


# --------------------------------------------------------------------------- Spark


def test_spark_cluster_commands(services):
    master = _command(services["spark-master"])
    assert master[:2] == ["spark-class", "org.apache.spark.deploy.master.Master"]
    assert _option(master, "--host") == "spark-master" and _option(master, "--port") == "7077"
    worker = _command(services["spark-worker"])
    assert worker[:2] == ["spark-class", "org.apache.spark.deploy.worker.Worker"]
    assert worker[2] == "spark://spark-master:7077"
    assert _depends_on(services["spark-worker"])["spark-master"]


def test_spark_connection_is_json_for_the_spark_master(services):
    raw = _env(services["airflow-scheduler"])["AIRFLOW_CONN_NIGHTSHIFT_SPARK"]
    conn = json.loads(raw)
    assert conn["conn_type"] == "spark"
    host = urlsplit(conn["host"])
    assert host.scheme == "spark" and host.hostname in services
    assert str(conn["port"]) == _option(_command(services[host.hostname]), "--port")
    assert {_env(services[n])["AIRFLOW_CONN_NIGHTSHIFT_SPARK"] for n in AIRFLOW_SERVICES} == {raw}


def test_spark_provider_resolves_the_connection_to_the_master_url(services, tmp_path):
    """What SparkSubmitOperator(conn_id="nightshift_spark") passes as --master, from the compose env."""
    raw = _env(services["airflow-scheduler"])["AIRFLOW_CONN_NIGHTSHIFT_SPARK"]
    code = ("from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook;"
            "print(SparkSubmitHook(conn_id='nightshift_spark')._connection['master'])")
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW_CONN_NIGHTSHIFT_SPARK": raw}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "spark://spark-master:7077"


# --------------------------------------------------------------------------- docker compose config


def _compose_command() -> list[str] | None:
    """``docker compose`` (plugin) or a standalone ``docker-compose`` v2; None when neither exists."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for cmd in candidates:
        try:
            out = subprocess.run([*cmd, "version", "--short"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = out.stdout.strip().lstrip("v")
        if out.returncode == 0 and version[:1].isdigit() and int(version.split(".")[0]) >= 2:
            return cmd
    return None


def test_docker_compose_config_accepts_the_file():
    cmd = _compose_command()
    if cmd is None:
        pytest.skip("Docker Compose v2 is not installed (no `docker compose` plugin, no docker-compose v2 "
                    "binary), so `docker compose config -q` cannot run here")
    result = subprocess.run([*cmd, "-f", str(COMPOSE_FILE), "--project-directory", str(ROOT), "config", "-q"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- in step with `make stack`


def test_compose_runs_the_services_of_make_stack_with_the_same_commands(services):
    """nightshift_stack/services.py is the one list: compose has each service, runs its command
    (templates filled with the compose values) and sets every setting it needs."""
    from nightshift_stack.services import COMPOSE, SERVICES, render

    assert set(services) - {"postgres"} == {s.name for s in SERVICES}
    for s in SERVICES:
        assert _command(services[s.name]) == render(s, COMPOSE), s.name
        missing = sorted(set(s.env) - set(_env(services[s.name])))
        assert not missing, f"{s.name}: compose does not set {missing}"


def test_make_stack_sets_what_each_service_needs(tmp_path, monkeypatch):
    from nightshift_stack import stack
    from nightshift_stack.services import SECRETS, SERVICES, render

    monkeypatch.setenv("NIGHTSHIFT_DATA_ROOT", str(tmp_path / "lake"))
    cfg = {"ports": stack.DEFAULT_PORTS, "db": {"airflow": "a", "mlflow": "m", "mlflow_auth": "ma"}}
    env, values = stack.environment(tmp_path, cfg, {k: "x" for k in SECRETS})
    for s in SERVICES:
        missing = sorted(set(s.env) - set(env))
        assert not missing, f"make stack does not set {missing} for {s.name}"
        rendered = render(s, values)
        assert all("{" not in part for part in rendered), s.name
        if "--host" in rendered:
            assert rendered[rendered.index("--host") + 1] == "127.0.0.1", s.name
    assert env["MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:")
    assert env["NIGHTSHIFT_LOCK_URL"].startswith("postgresql://")


def test_secrets_file_is_generated_private_and_complete(tmp_path):
    from nightshift_stack import stack
    from nightshift_stack.services import SECRETS

    path = stack.write_secrets(tmp_path / ".env")
    assert path.stat().st_mode & 0o777 == 0o600
    values = stack.read_env_file(path)
    assert set(values) == set(SECRETS) and all(values.values())
    assert stack.write_secrets(path) == path and stack.read_env_file(path) == values  # kept
    other = stack.read_env_file(stack.write_secrets(tmp_path / "other.env"))
    assert all(values[k] != other[k] for k in SECRETS if k.endswith(("PASSWORD", "SECRET", "KEY")))


# Public default credentials that must not appear in any tracked file.
DEFAULT_CREDENTIALS = [
    "admin:admin", "airflow:airflow", "mlflow:mlflow", "postgres:postgres", "dev-only-insecure",
    ":-admin}", ":-airflow}", ":-mlflow}", ":-postgres}", "PASSWORD:-", "SECRET:-", "FERNET_KEY:-",
    "admin_password = ", '"password": "admin"',
]


def test_no_default_password_in_tracked_files():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    me = Path(__file__).resolve()
    hits = []
    for name in files:
        path = ROOT / name
        if path.resolve() == me or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        hits += [f"{name}: {pattern!r}" for pattern in DEFAULT_CREDENTIALS if pattern in text]
    assert not hits, "default credentials in tracked files:\n" + "\n".join(hits)
