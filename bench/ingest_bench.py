"""Throughput benchmark of the ingest path: Spark (ingest + features) vs single Python processes.

For each size (default 1M and 4M lines) this

1. generates one HDFS day of about that many lines with ``nightshift_datagen.hdfs`` into its own lake
   under ``--out`` (``lake-1m``, ``lake-4m``, ...), reusing it when a marker says it was generated
   with the same scenario;
2. runs ``jobs/ingest.py --with-features`` (ingest + features in one Spark application; the
   nightly DAG's ``ingest_and_validate`` task runs the same job with ``--validate`` added) with
   ``spark-submit --master local[2] --driver-memory 2g`` in the pipeline's local environment
   (``nightshift.localenv``), timing the process, reading the time of each step (ingest, features)
   and each phase inside them from its log, and polling the process tree every 0.2 s for the peak
   RSS of the driver JVM and of the Python driver process;
3. runs the single-process Python baseline (``bench/baseline.py``) on the same file;
4. runs drain3 0.9.11 (``bench/drain3_peer.py``, in its own virtualenv ``bench/.venv-drain3``, made
   on first use; skipped with a message when it cannot be made) doing the same work on the same file;
5. at the largest size, runs the Spark job again with ``local[1]`` (core scaling);
6. prints one table and the target checks, and writes everything to ``<out>/results.json``.

This is a benchmark, not a test: it exits 0 when every measurement ran (even if a target is
missed) unless ``--check`` is given, and non-zero when a job fails or the line accounting is off.

    .venv/bin/python bench/ingest_bench.py [--sizes 1000000,4000000] [--out bench/out]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import psutil  # noqa: E402

from nightshift_datagen import hdfs as generator  # noqa: E402
from nightshift.lake import Lake, check_day, write_json_atomic  # noqa: E402
from nightshift.localenv import local_environment  # noqa: E402

SOURCE = generator.SOURCE  # "hdfs"
DEFAULT_SIZES = "1000000,4000000"
DEFAULT_DAY = "2026-11-01"
DEFAULT_SEED = 7
LINES_PER_BLOCK = 16  # the generator writes ~16 lines per block (session)
MASTER = "local[2]"  # as the nightshift_spark connection (nightshift.localenv.LOCAL_SPARK_CONNECTION)
ONE_CORE_MASTER = "local[1]"  # the core-scaling run (largest size only)
DEFAULT_DRIVER_MEMORY = "2g"
POLL_SECONDS = 0.2
MARKER_NAME = "bench-scenario.json"
KEEP_IN_LAKE = {"raw", "labels", MARKER_NAME}  # everything else is job output, removed before a run
TAIL_LINES = 40

# Targets (issue 14).
TARGET_PEER_RATIO = 1.5  # at 4M lines: Spark lines/s >= 1.5x the baseline's and >= 1.5x drain3's
TARGET_CORE_SPEEDUP = 1.8  # at the largest size: time(local[1]) / time(local[2]) >= 1.8, whole process
TARGET_SCALING_SLACK = 1.1  # 4x input in at most 4.4x time: time ratio <= 1.1 x input ratio
TARGET_MEMORY_GROWTH = 1.25  # driver peak RSS at the largest size <= 1.25 x at the smallest ("not growing")
TARGET_DEFINED_AT = 3_900_000  # the throughput targets are defined at 4M lines

MIB = 1024 * 1024


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and shows the output's tail."""


# --------------------------------------------------------------------------------------------------
# Sizes and data
# --------------------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """``1000000``, ``1m``, ``200k``, ``1_000_000`` -> number of lines."""
    t = text.strip().lower().replace("_", "")
    factor = 1
    if t.endswith("k"):
        factor, t = 1_000, t[:-1]
    elif t.endswith("m"):
        factor, t = 1_000_000, t[:-1]
    value = int(float(t) * factor)
    if value < LINES_PER_BLOCK:
        raise argparse.ArgumentTypeError(f"size must be at least {LINES_PER_BLOCK} lines, got {text!r}")
    return value


