"""
### Nightshift retraining requests

Consumes the retraining requests of the scoring DAG: a night whose predictions were suspect
(prediction drift or input drift) cannot be judged before its labels arrive; once they are there,
the day is retrained with `nightshift_nightly`, unless that is no longer needed.

`resolve_requests` → per request (a mapped task group): `wait_for_labels` → `decide` →
`trigger_nightly`

* **Trigger**: the Asset `nightshift_retraining_requested`, emitted by `flag_suspect_predictions`
  in `nightshift_scoring` with `{"requests": [{"source", "day", "version", "reasons"}]}` (`version`:
  the champion whose predictions were suspect). A manual trigger sets `source`, `day` and
  `version` in the form instead.
* **wait_for_labels**: a sensor in `reschedule` mode (it holds no worker slot between looks) until
  the day is labelled the way training decides it (a labels file that passed validation, or labels
  carried by the lines) and no `nightshift_nightly` run is queued or running. It looks every
  `labels_poke_interval_minutes` and gives up after `labels_max_wait_hours` (`retraining` in
  `config/drift.yaml`, read when this file is parsed), failing with the reason and a
  `labels_overdue` alert.
* **decide**: skipped, saying why in its log, when the request is **stale** (another version is
  champion by now) or **satisfied** (a night's training plan already used the day, as holdout or
  training day, after its labels arrived); otherwise `trigger_nightly` starts `nightshift_nightly`
  with `{"source", "day", "retrain_for_version"}` (that run, too, does nothing if the champion has
  changed by the time it starts).
* One run at a time: two requests for one day never start two retrainings; a request whose
  labels never come holds the next ones for at most the maximum wait.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task, task_group

from nightshift.assets import RETRAINING_REQUESTED
from nightshift.dag_params import day_param, source_param, version_param
from nightshift.notifiers import TaskFailedNotifier
from nightshift.retraining import NIGHTLY_DAG_ID, load_label_wait

# the sensor's schedule is part of the DAG's definition, so config/drift.yaml is read at parse time
# (a small YAML file, no look-up)
LABEL_WAIT = load_label_wait()
PYTHON_TASK_TIMEOUT = timedelta(minutes=10)


@dag(
    dag_id="nightshift_retraining",
    schedule=[RETRAINING_REQUESTED],
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    description="Retrains a day whose predictions were suspect once its labels are there, unless stale or already done",
    doc_md=__doc__,
    tags=["nightshift"],
    default_args={"retries": 0, "execution_timeout": PYTHON_TASK_TIMEOUT, "on_failure_callback": TaskFailedNotifier()},
    params={
        "source": source_param("Name of a source declared in sources/<name>.yaml (used with 'day')"),
        "day": day_param("Day to retrain for", "YYYY-MM-DD; empty = the requests of the triggering asset events"),
        "version": version_param("Suspect champion version",
                                 "The version whose predictions were suspect: nothing is retrained once "
                                 "another version is champion. Empty = no such check"),
    },
)
def nightshift_retraining():
    @task
    def resolve_requests(params=None, triggering_asset_events=None) -> list[dict]:
        """The retraining requests this run handles (from the form, or the triggering events)."""
        from nightshift.retraining import describe, retraining_requests

        events = (triggering_asset_events or {}).get(RETRAINING_REQUESTED) or []
        requests = retraining_requests(params, [event.extra for event in events])
        if not requests:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException("the triggering asset events carry no retraining request")
        for request in requests:
            print(f"retraining request: {describe(request)}: {'; '.join(request['reasons']) or 'no reason given'}")
        return requests

    @task_group
    def handle_request(request: dict):
        @task.sensor(mode="reschedule", poke_interval=LABEL_WAIT.poke_interval.total_seconds(),
                     # a backstop: the poke below gives up first, with the reason and an alert
                     timeout=(LABEL_WAIT.max_wait + LABEL_WAIT.poke_interval).total_seconds(),
                     on_failure_callback=None)      # its labels_overdue alert says it already
        def wait_for_labels(request: dict, ti=None):
            """Until the day is labelled and no nightly run is queued or running; gives up after
            the maximum wait with the reason and a ``labels_overdue`` alert."""
            import datetime as dt

            from airflow.sdk import PokeReturnValue, get_current_context
            from airflow.sdk.exceptions import AirflowSensorTimeout

            from nightshift.context import TaskContext
            from nightshift.retraining import describe, labels_overdue, waiting_for

            ctx = TaskContext.load()
            in_progress = ti.get_dr_count(dag_id=NIGHTLY_DAG_ID, states=["queued", "running"])
            why = waiting_for(ctx.settings, ctx.lake, request["source"], request["day"], in_progress)
            if why is None:
                print(f"{describe(request)}: labels are there and no night is in progress: deciding")
                return PokeReturnValue(is_done=True, xcom_value=request)
            # measured from the first poke (the first one always reschedules): a slow task start
            # on a busy worker must not use up the wait before the sensor has looked once
            now = dt.datetime.now(dt.timezone.utc)
            waited = now - (ti.get_first_reschedule_date(get_current_context()) or now)
            if waited >= LABEL_WAIT.max_wait:
                from nightshift.alerts import send_alert

                message = labels_overdue(request, waited, LABEL_WAIT, why)
                send_alert("labels_overdue", request["source"], request["day"], message, dict(request),
                           data_root=ctx.settings.data_root)
                raise AirflowSensorTimeout(message)
            print(f"waiting ({int(waited.total_seconds())} s of {int(LABEL_WAIT.max_wait.total_seconds())} s): {why}")
            return PokeReturnValue(is_done=False)

        @task
        def decide(request: dict) -> dict:
            """Stale, satisfied (skipped, with the reason) or needed: the nightly run's conf."""
            from airflow.sdk.exceptions import AirflowSkipException

            from nightshift.context import TaskContext
            from nightshift.retraining import decide as decide_request, describe

            ctx = TaskContext.load()
            outcome = decide_request(ctx.settings, ctx.model_name(request["source"]), request)
            print(f"{describe(request)}: {outcome['decision']}: {outcome['reason']}")
            if outcome["conf"] is None:
                raise AirflowSkipException(f"{outcome['decision']}: {outcome['reason']}")
            return outcome["conf"]

        TriggerDagRunOperator(
            task_id="trigger_nightly",
            trigger_dag_id=NIGHTLY_DAG_ID,
            conf=decide(wait_for_labels(request)),
            doc_md="Starts the nightly DAG for the request's day (conf: source, day, retrain_for_version).",
        )

    handle_request.expand(request=resolve_requests())


nightshift_retraining()
