"""One-step rollback of the ``champion`` alias, recorded in the promotion log.

By default the champion goes back to the ``previous`` alias; a version can be named instead.
Versions that never passed the promotion gate (tag ``nightshift.gate_passed`` is not ``true``) are
refused unless forced, so a rollback cannot silently install an unvetted model. The move goes
through ``nightshift.registry.move_champion`` (locked, compare-and-swap, written ahead).
"""

from __future__ import annotations

from typing import Any

from nightshift import registry
from nightshift.registry import PREVIOUS


class RollbackRefused(RuntimeError):
    """The rollback target is missing, already champion, or never passed the gate (without force)."""


def rollback(settings, model_name: str, *, to_version: str | None = None, force: bool = False,
             decided_by: str, reason: str, expected_champion: str | None = None) -> dict[str, Any]:
    """Move ``champion`` to ``to_version`` (default: the ``previous`` alias); returns the log entry.

    ``expected_champion``: the champion the caller judged (the champion watch passes the version
    it saw failing); when given and the champion is another version by the time the move runs,
    :class:`nightshift.registry.ChampionChanged` is raised and nothing moves. Without it the
    champion read here is the one rolled back from.
    """
    registry.reconcile(settings, model_name)
    c = registry.client(settings)
    current = registry.champion(c, model_name)
    if to_version:
        target = registry.get_version(settings, model_name, str(to_version))
    else:
        target = registry.alias(c, model_name, PREVIOUS)
    if target is None:
        what = f"version {to_version}" if to_version else f"'{PREVIOUS}' alias"
        raise RollbackRefused(f"{model_name} has no {what} to roll back to")
    if current is not None and str(current.version) == str(target.version):
        raise RollbackRefused(f"{model_name} v{target.version} is already champion")
    passed = (target.tags or {}).get("nightshift.gate_passed") == "true"
    if not passed and not force:
        raise RollbackRefused(
            f"{model_name} v{target.version} never passed the promotion gate "
            f"(nightshift.gate_passed={(target.tags or {}).get('nightshift.gate_passed')!r}); use force to override"
        )
    note = reason + ("" if passed else " [forced: target never passed the gate]")
    expected = str(expected_champion) if expected_champion is not None else (str(current.version) if current else None)
    return registry.move_champion(settings, model_name, str(target.version), expected_champion=expected,
                                  action="rollback", decided_by=decided_by, reason=note, mlflow_run_id=target.run_id)
