"""Nightshift: nightly retraining for log anomaly detection.

The package holds all the logic; ``dags/``, ``jobs/`` and ``plugins/`` are thin shells around it.
"""

__version__ = "0.1.0"
