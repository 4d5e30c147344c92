"""A class-data-sharing archive of the Spark driver's JVM classes: faster Spark start-ups.

Every Spark application on this machine (a night's ``spark-submit``, ``nightshift try-source
--engine spark``, a test's SparkSession) starts a JVM that loads and verifies some 10,000 classes of Spark, Hadoop,
Scala and Janino before doing any work. The JDK's application class-data sharing (AppCDS, JDK 13+:
``-XX:ArchiveClassesAtExit`` writes the classes a run loaded into an archive,
``-XX:SharedArchiveFile`` maps it into later JVMs) skips that work. Measured on the 2-core
development machine: the nightly DAG's Spark job on a demo day in 30.6-31.4 s instead of
36.3-37.5 s, ``try-source --engine spark`` on a 2,000-line sample in 8.2-11.3 s instead of 13.1-14.6 s
(``bench/README.md`` has the commands).

* :func:`build` writes the archive once per virtualenv (``make venv`` runs it): a short Spark
  workload (``try-source`` on a few generated lines: text read, the format regex, Parquet write and
  read, aggregations) in a JVM started with ``-XX:ArchiveClassesAtExit``. The JVM writes the archive
  as it exits, into a temporary file that is renamed into place only once the JVM has exited
  cleanly, so a reader never maps a half-written archive.
* :func:`submit_opts` gives the JVM options that use it; :func:`with_archive` adds them to an
  environment's ``SPARK_SUBMIT_OPTS``, which ``spark-submit`` (and PySpark, which launches its JVM
  through it) puts on the driver's command line. ``nightshift.localenv`` does so for the demo, the
  DAGs' Spark tasks and the tests; ``nightshift try-source`` for itself when it runs Spark.
* It is only ever an optimisation: no archive (not built yet, or ``NIGHTSHIFT_SPARK_CLASS_ARCHIVE=off``)
  means no option; an archive the JVM cannot use (another JDK, another Spark) is ignored by the JVM
  itself (``-Xshare:auto``), silently (``-Xlog:cds=off``), and the run starts as it would without.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# a path to use instead of the virtualenv's archive, or "off"
ARCHIVE_ENV = "NIGHTSHIFT_SPARK_CLASS_ARCHIVE"
# CDS's own messages (classes it skips when dumping, an archive it cannot map) stay off the console
_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
_BUILD_TIMEOUT_S = 600


def _java_binary() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    java = Path(java_home, "bin", "java") if java_home else shutil.which("java")
    return str(Path(java).resolve()) if java and Path(java).exists() else None


def archive_path() -> Path | None:
    """Where the archive for this virtualenv's Spark and this JDK lives (``None``: switched off).

    The name carries a digest of the PySpark version and the Java binary, so a new JDK or Spark
    gets an archive of its own (the JVM would refuse a stale one anyway)."""
    override = os.environ.get(ARCHIVE_ENV, "")
    if override.lower() == "off":
        return None
    if override:
        return Path(override)
    try:
        from importlib.metadata import version

        spark_version = version("pyspark")
    except Exception:   # noqa: BLE001 - no PySpark: nothing to archive
        return None
    key = hashlib.sha256(f"{spark_version}|{_java_binary()}".encode()).hexdigest()[:12]
    return Path(sys.prefix) / "share" / "nightshift" / f"spark-classes-{key}.jsa"


def submit_opts() -> str:
    """JVM options that map the archive; empty when there is none."""
    path = archive_path()
    if path is None or not path.is_file():
        return ""
    return f"-XX:SharedArchiveFile={path} -Xshare:auto {_QUIET}"


def with_archive(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the archive's options added to ``SPARK_SUBMIT_OPTS`` (once; kept as it is when
    there is no archive, or when it already names one)."""
    opts = submit_opts()
    current = env.get("SPARK_SUBMIT_OPTS", "")
    if opts and "SharedArchiveFile" not in current and "ArchiveClassesAtExit" not in current:
        env["SPARK_SUBMIT_OPTS"] = f"{current} {opts}".strip()
    return env


def build(path: Path | None = None, timeout: float = _BUILD_TIMEOUT_S) -> Path:
    """Write the archive (replacing an older one) and return its path. Raises ``RuntimeError`` with
    the workload's output when the JVM could not write it."""
    path = Path(path) if path else archive_path()
    if path is None:
        raise RuntimeError(f"the class archive is switched off ({ARCHIVE_ENV}=off)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    env = dict(os.environ)
    env.pop(ARCHIVE_ENV, None)
    env["SPARK_SUBMIT_OPTS"] = f"-XX:ArchiveClassesAtExit={tmp} {_QUIET}"
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    try:
        proc = subprocess.run([sys.executable, "-m", "nightshift.jvm_archive", "_workload"], env=env,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            raise RuntimeError(f"the JVM wrote no class archive (exit {proc.returncode}):\n"
                               f"{(proc.stdout + proc.stderr)[-3000:]}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# a few lines of each shape the workload parses (HDFS's format, one line that does not match)
_SAMPLE_LINES = [
    "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating",
    "081109 203807 222 INFO dfs.DataNode$PacketResponder: Received block blk_-6952295868487656571 of size 67108864 from /10.251.42.84",
    "081109 204005 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: blockMap updated: 10.251.73.220:50010 is added to blk_7128370237687728475 size 67108864",
    "081109 204015 308 INFO dfs.DataNode$PacketResponder: PacketResponder 2 for block blk_8229193803249955061 terminating",
    "081109 204106 329 INFO dfs.DataNode$PacketResponder: PacketResponder 2 for block blk_-6670958622368987959 terminating",
    "081109 204132 26 INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /user/root/rand/_temporary/part-00000. blk_-5009020203888190378",
    "not a log line at all",
]


def _workload() -> int:
    """What the archive is made from: ``try-source`` on generated lines, in a local Spark whose JVM
    was started with ``-XX:ArchiveClassesAtExit`` (by :func:`build`). Waits for the JVM to exit, so
    that the archive is complete when this process returns."""
    import io

    from pyspark import SparkContext

    from nightshift.cli import try_source
    from nightshift.settings import load_settings
    from nightshift.sources import load_source
    from nightshift.spark import get_spark

    spark = get_spark("nightshift-class-archive", master="local[2]", conf={"spark.ui.enabled": "false"})
    with tempfile.TemporaryDirectory(prefix="nightshift-archive-") as tmp:
        log = Path(tmp) / "sample.log"
        log.write_text("\n".join(_SAMPLE_LINES * 20) + "\n")
        try_source(spark, load_source("hdfs", load_settings().sources_dir), log, Path(tmp) / "lines.csv", 5,
                   out=io.StringIO(), day="2008-11-09")
    gateway = SparkContext._gateway
    spark.stop()
    # the JVM exits when its stdin closes (PythonGatewayServer), and writes the archive as it exits
    proc = getattr(gateway, "proc", None)
    gateway.shutdown()
    if proc is not None:
        proc.stdin.close()
        proc.wait(timeout=_BUILD_TIMEOUT_S)
        return proc.returncode
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["_workload"]:
        return _workload()
    if args == ["build"]:
        import time

        started = time.monotonic()
        try:
            path = build()
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            # an optimisation only: Spark runs without it, just slower to start
            print(f"warning: no Spark class archive ({exc}); Spark start-ups will be slower", file=sys.stderr)
            return 0
        print(f"Spark class archive: {path} ({path.stat().st_size / 2**20:.0f} MiB, "
              f"{time.monotonic() - started:.0f} s)")
        return 0
    if args == ["path"]:
        print(archive_path() or "off")
        return 0
    print("usage: python -m nightshift.jvm_archive build | path", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
