"""The MLflow model registry, as Nightshift uses it: one client, the champion chain, its log.

* :func:`client` is the one ``MlflowClient`` of the package (tracking and registry URI from
  ``settings.mlflow_tracking_uri``).
* :func:`alias` / :func:`champion` tell "no such alias / model not registered yet" (``None``) from
  "the registry cannot be asked" (:class:`RegistryUnavailable`, naming the tracking URI): a task
  that cannot reach the registry fails (and can be retried) instead of acting as if there were
  no champion.
* :func:`move_champion` is the only code that moves ``champion`` / ``previous``. Under the lock
  ``registry:<model>`` (``nightshift.locks``) it reconciles interrupted moves, compares the
  current champion with the one the caller's decision was made against (compare-and-swap; a
  mismatch raises :class:`ChampionChanged` and changes nothing), writes the move ahead to the
  promotion log (``pending``), moves ``previous`` then ``champion``, and commits the log entry.
  Moving to the version that already is champion does nothing.
* :func:`reconcile` finishes a move that a crash interrupted (roll forward: the decision was
  taken and written ahead), so the log's committed entries always equal the chain of alias moves.
* :func:`register` registers a run's model once: a re-run reuses the version of the same run.
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from typing import Any

from nightshift import faults, locks, promotion_log

CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous", "challenger"
ALREADY_CHAMPION, MOVED = "already champion", "moved"
COMPLETED_NOTE = "completed after an interrupted move"
RECONCILED_NOTE = "aliases had moved; commit recorded after an interrupted move"
log = logging.getLogger("nightshift.registry")


class RegistryUnavailable(RuntimeError):
    """The MLflow registry could not be read or written (unreachable, or any unexpected error)."""


class ChampionChanged(RuntimeError):
    """The champion is not the one the decision was made against; nothing was changed."""


def _redact(uri: str) -> str:
    return re.sub(r"//[^/@]+@", "//***@", uri)


def _unavailable(settings_or_uri, what: str, exc: BaseException) -> RegistryUnavailable:
    uri = settings_or_uri if isinstance(settings_or_uri, str) else settings_or_uri.mlflow_tracking_uri
    return RegistryUnavailable(f"MLflow registry at {_redact(uri)} unavailable while trying to {what}: "
                               f"{exc.__class__.__name__}: {str(exc)[:500]}")


@functools.lru_cache(maxsize=16)
def _client_for(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def client(settings):
    """The package's MLflow client for ``settings.mlflow_tracking_uri`` (tracking and registry)."""
    return _client_for(settings.mlflow_tracking_uri)


def _uri_of(c) -> str:
    return getattr(c, "_registry_uri", None) or getattr(c, "tracking_uri", "?")


def _not_found(exc) -> bool:
    """MLflow 3.17: a missing model is RESOURCE_DOES_NOT_EXIST; a missing alias INVALID_PARAMETER_VALUE
    ("Registered model alias champion not found.") on both the SQL store and the REST client."""
    code = getattr(exc, "error_code", None)
    if code == "RESOURCE_DOES_NOT_EXIST":
        return True
    return code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc).lower()


def alias(c, model_name: str, name: str):
    """The model version ``name`` points at; None when the model or the alias does not exist.

    Raises :class:`RegistryUnavailable` for anything else (connection errors included)."""
    from mlflow.exceptions import MlflowException

    try:
        return c.get_model_version_by_alias(model_name, name)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise _unavailable(_uri_of(c), f"read alias {name!r} of {model_name}", exc) from exc
    except Exception as exc:          # requests / SQLAlchemy / OS errors from the store
        raise _unavailable(_uri_of(c), f"read alias {name!r} of {model_name}", exc) from exc


def champion(settings_or_client, model_name: str):
    """The champion's model version, or None when there is no champion yet (see :func:`alias`)."""
    c = settings_or_client if hasattr(settings_or_client, "get_model_version_by_alias") else client(settings_or_client)
    return alias(c, model_name, CHAMPION)