def size_label(lines: int) -> str:
    """1000000 -> ``1m``, 200000 -> ``200k``, 1500000 -> ``1.5m``."""
    if lines >= 1_000_000:
        return f"{lines / 1_000_000:g}m"
    if lines >= 1_000:
        return f"{lines / 1_000:g}k"
    return str(lines)


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare_lake(out: Path, size: int, day: str, seed: int, anomaly_rate: float) -> dict[str, Any]:
    """Generate (or reuse) one day of ~``size`` lines into ``<out>/lake-<label>``."""
    root = (out / f"lake-{size_label(size)}").resolve()
    scenario = generator.Scenario(
        start_day=day, days=1, seed=seed, blocks_per_day=max(1, round(size / LINES_PER_BLOCK)), anomaly_rate=anomaly_rate
    )
    lake = Lake(root)
    log_file = lake.raw_dir(SOURCE, day) / generator.LOG_FILE_NAME
    labels_file = lake.labels_file(SOURCE, day)
    wanted = {
        "scenario": dataclasses.asdict(scenario),
        "generator_sha256": _sha256_file(Path(generator.__file__)),
    }
    marker_path = root / MARKER_NAME
    if marker_path.exists() and log_file.exists() and labels_file.exists():
        try:
            marker = json.loads(marker_path.read_text())
        except json.JSONDecodeError:
            marker = {}
        if {k: marker.get(k) for k in wanted} == wanted and marker.get("bytes") == log_file.stat().st_size:
            print(f"[{size_label(size)}] reusing {log_file} ({marker['lines']:,} lines)", flush=True)
            return {**marker, "root": str(root), "log_file": str(log_file), "generated": False}
    print(f"[{size_label(size)}] generating {scenario.blocks_per_day:,} blocks into {root} ...", flush=True)
    marker_path.unlink(missing_ok=True)
    started = time.perf_counter()
    summary = generator.generate_day(root, scenario, 0)
    seconds = time.perf_counter() - started
    marker = {
        **wanted,
        "day": day,
        "lines": summary.lines,
        "blocks": summary.blocks,
        "anomalies": summary.anomalies,
        "bytes": log_file.stat().st_size,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "generation_seconds": round(seconds, 2),
    }
    write_json_atomic(marker_path, marker)
    print(f"[{size_label(size)}] {summary.describe()} in {seconds:.1f}s", flush=True)
    return {**marker, "root": str(root), "log_file": str(log_file), "generated": True}


def clean_outputs(root: Path) -> None:
    """Remove the job outputs of a bench lake (parsed, features, reports, template store, ...),
    keeping the generated raw data and labels, so every run starts from the same state."""
    for child in root.iterdir():
        if child.name in KEEP_IN_LAKE:
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


# --------------------------------------------------------------------------------------------------
# Running a process tree and watching its memory
# --------------------------------------------------------------------------------------------------


