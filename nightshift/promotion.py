"""Evaluation against the champion and promotion through MLflow registry aliases.

Rules (thresholds from ``config/training.yaml``):
- no champion yet: promote the best candidate if its holdout F1 reaches the absolute floor;
- otherwise: promote only when the best candidate beats the champion's F1 on the same holdout by
  at least the margin. The old champion keeps the ``previous`` alias.
The night's best candidate is always registered (alias ``challenger``) and tagged with the
decision and its reason, so every decision can be audited from the registry.
"""

from __future__ import annotations

import logging
from typing import Any

from nightshift.lake import Lake
from nightshift.training import TrainingConfig, TrainingPlan, classification_metrics, load_labelled_sessions, setup_mlflow

CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous", "challenger"
PROMOTED, KEPT, SKIPPED = "promoted", "kept", "skipped"
log = logging.getLogger("nightshift.promotion")


def decide(best: dict[str, Any], champion_f1: float | None, config: TrainingConfig) -> tuple[str, str]:
    """The promotion rule, pure: returns (decision, reason)."""
    f1 = best["metrics"]["f1"]
    name = best["candidate"]
    if champion_f1 is None:
        if f1 >= config.floor:
            return PROMOTED, f"no champion yet; {name} F1 {f1:.3f} >= floor {config.floor:.3f}"
        return KEPT, f"no champion yet; best {name} F1 {f1:.3f} < floor {config.floor:.3f}"
    if f1 >= champion_f1 + config.margin:
        return PROMOTED, f"{name} F1 {f1:.3f} beats champion {champion_f1:.3f} by >= margin {config.margin:.3f}"
    return KEPT, f"{name} F1 {f1:.3f} does not beat champion {champion_f1:.3f} by margin {config.margin:.3f}"


def champion_version(client, model_name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


def evaluate_candidates(settings, config: TrainingConfig, plan: TrainingPlan, results: list[dict[str, Any]], dry_run: bool) -> dict[str, Any]:
    """Score the champion on the plan's holdout, pick the best candidate, register it, decide.

    Returns the decision record (moved into effect by :func:`apply_decision`).
    """
    import mlflow
    from mlflow import MlflowClient

    from nightshift.modeling import to_model_input

    if not results:
        raise ValueError("no candidate results to evaluate")
    setup_mlflow(settings, config.experiment_name(plan.source))
    client = MlflowClient()
    model_name = config.model_name(plan.source)
    ranked = sorted(results, key=lambda r: (-r["metrics"]["f1"], r["candidate"]))
    best = ranked[0]

    champion = champion_version(client, model_name)
    champion_metrics = None
    if champion is not None:
        holdout = load_labelled_sessions(Lake(settings.data_root), plan.source, [plan.holdout_day])
        model = mlflow.sklearn.load_model(f"models:/{model_name}@{CHAMPION}")
        X = to_model_input(holdout)
        champion_metrics = classification_metrics(holdout["label"].to_numpy(), model.predict(X), model.predict_proba(X)[:, 1])
    decision, reason = decide(best, champion_metrics["f1"] if champion_metrics else None, config)

    version = mlflow.register_model(best["model_uri"], model_name)
    record = {
        "source": plan.source,
        "day": plan.day,
        "holdout_day": plan.holdout_day,
        "train_days": list(plan.train_days),
        "candidates": {r["candidate"]: r["metrics"] for r in ranked},
        "candidate_runs": {r["candidate"]: r["run_id"] for r in ranked},
        "best_candidate": best["candidate"],
        "best_run_id": best["run_id"],
        "model_name": model_name,
        "challenger_version": version.version,
        "champion_before": champion.version if champion else None,
        "champion_metrics": champion_metrics,
        "decision": decision,
        "reason": reason,
        "dry_run": bool(dry_run),
        "margin": config.margin,
        "floor": config.floor,
    }
    for key, value in {
        "nightshift.day": plan.day, "nightshift.holdout_day": plan.holdout_day, "nightshift.candidate": best["candidate"],
        "nightshift.decision": decision + (" (dry run)" if dry_run else ""), "nightshift.reason": reason,
        "nightshift.holdout_f1": f"{best['metrics']['f1']:.4f}",
        "nightshift.champion_f1": f"{champion_metrics['f1']:.4f}" if champion_metrics else "none",
    }.items():
        client.set_model_version_tag(model_name, version.version, key, value)
    client.set_registered_model_alias(model_name, CHALLENGER, version.version)
    return record


def apply_decision(settings, config: TrainingConfig, record: dict[str, Any]) -> dict[str, Any]:
    """Move the aliases if the decision is to promote (and this is not a dry run); record it.

    Writes the decision report to the lake and logs it as ``decision.json`` on the best run.
    """
    from mlflow import MlflowClient

    setup_mlflow(settings, config.experiment_name(record["source"]))
    client = MlflowClient()
    model_name = record["model_name"]
    if record["decision"] == PROMOTED and not record["dry_run"]:
        current = champion_version(client, model_name)
        if current is not None:
            client.set_registered_model_alias(model_name, PREVIOUS, current.version)
        client.set_registered_model_alias(model_name, CHAMPION, record["challenger_version"])
    after = champion_version(client, model_name)
    record = {**record, "champion_after": after.version if after else None}
    client.log_dict(record["best_run_id"], record, "decision.json")
    Lake(settings.data_root).write_report(record["source"], record["day"], "decision", record)
    log.info("decision for %s %s: %s (%s); champion now %s", record["source"], record["day"], record["decision"],
             record["reason"], record["champion_after"])
    return record


def record_skip(settings, source: str, day: str, reason: str, plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record a night on which no training or promotion happened, and why."""
    record = {"source": source, "day": day, "decision": SKIPPED, "reason": reason, "plan": plan}
    Lake(settings.data_root).write_report(source, day, "decision", record)
    return record
