"""Exclusive, crash-safe locks for state changes that must be serialised.

Two backends behind one context manager, :func:`exclusive`:

* **PostgreSQL advisory lock** when ``NIGHTSHIFT_LOCK_URL`` names a PostgreSQL database (the
  deployed stack points it at the metadata database): works across hosts, and is released by the
  server when the holder's connection drops, so a killed process never leaves it held.
* **File lock** (``flock``) on ``<lake>/_locks/<name>.lock`` otherwise (the embedded default):
  released by the kernel when the holder dies. On several hosts it needs a lake on a file system
  with working ``flock`` (NFSv4, CephFS, ...).

Lock names are plain strings such as ``registry:log_anomaly_hdfs`` or ``templates:hdfs``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("nightshift.locks")

DEFAULT_TIMEOUT_S = 600.0
_POLL_S = 0.2


class LockTimeout(TimeoutError):
    """The lock was held by someone else for longer than the caller was willing to wait."""


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` (the same in every process)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".lock"


@contextlib.contextmanager
def exclusive(settings, name: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[str]:
    """Hold the exclusive lock ``name`` for the ``with`` block; yields a description of the lock.

    Waits up to ``timeout_s`` (logging who waits), then raises :class:`LockTimeout`.
    """
    url = getattr(settings, "lock_url", None)
    if url and url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres"):
        with _postgres_lock(url, name, timeout_s) as what:
            yield what
    else:
        with _file_lock(Path(settings.data_root) / "_locks" / _file_name(name), name, timeout_s) as what:
            yield what


@contextlib.contextmanager
def _file_lock(path: Path, name: str, timeout_s: float) -> Iterator[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _wait(lambda: _try_flock(fd), name, timeout_s)
        try:
            yield f"file lock {path}"
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


@contextlib.contextmanager
def _postgres_lock(url: str, name: str, timeout_s: float) -> Iterator[str]:
    import psycopg2

    dsn = re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)
    conn = psycopg2.connect(dsn, connect_timeout=10, application_name=f"nightshift-lock:{name}"[:63])
    conn.autocommit = True
    key = _advisory_key(name)
    try:
        with conn.cursor() as cur:
            def attempt() -> bool:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                return bool(cur.fetchone()[0])

            _wait(attempt, name, timeout_s)
            try:
                yield f"postgres advisory lock {key} ({name})"
            finally:
                cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        conn.close()


def _wait(attempt, name: str, timeout_s: float) -> None:
    started = time.monotonic()
    warned = False
    while not attempt():
        waited = time.monotonic() - started
        if waited >= timeout_s:
            raise LockTimeout(f"lock {name!r} still held by another process after {waited:.0f} s; giving up")
        if not warned:
            log.info("waiting for lock %r (held by another run)", name)
            warned = True
        time.sleep(_POLL_S)