def _vm_hwm(pid: int) -> int | None:
    """The kernel's peak RSS of ``pid`` (``VmHWM``, bytes), None where unavailable."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def classify(cmdline: list[str], script: str | None) -> str:
    """Role of a process in a spark-submit tree: ``jvm`` (the SparkSubmit driver JVM),
    ``launcher`` (spark-class's short-lived command builder), ``python_driver``, ``python_worker``
    or ``other`` (the spark-submit shell scripts before they exec)."""
    if not cmdline:
        return "other"
    exe = os.path.basename(cmdline[0])
    joined = " ".join(cmdline)
    if exe == "java":
        return "jvm" if "org.apache.spark.deploy.SparkSubmit" in joined else "launcher"
    if exe.startswith("python"):
        if "pyspark.daemon" in joined or "pyspark.worker" in joined:
            return "python_worker"
        if script is None or any(arg.endswith(script) for arg in cmdline[1:]):
            return "python_driver"
    return "other"


@dataclasses.dataclass
class TreeSampler:
    """Polls a process tree; keeps the peak RSS per role (with the kernel's VmHWM where readable)."""

    root_pid: int
    script: str | None
    peaks: dict[str, int] = dataclasses.field(default_factory=dict)
    pids: dict[str, set[int]] = dataclasses.field(default_factory=dict)
    peak_tree: int = 0
    peak_workers: int = 0
    samples: int = 0

    def sample(self) -> None:
        try:
            root = psutil.Process(self.root_pid)
            procs = [root, *root.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return
        tree = workers = 0
        for proc in procs:
            try:
                with proc.oneshot():
                    cmdline = proc.cmdline()
                    rss = proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            role = classify(cmdline, self.script)
            tree += rss
            if role == "python_worker":
                workers += rss
            peak = max(rss, _vm_hwm(proc.pid) or 0) if role in ("jvm", "python_driver") else rss
            self.peaks[role] = max(self.peaks.get(role, 0), peak)
            self.pids.setdefault(role, set()).add(proc.pid)
        self.peak_tree = max(self.peak_tree, tree)
        self.peak_workers = max(self.peak_workers, workers)
        self.samples += 1


def _tail(path: Path, n: int = TAIL_LINES) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(lines[-n:])


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_monitored(
    name: str, cmd: list[str], env: dict[str, str], cwd: Path, log_file: Path, script: str | None
) -> dict[str, Any]:
    """Run ``cmd`` with its output in ``log_file``, polling its tree's memory every POLL_SECONDS.

    Returns wall seconds, CPU seconds of the whole tree, peak RSS per role and the load average
    at the start; raises BenchError (with the output's tail) when the command fails."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    cpu_before = _children_cpu_seconds()
    with open(log_file, "wb") as out:
        out.write(("$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid, script)
        try:
            while proc.poll() is None:
                sampler.sample()
                time.sleep(POLL_SECONDS)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - started
    cpu = _children_cpu_seconds() - cpu_before
    if proc.returncode != 0:
        raise BenchError(
            f"{name} failed with exit code {proc.returncode} after {seconds:.1f}s; last lines of {log_file}:\n"
            + _tail(log_file)
        )
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "load_avg_1m_before": load_before,
        "peak_rss_jvm": sampler.peaks.get("jvm"),
        "peak_rss_python_driver": sampler.peaks.get("python_driver"),
        "peak_rss_python_workers": sampler.peak_workers or None,
        "peak_rss_tree": sampler.peak_tree,
        "samples": sampler.samples,
        "log_file": str(log_file),
    }


# --------------------------------------------------------------------------------------------------
# The two paths
# --------------------------------------------------------------------------------------------------


def spark_submit_cmd(job: str, day: str, driver_memory: str, *extra_args: str, master: str = MASTER) -> list[str]:
    """The pipeline's spark-submit command for ``jobs/<job>.py`` (as the DAG's SparkSubmitOperator
    on the local connection), with the driver memory set explicitly."""
    spark_submit = Path(sys.executable).parent / "spark-submit"
    return [
        str(spark_submit) if spark_submit.exists() else "spark-submit",
        "--master", master,
        "--driver-memory", driver_memory,
        "--name", f"nightshift-bench-{job}",
        str(PROJECT_ROOT / "jobs" / f"{job}.py"),
        "--source", SOURCE,
        "--day", day,
        *extra_args,
    ]  # fmt: skip


STEP_LINE = re.compile(r"nightshift\.jobrunner: step (\w+): ([0-9.]+) s")
PHASE_LINE = re.compile(r"nightshift\.phases: phase (.+?): ([0-9.]+) s")
STARTUP_LINE = re.compile(r"nightshift\.jobrunner: spark start-up: ([0-9.]+) s")


def run_spark(data: dict[str, Any], day: str, out: Path, driver_memory: str, master: str = MASTER) -> dict[str, Any]:
    """``jobs/ingest.py --with-features`` on one bench lake (one process, as the nightly DAG runs it);
    checks the exit code, the reports and the ingest line accounting."""
    label = size_label(data["requested_lines"])
    root = Path(data["root"])
    clean_outputs(root)
    env = local_environment(airflow_home=out / "airflow-home", data_root=root)
    workdir = out / "work"  # spark-submit's cwd: keeps stray files (derby.log, ...) out of the checkout
    workdir.mkdir(parents=True, exist_ok=True)
    what = "spark ingest + features" + ("" if master == MASTER else f" ({master})")
    print(f"[{label}] {what} ...", flush=True)
    cmd = spark_submit_cmd("ingest", day, driver_memory, "--with-features", master=master)
    suffix = "" if master == MASTER else "-" + re.sub(r"\W", "", master)
    run = run_monitored(
        f"{what} ({label})", cmd, env, workdir, out / "logs" / f"{label}-spark{suffix}.log", "jobs/ingest.py"
    )
    reports = {}
    for step in ("ingest", "features"):
        reports[step] = Lake(root).read_report(SOURCE, day, step)
        if reports[step] is None:
            raise BenchError(f"spark ({label}) exited 0 but wrote no {step} report; see {run['log_file']}")
    log_text = Path(run["log_file"]).read_text(errors="replace")
    steps = {m[1]: float(m[2]) for m in STEP_LINE.finditer(log_text)}
    phases = {m[1]: float(m[2]) for m in PHASE_LINE.finditer(log_text)}
    startup = STARTUP_LINE.search(log_text)  # JVM launch to a ready session (nightshift.jobrunner)
    report = reports["ingest"]  # every input line parsed or quarantined, and all of the file read
    accounted = report["parsed_lines"] + report["quarantined_lines"]
    if accounted != report["input_lines"]:
        raise BenchError(
            f"[{label}] line accounting: {report['input_lines']} input != {report['parsed_lines']} "
            f"parsed + {report['quarantined_lines']} quarantined"
        )
    if report["input_lines"] != data["lines"]:
        raise BenchError(f"[{label}] ingest read {report['input_lines']} lines, the generator wrote {data['lines']}")
    print(
        f"[{label}] {what}: {run['seconds']:.1f}s (steps in the job: "
        + (f"start-up {float(startup[1]):.1f}s, " if startup else "")
        + ", ".join(f"{k} {v:.1f}s" for k, v in steps.items())
        + f"; cpu {run['cpu_seconds']:.0f}s, load before {run['load_avg_1m_before']:.2f}), "
        f"JVM peak {_mib(run['peak_rss_jvm'])}, Python driver peak {_mib(run['peak_rss_python_driver'])}"
        + (f", Python workers peak {_mib(run['peak_rss_python_workers'])}" if run["peak_rss_python_workers"] else ""),
        flush=True,
    )
    if phases:
        print(f"[{label}]   phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in phases.items()), flush=True)
    return {**run, "master": master, "startup_s": float(startup[1]) if startup else None, "steps": steps,
            "phases": phases, "reports": reports}


def run_baseline(data: dict[str, Any], out: Path) -> dict[str, Any]:
    """bench/baseline.py on the day's raw file, in its own process (its peak RSS is its own)."""
    label = size_label(data["requested_lines"])
    print(f"[{label}] baseline ...", flush=True)
    log_file = out / "logs" / f"{label}-baseline.log"
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "baseline.py"), data["log_file"], "--source", SOURCE]
    run = run_monitored(f"baseline ({label})", cmd, dict(os.environ), PROJECT_ROOT, log_file, None)
    last = [ln for ln in log_file.read_text(errors="replace").splitlines() if ln.startswith("{")]
    if not last:
        raise BenchError(f"baseline ({label}) printed no result; last lines of {log_file}:\n{_tail(log_file)}")
    counts = json.loads(last[-1])
    if counts["lines"] != data["lines"]:
        raise BenchError(f"[{label}] baseline read {counts['lines']} lines, the generator wrote {data['lines']}")
    result = {
        "seconds": run["seconds"],  # process wall time, like the Spark jobs (includes start-up)
        "loop_seconds": counts["seconds"],
        "cpu_seconds": run["cpu_seconds"],
        "load_avg_1m_before": run["load_avg_1m_before"],
        "peak_rss": counts["peak_rss_bytes"],
        "counts": {k: counts[k] for k in ("lines", "parsed", "unparsed", "with_session", "sessions", "templates")},
        "log_file": str(log_file),
    }
    print(
        f"[{label}] baseline: {result['seconds']:.1f}s ({counts['lines'] / result['seconds']:,.0f} lines/s), "
        f"peak RSS {_mib(result['peak_rss'])}, {counts['templates']} templates, {counts['sessions']:,} sessions",
        flush=True,
    )
    return result


