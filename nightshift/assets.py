"""Airflow Assets shared by the DAGs (declarations only: importing this module does no work)."""

from airflow.sdk import Asset

# Emitted by the nightly DAG once a day's session features have passed validation. The event's
# ``extra`` carries ``{"source": ..., "day": ...}``; the scoring DAG is scheduled on it.
VALIDATED_FEATURES = Asset(name="nightshift_validated_features", uri="nightshift://features/validated")

# Emitted by the scoring DAG when a night's predictions are suspect (prediction or input drift):
# ``extra`` is ``{"source", "day", "reasons"}``. The nightly DAG's next run for the source retrains
# anyway; the event is the request on record (Assets view), for a deployment that schedules a
# retraining on it once the day's labels are there.
RETRAINING_REQUESTED = Asset(name="nightshift_retraining_requested", uri="nightshift://models/retraining-requested")
