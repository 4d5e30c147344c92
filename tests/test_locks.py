"""The exclusive locks: both backends serialise, time out, and are released when the holder dies."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nightshift.locks import LockTimeout, exclusive

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _postgres_up() -> bool:
    try:
        import psycopg2

        psycopg2.connect(PG_URL, connect_timeout=3).close()
        return True
    except Exception:
        return False


@dataclass(frozen=True)
class _Settings:
    data_root: Path
    lock_url: str | None = None


@pytest.fixture(params=["file", "postgres"])
def settings(request, tmp_path):
    if request.param == "postgres":
        if not _postgres_up():
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL}: the postgres lock backend needs it")
        return _Settings(tmp_path, PG_URL)
    return _Settings(tmp_path)


_HOLDER = """
import sys, time
from dataclasses import dataclass
from pathlib import Path
from nightshift.locks import exclusive
@dataclass(frozen=True)
class S:
    data_root: Path
    lock_url: str | None
with exclusive(S(Path(sys.argv[1]), sys.argv[2] or None), sys.argv[3]):
    print("held", flush=True)
    time.sleep(float(sys.argv[4]))
"""


def _hold_in_subprocess(settings, name: str, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(settings.data_root), settings.lock_url or "", name,
                             str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_is_exclusive_across_processes_and_times_out(settings):
    proc = _hold_in_subprocess(settings, "registry:m", 30)
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout, match="registry:m"):
            with exclusive(settings, "registry:m", timeout_s=1.0):
                pass
        assert time.monotonic() - started >= 1.0
        with exclusive(settings, "registry:other", timeout_s=1.0):   # other names are independent
            pass
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_holder_is_released(settings):
    proc = _hold_in_subprocess(settings, "templates:hdfs", 60)
    proc.kill()     # SIGKILL: no cleanup code runs in the holder
    proc.wait()
    with exclusive(settings, "templates:hdfs", timeout_s=10.0) as what:
        assert what


def test_waiter_gets_the_lock_when_the_holder_finishes(settings):
    proc = _hold_in_subprocess(settings, "registry:m", 1.0)
    try:
        started = time.monotonic()
        with exclusive(settings, "registry:m", timeout_s=30.0):
            assert time.monotonic() - started > 0.3
    finally:
        proc.wait()