def _version(mv) -> str | None:
    return None if mv is None else str(mv.version)


def call(settings, what: str, fn, *args):
    try:
        return fn(*args)
    except Exception as exc:
        raise _unavailable(settings, what, exc) from exc


def get_version(settings, model_name: str, version: str):
    """A model version; None when it does not exist; :class:`RegistryUnavailable` otherwise."""
    from mlflow.exceptions import MlflowException

    try:
        return client(settings).get_model_version(model_name, str(version))
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise _unavailable(settings, f"read {model_name} v{version}", exc) from exc
    except Exception as exc:
        raise _unavailable(settings, f"read {model_name} v{version}", exc) from exc


def register(settings, model_name: str, model_uri: str, run_id: str):
    """Register the run's model as a version of ``model_name``, once: if a version of the same run
    exists it is returned (so a re-run of the evaluation never adds a version)."""
    import mlflow

    with locks.exclusive(settings, f"registry:{model_name}"):
        existing = call(settings, f"search versions of {model_name}", client(settings).search_model_versions,
                         f"name='{model_name}' and run_id='{run_id}'")
        if existing:
            mv = sorted(existing, key=lambda v: int(v.version))[0]
            log.info("%s: run %s is already registered as v%s; reusing it", model_name, run_id, mv.version)
            return mv
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        mlflow.set_registry_uri(settings.mlflow_tracking_uri)
        return call(settings, f"register {model_uri} as {model_name}", mlflow.register_model, model_uri, model_name)


def set_alias(settings, model_name: str, name: str, version: str) -> None:
    """Point a non-champion alias (``challenger``) at a version. ``champion``/``previous``: see
    :func:`move_champion`."""
    if name in (CHAMPION, PREVIOUS):
        raise ValueError(f"alias {name!r} moves only through move_champion")
    call(settings, f"set alias {name!r} of {model_name}", client(settings).set_registered_model_alias,
          model_name, name, str(version))


def _set(settings, model_name: str, name: str, version: str) -> None:
    call(settings, f"set alias {name!r} of {model_name} to v{version}",
          client(settings).set_registered_model_alias, model_name, name, str(version))


def _commit(settings, pending: dict[str, Any], state: str = promotion_log.COMMITTED, note: str | None = None,
            reconciled: bool = False) -> dict[str, Any]:
    entry = {k: v for k, v in pending.items() if k != "time"}
    entry.update(state=state, pending_time=pending.get("time"))
    if note:
        entry["note"] = note
    if reconciled:
        entry["reconciled"] = True
    return promotion_log.append(settings.data_root, entry)


def _reconcile_locked(settings, model_name: str) -> list[dict[str, Any]]:
    """Settle every pending move without a commit (the caller holds the registry lock)."""
    done = []
    for p in promotion_log.view(settings.data_root, model_name).pending:
        c = client(settings)
        current, previous = _version(champion(c, model_name)), _version(alias(c, model_name, PREVIOUS))
        src, dst = p.get("from_version"), str(p["to_version"])
        want_previous = src if src is not None else p.get("previous_before")
        if current == dst and previous == want_previous:
            done.append(_commit(settings, p, note=RECONCILED_NOTE, reconciled=True))
        elif current in (src, dst):
            # nothing moved yet, or only 'previous' (or a 'previous' another hand changed): finish the move
            if src is not None:
                _set(settings, model_name, PREVIOUS, src)
            if current != dst:
                _set(settings, model_name, CHAMPION, dst)
            done.append(_commit(settings, p, note=COMPLETED_NOTE, reconciled=True))
        else:
            note = (f"champion is v{current}, neither v{src} (before) nor v{dst} (after): the aliases were moved "
                    f"outside Nightshift; the interrupted move was not completed")
            done.append(_commit(settings, p, state=promotion_log.ABORTED, note=note, reconciled=True))
        log.warning("%s: interrupted move %s (v%s -> v%s) settled: %s", model_name, p.get("move_id"), src, dst,
                    done[-1].get("note"))
    return done


