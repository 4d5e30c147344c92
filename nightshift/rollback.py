"""One-step rollback of the ``champion`` alias, recorded in the promotion log.

By default the champion goes back to the ``previous`` alias; a version can be named instead.
Versions that never passed the promotion gate (tag ``nightshift.gate_passed`` is not ``true``) are
refused unless forced, so a rollback cannot silently install an unvetted model.
"""

from __future__ import annotations

from typing import Any

from nightshift.promotion import PREVIOUS, champion_version, move_champion


class RollbackRefused(RuntimeError):
    """The rollback target is missing, already champion, or never passed the gate (without force)."""


def rollback(settings, model_name: str, *, to_version: str | None = None, force: bool = False,
             decided_by: str, reason: str) -> dict[str, Any]:
    """Move ``champion`` to ``to_version`` (default: the ``previous`` alias); returns the log entry."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    current = champion_version(client, model_name)
    try:
        target = (client.get_model_version(model_name, str(to_version)) if to_version
                  else client.get_model_version_by_alias(model_name, PREVIOUS))
    except MlflowException as exc:
        what = f"version {to_version}" if to_version else f"'{PREVIOUS}' alias"
        raise RollbackRefused(f"{model_name} has no {what} to roll back to") from exc
    if current is not None and str(current.version) == str(target.version):
        raise RollbackRefused(f"{model_name} v{target.version} is already champion")
    passed = (target.tags or {}).get("nightshift.gate_passed") == "true"
    if not passed and not force:
        raise RollbackRefused(
            f"{model_name} v{target.version} never passed the promotion gate "
            f"(nightshift.gate_passed={target.tags.get('nightshift.gate_passed')!r}); use force to override"
        )
    note = reason + ("" if passed else " [forced: target never passed the gate]")
    return move_champion(settings, model_name, str(target.version), action="rollback", decided_by=decided_by,
                         reason=note, mlflow_run_id=target.run_id, day=None, metrics=None, current=current)
