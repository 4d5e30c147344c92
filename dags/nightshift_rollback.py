"""
### Nightshift rollback

Moves a source's `champion` alias back in one step: to the `previous` alias, or to the version
given in `to_version`. Versions that never passed the promotion gate are refused unless `force`
is set. The move is recorded in the promotion log (`nightshift promotions --source <s>`), with the
run that made it and the reason you give. The same is available from the command line:
`nightshift rollback --source hdfs --reason "..."`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task


@dag(
    dag_id="nightshift_rollback",
    schedule=None,
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["nightshift"],
    # a registry alias move: minutes at most; a hung task must not block the next rollback
    default_args={"execution_timeout": timedelta(minutes=10)},
    params={
        "source": Param("hdfs", type="string", pattern="^[a-z][a-z0-9_]*$", title="Log source"),
        "to_version": Param(None, type=["null", "string"], pattern="^[0-9]+$", title="Version",
                            description="empty = the 'previous' alias"),
        "force": Param(False, type="boolean", title="Force",
                       description="allow a version that never passed the promotion gate"),
        "reason": Param("", type="string", minLength=3, title="Reason", description="recorded in the promotion log"),
    },
)
def nightshift_rollback():
    @task
    def roll_back_champion(params=None, run_id=None) -> dict:
        """Move champion back and record it in the promotion log."""
        from nightshift.rollback import rollback
        from nightshift.settings import load_settings
        from nightshift.training import load_training_config

        settings = load_settings()
        model_name = load_training_config(settings.config_dir).model_name(params["source"])
        return rollback(settings, model_name, to_version=params.get("to_version"), force=bool(params["force"]),
                        decided_by=f"airflow:{run_id}", reason=params["reason"])

    roll_back_champion()


nightshift_rollback()
