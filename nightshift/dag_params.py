"""The trigger-form fields the Nightshift DAGs share (Airflow ``Param``): one definition each.

The patterns are plain strings, importable without Airflow (``nightshift.retraining`` checks
requests against them); the ``Param`` factories import Airflow's SDK when called, at DAG parse time.
"""

from __future__ import annotations

SOURCE_PATTERN = "^[a-z][a-z0-9_]*$"          # a file name under sources/ (without .yaml)
DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"           # a text field: a "date" format gives a locale-dependent picker
VERSION_PATTERN = "^[0-9]+$"                   # a registered model version


def source_param(description: str = "Name of a source declared in sources/<name>.yaml"):
    from airflow.sdk import Param

    return Param("hdfs", type="string", pattern=SOURCE_PATTERN, title="Log source", description=description)


def day_param(title: str, description: str):
    """An optional day, ``YYYY-MM-DD`` (empty: the run decides, e.g. from its data interval)."""
    from airflow.sdk import Param

    return Param(None, type=["null", "string"], pattern=DAY_PATTERN, title=title, description=description)


def version_param(title: str, description: str):
    """An optional registered model version."""
    from airflow.sdk import Param

    return Param(None, type=["null", "string"], pattern=VERSION_PATTERN, title=title, description=description)
