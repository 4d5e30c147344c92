"""What a task of the nightly loop needs, built once per task: settings, the lake, the training
config and the promotion policy (``config/*.yaml``).

DAG tasks call :meth:`TaskContext.load` once at the top and pass the pieces on, instead of each
task reloading settings and re-reading the YAML files in its own way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from nightshift.gate import GatePolicy, load_policy
from nightshift.lake import Lake
from nightshift.settings import Settings, load_settings
from nightshift.training import TrainingConfig, load_training_config


@dataclass(frozen=True)
class TaskContext:
    settings: Settings
    training: TrainingConfig
    policy: GatePolicy

    @classmethod
    def load(cls, settings: Settings | None = None) -> "TaskContext":
        """Read the environment's settings and the config files they point at (at run time only)."""
        settings = settings or load_settings()
        return cls(settings, load_training_config(settings.config_dir), load_policy(settings.config_dir))

    @cached_property
    def lake(self) -> Lake:
        return Lake(self.settings.data_root)

    def model_name(self, source: str) -> str:
        """The registered model of ``source``."""
        return self.training.model_name(source)
