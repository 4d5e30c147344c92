"""Run-time settings, read from environment variables with local defaults.

Everything that differs between a laptop and the docker-compose stack is here, and only here:

| variable                      | default                                   |
|-------------------------------|-------------------------------------------|
| ``NIGHTSHIFT_DATA_ROOT``      | ``<project>/data``                        |
| ``NIGHTSHIFT_SOURCES_DIR``    | ``<project>/sources``                     |
| ``NIGHTSHIFT_CONFIG_DIR``     | ``<project>/config``                      |
| ``NIGHTSHIFT_EXPECTATIONS_DIR`` | ``<project>/expectations``              |
| ``MLFLOW_TRACKING_URI``       | ``sqlite:///<data root>/mlflow/mlflow.db`` |
| ``NIGHTSHIFT_LOCK_URL``       | unset: file locks in ``<data root>/_locks``; a ``postgresql://`` URL: advisory locks |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _path_from_env(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class Settings:
    data_root: Path
    sources_dir: Path
    config_dir: Path
    expectations_dir: Path
    mlflow_tracking_uri: str
    lock_url: str | None = None

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.data_root / "mlflow" / "artifacts"


def load_settings() -> Settings:
    """Build settings from the environment (called at run time, never at import time)."""
    data_root = _path_from_env("NIGHTSHIFT_DATA_ROOT", PROJECT_ROOT / "data")
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{data_root / 'mlflow' / 'mlflow.db'}"
    return Settings(
        data_root=data_root,
        sources_dir=_path_from_env("NIGHTSHIFT_SOURCES_DIR", PROJECT_ROOT / "sources"),
        config_dir=_path_from_env("NIGHTSHIFT_CONFIG_DIR", PROJECT_ROOT / "config"),
        expectations_dir=_path_from_env("NIGHTSHIFT_EXPECTATIONS_DIR", PROJECT_ROOT / "expectations"),
        mlflow_tracking_uri=tracking_uri,
        lock_url=os.environ.get("NIGHTSHIFT_LOCK_URL") or None,
    )
