"""Airflow Assets shared by the DAGs (declarations only: importing this module does no work)."""

from airflow.sdk import Asset

# Emitted by the nightly DAG once a day's session features have passed validation. The event's
# ``extra`` carries ``{"source": ..., "day": ...}``; the scoring DAG is scheduled on it.
VALIDATED_FEATURES = Asset(name="nightshift_validated_features", uri="nightshift://features/validated")
