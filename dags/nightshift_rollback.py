"""
### Nightshift rollback

Moves a source's `champion` alias back in one step: to the `previous` alias, or to the version
given in `to_version`. Versions that never passed the promotion gate are refused unless `force`
is set. The move is recorded in the promotion log (`nightshift promotions --source <s>`), with the
run that made it and the reason you give. The same is available from the command line:
`nightshift rollback --source hdfs --reason "..."`, and from the **Nightshift** view of the Airflow
UI (its "Roll back…" form shows the current champion, the `previous` version and its gate result).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from nightshift.dag_params import source_param, version_param
from nightshift.notifiers import TaskFailedNotifier


@dag(
    dag_id="nightshift_rollback",
    schedule=None,
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    description="Moves the champion back to 'previous' (or a chosen version) through the locked, logged path",
    doc_md=__doc__,
    tags=["nightshift"],
    # a registry alias move: minutes at most; a hung task must not block the next rollback
    default_args={"execution_timeout": timedelta(minutes=10), "on_failure_callback": TaskFailedNotifier()},
    params={
        "source": source_param(),
        "to_version": version_param("Version", "empty = the 'previous' alias"),
        "force": Param(False, type="boolean", title="Force",
                       description="allow a version that never passed the promotion gate"),
        "reason": Param("", type="string", minLength=3, title="Reason", description="recorded in the promotion log"),
    },
)
def nightshift_rollback():
    @task
    def roll_back_champion(params=None, run_id=None, dag_run=None) -> dict:
        """Move champion back and record it in the promotion log, as the user who triggered the run."""
        from nightshift import registry
        from nightshift.context import TaskContext
        from nightshift.rollback import RollbackRefused, rollback

        ctx = TaskContext.load()
        user = getattr(dag_run, "triggering_user_name", None)
        decided_by = f"airflow-user:{user} ({run_id})" if user else f"airflow:{run_id}"
        try:
            return rollback(ctx.settings, ctx.model_name(params["source"]), to_version=params.get("to_version"),
                            force=bool(params["force"]), decided_by=decided_by, reason=params["reason"])
        except (RollbackRefused, registry.ChampionChanged) as exc:
            # an expected refusal: its reason is the failure, no retry and no trace of our code
            raise AirflowFailException(f"rollback refused: {exc}") from None

    roll_back_champion()


nightshift_rollback()