def reconcile(settings, model_name: str, timeout_s: float = locks.DEFAULT_TIMEOUT_S) -> list[dict[str, Any]]:
    """Settle interrupted moves (pending without a commit) against the registry, under the lock;
    returns the entries appended (empty when there was nothing to do)."""
    if not promotion_log.view(settings.data_root, model_name).pending:
        return []
    with locks.exclusive(settings, f"registry:{model_name}", timeout_s=timeout_s):
        return _reconcile_locked(settings, model_name)


def history(settings, model_name: str, timeout_s: float = 10.0) -> promotion_log.LogView:
    """The promotion log for display: interrupted moves are reconciled first when possible; when
    not (registry down, a move in progress) that is said in ``problems``."""
    view = promotion_log.view(settings.data_root, model_name)
    if view.pending:
        try:
            reconcile(settings, model_name, timeout_s=timeout_s)
            view = promotion_log.view(settings.data_root, model_name)
        except (RegistryUnavailable, locks.LockTimeout) as exc:
            view.problems.append(f"{len(view.pending)} move(s) written ahead but not committed (in progress or "
                                 f"interrupted), not reconciled now: {exc}")
    return view


def move_champion(settings, model_name: str, to_version: str, *, expected_champion: str | None, action: str,
                  decided_by: str, reason: str, mlflow_run_id: str | None = None, day: str | None = None,
                  metrics: dict | None = None, lock_timeout_s: float = locks.DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Point ``champion`` at ``to_version`` (the old champion becomes ``previous``), log the move.

    ``expected_champion`` is the champion version the decision was made against (None: "there was
    no champion"). Returns the committed log entry plus ``"status": "moved"``, or, when
    ``to_version`` already is champion, ``{"status": "already champion", ...}`` (nothing written).
    Raises :class:`ChampionChanged` (nothing changed) when the champion is no longer the expected
    one, :class:`RegistryUnavailable` when the registry cannot be reached.
    """
    to_version = str(to_version)
    expected = None if expected_champion is None else str(expected_champion)
    with locks.exclusive(settings, f"registry:{model_name}", timeout_s=lock_timeout_s):
        _reconcile_locked(settings, model_name)
        c = client(settings)
        current = _version(champion(c, model_name))
        if current == to_version:
            log.info("%s v%s is already champion: nothing to move", model_name, to_version)
            return {"status": ALREADY_CHAMPION, "model_name": model_name, "action": action, "from_version": current,
                    "to_version": to_version, "decided_by": decided_by, "reason": reason}
        if current != expected:
            now = f"v{current}" if current else "no champion"
            then = f"v{expected}" if expected else "no champion"
            raise ChampionChanged(
                f"{model_name}: champion is {now} now, the decision to {action} v{to_version} was made against "
                f"{then} (a rollback or another promotion ran in between); nothing was changed. "
                f"Re-run evaluate_candidates to judge against {now}.")
        if get_version(settings, model_name, to_version) is None:
            raise ValueError(f"{model_name} has no version {to_version}")
        previous_before = _version(alias(c, model_name, PREVIOUS))
        pending = promotion_log.append(settings.data_root, {
            "state": promotion_log.PENDING, "move_id": uuid.uuid4().hex[:16], "model_name": model_name,
            "action": action, "from_version": current, "to_version": to_version, "previous_before": previous_before,
            "decided_by": decided_by, "mlflow_run_id": mlflow_run_id, "day": day, "metrics": metrics,
            "reason": reason,
        })
        faults.point(f"{action}:after_pending")
        if current is not None:
            _set(settings, model_name, PREVIOUS, current)
        faults.point(f"{action}:between_aliases")
        _set(settings, model_name, CHAMPION, to_version)
        faults.point(f"{action}:before_commit")
        entry = _commit(settings, pending)
    log.info("%s: champion v%s -> v%s (%s by %s)", model_name, current, to_version, action, decided_by)
    return {**entry, "status": MOVED}
