"""Airflow Assets shared by the DAGs (declarations only: importing this module does no work)."""

from airflow.sdk import Asset

# Emitted by the nightly DAG once a day's session features have passed validation. The event's
# ``extra`` carries ``{"source": ..., "day": ...}``; the scoring DAG is scheduled on it.
VALIDATED_FEATURES = Asset(name="nightshift_validated_features", uri="nightshift://features/validated")

# Emitted by the scoring DAG when a night's predictions are suspect (prediction or input drift):
# ``extra`` is ``{"requests": [{"source", "day", "version", "reasons"}]}``, ``version`` the champion
# whose predictions were suspect. The ``nightshift_retraining`` DAG is scheduled on it: it waits for
# the day's labels, then triggers ``nightshift_nightly`` for the day unless another version is
# champion by then or a night already trained or evaluated with those labels
# (``nightshift.retraining``).
RETRAINING_REQUESTED = Asset(name="nightshift_retraining_requested", uri="nightshift://models/retraining-requested")