def drain3_python() -> tuple[Path | None, str | None]:
    """drain3's own virtualenv (``bench/.venv-drain3``, made by ``bench/miners.py`` on first use):
    ``(python, None)``, or ``(None, why)`` when it cannot be made (e.g. no network)."""
    import contextlib
    import io

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from miners import DRAIN3_VENV, drain3_python as make_venv
    finally:
        sys.path.pop(0)
    if not (DRAIN3_VENV / "bin" / "python").exists():
        print(f"making {DRAIN3_VENV} (drain3 0.9.11; not timed) ...", flush=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        py = make_venv()
    if py is not None:
        probe = subprocess.run([str(py), "-c", "import drain3"], capture_output=True, text=True)
        if probe.returncode == 0:
            return py, None
        return None, f"{py} cannot import drain3: {probe.stderr.strip()[-300:]}"
    return None, err.getvalue().strip() or f"cannot make {DRAIN3_VENV}"


def drain3_job(source_name: str = SOURCE) -> dict[str, Any]:
    """What drain3 is given: the source's header regex, masks, session regex and Drain parameters."""
    from nightshift.sources import load_source

    source = load_source(source_name, PROJECT_ROOT / "sources")
    drain = source.drain
    return {
        "header": source.log_format.python_regex.pattern,
        "message_group": source.log_format.group_index[source.message_field],
        "masks": [m.regex for m in source.masks],
        "session_regex": source.session_id_regex,
        "depth": int(drain.get("depth", 4)),
        "similarity_threshold": float(drain.get("similarity_threshold", 0.5)),
        "max_children": int(drain.get("max_children", 100)),
    }


def run_drain3(data: dict[str, Any], out: Path, py: Path) -> dict[str, Any]:
    """bench/drain3_peer.py on the day's raw file with drain3's venv python, in its own process."""
    label = size_label(data["requested_lines"])
    print(f"[{label}] drain3 ...", flush=True)
    log_file = out / "logs" / f"{label}-drain3.log"
    cmd = [str(py), str(Path(__file__).resolve().parent / "drain3_peer.py"), data["log_file"], json.dumps(drain3_job())]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    run = run_monitored(f"drain3 ({label})", cmd, env, PROJECT_ROOT, log_file, None)
    last = [ln for ln in log_file.read_text(errors="replace").splitlines() if ln.startswith("{")]
    if not last:
        raise BenchError(f"drain3 ({label}) printed no result; last lines of {log_file}:\n{_tail(log_file)}")
    counts = json.loads(last[-1])
    if counts["lines"] != data["lines"]:
        raise BenchError(f"[{label}] drain3 read {counts['lines']} lines, the generator wrote {data['lines']}")
    result = {
        "seconds": run["seconds"],  # process wall time (interpreter start-up and drain3 import included)
        "loop_seconds": counts["seconds"],
        "cpu_seconds": run["cpu_seconds"],
        "load_avg_1m_before": run["load_avg_1m_before"],
        "peak_rss": counts["peak_rss_bytes"],
        "counts": {k: counts[k] for k in ("lines", "parsed", "unparsed", "with_session", "sessions", "templates")},
        "log_file": str(log_file),
    }
    print(
        f"[{label}] drain3: {result['seconds']:.1f}s ({counts['lines'] / result['seconds']:,.0f} lines/s), "
        f"peak RSS {_mib(result['peak_rss'])}, {counts['templates']} clusters, {counts['sessions']:,} sessions",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:,.0f} MiB"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b in (None, 0) else a / b


def summarise(entry: dict[str, Any]) -> dict[str, Any]:
    """The table row of one size."""
    lines = entry["data"]["lines"]
    row: dict[str, Any] = {"size": size_label(entry["data"]["requested_lines"]), "lines": lines}
    spark = entry.get("spark")
    if spark:
        row.update(
            spark_startup_s=spark.get("startup_s"),
            spark_ingest_s=spark["steps"].get("ingest"),
            spark_features_s=spark["steps"].get("features"),
            spark_total_s=spark["seconds"],
            spark_lines_per_s=lines / spark["seconds"],
            jvm_peak_rss=spark["peak_rss_jvm"],
            python_driver_peak_rss=spark["peak_rss_python_driver"],
            spark_total_cpu_s=spark["cpu_seconds"],
        )
    one_core = entry.get("spark_local1")
    if one_core:
        row.update(
            spark1_total_s=one_core["seconds"],
            spark1_lines_per_s=lines / one_core["seconds"],
            spark1_total_cpu_s=one_core["cpu_seconds"],
            spark1_ingest_s=one_core["steps"].get("ingest"),
            spark1_features_s=one_core["steps"].get("features"),
        )
        row["core_speedup"] = _ratio(row["spark1_total_s"], row.get("spark_total_s"))
    for peer in ("baseline", "drain3"):
        run = entry.get(peer)
        if run:
            row.update({
                f"{peer}_s": run["seconds"],
                f"{peer}_lines_per_s": lines / run["seconds"],
                f"{peer}_cpu_s": run["cpu_seconds"],
                f"{peer}_peak_rss": run["peak_rss"],
            })
    row["ratio"] = _ratio(row.get("spark_lines_per_s"), row.get("baseline_lines_per_s"))
    row["ratio_drain3"] = _ratio(row.get("spark_lines_per_s"), row.get("drain3_lines_per_s"))
    return row


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "s":
        return f"{value:.1f}"
    if kind == "int":
        return f"{value:,.0f}"
    if kind == "x":
        return f"{value:.2f}x"
    if kind == "mib":
        return _mib(value)
    return str(value)


COLUMNS = [
    ("size", "size", "str"),
    ("lines", "lines", "int"),
    ("start-up s", "spark_startup_s", "s"),
    ("ingest step s", "spark_ingest_s", "s"),
    ("features step s", "spark_features_s", "s"),
    ("spark total s", "spark_total_s", "s"),
    ("spark lines/s", "spark_lines_per_s", "int"),
    ("local[1] s", "spark1_total_s", "s"),
    ("local[1] lines/s", "spark1_lines_per_s", "int"),
    ("baseline s", "baseline_s", "s"),
    ("baseline lines/s", "baseline_lines_per_s", "int"),
    ("drain3 s", "drain3_s", "s"),
    ("drain3 lines/s", "drain3_lines_per_s", "int"),
    ("spark/baseline", "ratio", "x"),
    ("spark/drain3", "ratio_drain3", "x"),
    ("driver JVM peak RSS", "jvm_peak_rss", "mib"),
    ("driver Python peak RSS", "python_driver_peak_rss", "mib"),
]


def render_table(rows: list[dict[str, Any]]) -> str:
    header = [title for title, _, _ in COLUMNS]
    body = [[_fmt(row.get(key), kind) for _, key, kind in COLUMNS] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = [" | ".join(h.rjust(w) for h, w in zip(header, widths)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.rjust(w) for c, w in zip(r, widths)) for r in body]
    return "\n".join(lines)


def target_checks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, evaluated on the largest size (and largest vs smallest for scaling and
    memory). ``passed`` is None when the figures needed were not measured."""
    checks: list[dict[str, Any]] = []
    if not rows:
        return checks
    small, large = rows[0], rows[-1]
    where = "" if large["lines"] >= TARGET_DEFINED_AT else " (defined at 4M lines)"
    for key, peer in (("ratio", "baseline"), ("ratio_drain3", "drain3")):
        checks.append(
            {
                "name": f"throughput at {large['size']}: spark lines/s / {peer} lines/s",
                "target": f">= {TARGET_PEER_RATIO:g}{where}",
                "value": large.get(key),
                "passed": None if large.get(key) is None else large[key] >= TARGET_PEER_RATIO,
            }
        )
    speedup = large.get("core_speedup")
    checks.append(
        {
            "name": f"core scaling at {large['size']}: time(local[1]) / time(local[2]), whole process",
            "target": f">= {TARGET_CORE_SPEEDUP:g}",
            "value": speedup,
            "passed": None if speedup is None else speedup >= TARGET_CORE_SPEEDUP,
            "step_speedups": {
                step: _ratio(large.get(f"spark1_{step}_s"), large.get(f"spark_{step}_s")) for step in ("ingest", "features")
            },
        }
    )
    if large is small:
        return checks
    input_ratio = large["lines"] / small["lines"]
    limit = TARGET_SCALING_SLACK * input_ratio
    time_ratio = _ratio(large.get("spark_total_s"), small.get("spark_total_s"))
    checks.append(
        {
            "name": f"scaling: spark time({large['size']}) / time({small['size']}) (input x{input_ratio:.2f})",
            "target": f"<= {limit:.2f}",
            "value": time_ratio,
            "passed": None if time_ratio is None else time_ratio <= limit,
            "ingest_time_ratio": _ratio(large.get("spark_ingest_s"), small.get("spark_ingest_s")),
            "features_time_ratio": _ratio(large.get("spark_features_s"), small.get("spark_features_s")),
            "baseline_time_ratio": _ratio(large.get("baseline_s"), small.get("baseline_s")),
            # lines/s once the fixed costs (JVM start-up, session, report queries) are taken out
            "spark_marginal_lines_per_s": (
                None
                if time_ratio is None or large["spark_total_s"] <= small["spark_total_s"]
                else (large["lines"] - small["lines"]) / (large["spark_total_s"] - small["spark_total_s"])
            ),
        }
    )
    for key, what in (("jvm_peak_rss", "driver JVM"), ("python_driver_peak_rss", "driver Python")):
        growth = _ratio(large.get(key), small.get(key))
        checks.append(
            {
                "name": f"memory: {what} peak RSS {large['size']} / {small['size']}",
                "target": f"<= {TARGET_MEMORY_GROWTH:g} (not growing with input)",
                "value": growth,
                "passed": None if growth is None else growth <= TARGET_MEMORY_GROWTH,
            }
        )
    return checks


def render_checks(checks: list[dict[str, Any]]) -> str:
    out = []
    for c in checks:
        status = {True: "PASS", False: "FAIL", None: "n/a "}[c["passed"]]
        value = "-" if c["value"] is None else f"{c['value']:.2f}"
        line = f"  [{status}] {c['name']} = {value}  (target {c['target']})"
        if "ingest_time_ratio" in c:
            parts = [
                f"{k.split('_')[0]} {c[k]:.2f}"
                for k in ("ingest_time_ratio", "features_time_ratio", "baseline_time_ratio")
                if c.get(k) is not None
            ]
            if parts:
                line += "\n         time ratios: " + ", ".join(parts)
            if c.get("spark_marginal_lines_per_s"):
                line += (
                    f"\n         spark marginal throughput (fixed costs removed): "
                    f"{c['spark_marginal_lines_per_s']:,.0f} lines/s"
                )
        steps = {k: v for k, v in (c.get("step_speedups") or {}).items() if v is not None}
        if steps:
            line += "\n         per step: " + ", ".join(f"{k} {v:.2f}x" for k, v in steps.items())
        out.append(line)
    return "\n".join(out)


def consistency(entry: dict[str, Any], peer: str = "baseline") -> dict[str, Any] | None:
    """Spark's ingest report vs a peer's counts for the same file (both do the same work, so
    they should agree; templates may differ slightly: Spark mines distinct messages, the peers
    every line in file order, and drain3 is another Drain implementation)."""
    spark, baseline = entry.get("spark"), entry.get(peer)
    if not (spark and baseline):
        return None
    ingest, counts = spark["reports"]["ingest"], baseline["counts"]
    pairs = {
        "parsed lines": (ingest["parsed_lines"], counts["parsed"]),
        "lines with a session": (ingest["lines_with_session"], counts["with_session"]),
        "templates": (ingest["templates_used"], counts["templates"]),
    }
    features_sessions = spark["reports"]["features"].get("sessions")
    if features_sessions is not None:
        pairs["feature rows = sessions"] = (features_sessions, counts["sessions"])
    return {name: {"spark": a, "baseline": b, "equal": a == b} for name, (a, b) in pairs.items()}


def machine_info() -> dict[str, Any]:
    java = shutil.which("java")
    java_version = None
    if java:
        probe = subprocess.run([java, "-version"], capture_output=True, text=True)
        java_version = (probe.stderr or probe.stdout).splitlines()[0] if (probe.stderr or probe.stdout) else None
    return {
        "hostname": platform.node(),
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "python": platform.python_version(),
        "pyspark": importlib.metadata.version("pyspark"),
        "java": java_version,
    }


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/ingest_bench.py", description=__doc__.split("\n")[0])
    p.add_argument(
        "--sizes", default=DEFAULT_SIZES, help=f"comma-separated line counts, e.g. 1000000,4000000 or 1m,4m (default {DEFAULT_SIZES})"
    )
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "out", help="output directory (default bench/out)")
    p.add_argument("--day", type=check_day, default=DEFAULT_DAY, help=f"day partition to generate (default {DEFAULT_DAY})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"generator seed (default {DEFAULT_SEED})")
    p.add_argument("--anomaly-rate", type=float, default=0.03)
    p.add_argument("--driver-memory", default=DEFAULT_DRIVER_MEMORY, help="spark-submit --driver-memory (default 2g)")
    p.add_argument("--no-spark", action="store_true", help="skip the Spark path")
    p.add_argument("--no-baseline", action="store_true", help="skip the Python baseline")
    p.add_argument("--no-drain3", action="store_true", help="skip the drain3 peer")
    p.add_argument(
        "--no-core-scaling", action="store_true", help=f"skip the {ONE_CORE_MASTER} run of the Spark job at the largest size"
    )
    p.add_argument("--check", action="store_true", help="exit 3 when a target is missed")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        sizes = sorted({parse_size(s) for s in args.sizes.split(",") if s.strip()})
    except (ValueError, argparse.ArgumentTypeError) as exc:
        print(f"error: --sizes: {exc}", file=sys.stderr)
        return 2
    if not sizes:
        print("error: --sizes is empty", file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": [Path(sys.executable).name, *sys.argv],
        "machine": machine_info(),
        "settings": {
            "master": MASTER,
            "driver_memory": None if args.no_spark else args.driver_memory,
            "poll_seconds": POLL_SECONDS,
            "day": args.day,
            "seed": args.seed,
            "anomaly_rate": args.anomaly_rate,
            "lines_per_block": LINES_PER_BLOCK,
        },
        "load_avg_at_start": os.getloadavg(),
        "runs": [],
    }
    print(
        f"cpus={results['machine']['cpus']} load avg={' '.join(f'{x:.2f}' for x in results['load_avg_at_start'])} "
        f"pyspark={results['machine']['pyspark']} master={MASTER} driver memory={args.driver_memory}",
        flush=True,
    )
    status = 0
    drain3_py = None
    if not args.no_drain3:
        drain3_py, why = drain3_python()
        results["drain3"] = {"python": str(drain3_py) if drain3_py else None, "skipped": why}
        if drain3_py is None:
            print(f"drain3 skipped (its column stays empty): {why}", flush=True)
    try:
        for size in sizes:
            data = prepare_lake(out, size, args.day, args.seed, args.anomaly_rate)
            data["requested_lines"] = size
            entry: dict[str, Any] = {"data": data}
            results["runs"].append(entry)
            if not args.no_spark:
                entry["spark"] = run_spark(data, args.day, out, args.driver_memory)
            if not args.no_baseline:
                entry["baseline"] = run_baseline(data, out)
            if drain3_py is not None:
                entry["drain3"] = run_drain3(data, out, drain3_py)
            if not args.no_spark and not args.no_core_scaling and size == sizes[-1]:
                entry["spark_local1"] = run_spark(data, args.day, out, args.driver_memory, master=ONE_CORE_MASTER)
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        results["error"] = str(exc)
        status = 1
    for entry in results["runs"]:
        entry["consistency"] = consistency(entry)
        entry["consistency_drain3"] = consistency(entry, "drain3")
    rows = [summarise(entry) for entry in results["runs"] if "spark" in entry or "baseline" in entry]
    checks = target_checks(rows) if status == 0 else []
    results.update(
        finished_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        load_avg_at_end=os.getloadavg(),
        rows=rows,
        checks=checks,
    )
    write_json_atomic(out / "results.json", results)
    if rows:
        print()
        print(render_table(rows))
        print(
            "" if args.no_spark else
            f"\nspark = jobs/ingest.py --with-features via spark-submit --master {MASTER} --driver-memory "
            f"{args.driver_memory}: one process (ingest + features; the nightly DAG also validates in it); "
            "spark total s is its wall time (JVM start-up included), the step columns are the time of each "
            f"step inside it; local[1] = the same job with --master {ONE_CORE_MASTER} (largest size only). "
            "baseline = bench/baseline.py, drain3 = bench/drain3_peer.py (drain3 0.9.11): one Python "
            "process each, interpreter start-up included. Ratios are of lines/s."
        )
        print(
            f"load average (1 min) at start {results['load_avg_at_start'][0]:.2f}, at end "
            f"{results['load_avg_at_end'][0]:.2f} on {results['machine']['cpus']} cpus: other work on the "
            "machine affects the figures."
        )
    for row in rows:
        cpus = results["machine"]["cpus"] or 1
        parts = [
            f"{what} {row[key + '_cpu_s']:.1f} s in {row[key + '_s']:.1f} s wall ({row[key + '_cpu_s'] / row[key + '_s']:.2f} cores)"
            for what, key in (("spark", "spark_total"), ("local[1]", "spark1_total"), ("baseline", "baseline"),
                              ("drain3", "drain3"))
            if row.get(key + "_cpu_s") is not None and row.get(key + "_s")
        ]
        if parts:
            print(f"[{row['size']}] CPU used (of {cpus} cores): " + "; ".join(parts))
    for entry in results["runs"]:
        for peer in ("baseline", "drain3"):
            found = entry.get("consistency" if peer == "baseline" else "consistency_drain3")
            if found:
                label = size_label(entry["data"]["requested_lines"])
                parts = [
                    f"{name} {c['spark']:,}" if c["equal"] else f"{name} DIFFER (spark {c['spark']:,}, {peer} {c['baseline']:,})"
                    for name, c in found.items()
                ]
                print(f"[{label}] spark vs {peer}: " + "; ".join(parts))
    if checks:
        print("\ntargets:")
        print(render_checks(checks))
    print(f"\nresults: {out / 'results.json'}")
    if status == 0 and args.check and any(c["passed"] is False for c in checks):
        return 3
    return status


if __name__ == "__main__":
    raise SystemExit(main())
