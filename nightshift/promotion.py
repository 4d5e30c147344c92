"""Evaluation against the champion, the promotion gate, and the registry aliases.

The night's best candidate (by holdout F1) is the challenger. It is registered (alias
``challenger``), checked by the gate in ``nightshift.gate`` against the champion on the same
sessions, and the decision, its reason and every check are recorded: as model version tags, as a
decision record (Markdown + images) on the challenger's MLflow run, in the lake's reports, and,
when the alias moves, in the promotion log. Modes (``config/promotion.yaml`` or the DAG param):
``auto`` moves the alias when the gate passes, ``dry_run`` moves nothing, ``manual`` waits for an
operator's approval in the Airflow UI before moving it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from nightshift import gate, promotion_log
from nightshift.lake import Lake
from nightshift.training import TrainingConfig, TrainingPlan, load_labelled_sessions, setup_mlflow

CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous", "challenger"
PROMOTED, KEPT, SKIPPED, PENDING = "promoted", "kept", "skipped", "awaiting approval"
log = logging.getLogger("nightshift.promotion")


def champion_version(client, model_name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


def _predict(model, frame) -> tuple[np.ndarray, np.ndarray]:
    from nightshift.modeling import to_model_input

    scores = model.predict_proba(to_model_input(frame))[:, 1]
    return scores, (scores >= 0.5)


def backtest_rows(settings, config: TrainingConfig, plan: TrainingPlan, candidate: str, challenger_model, champion_model,
                  policy: gate.GatePolicy) -> list[dict[str, Any]]:
    """Challenger vs champion on each of the last N labelled days.

    On a holdout day the real challenger is used; on an earlier day the candidate's configuration
    is refitted on the labelled days before it (out of sample), so no day is judged in-sample for
    the challenger. The champion may have trained on those days: the comparison favours it.
    """
    from nightshift.modeling import build_candidate, to_model_input

    lake = Lake(settings.data_root)
    days = plan.labelled_days[-policy.backtest_days:] if policy.backtest_days else ()
    spec = config.candidate(candidate)
    rows = []
    for d in days:
        frame = load_labelled_sessions(lake, plan.source, [d])
        if d in plan.holdout_days:
            model, trained_on = challenger_model, list(plan.train_days)
        else:
            earlier = [x for x in plan.labelled_days if x < d]
            if not earlier:
                continue
            train = load_labelled_sessions(lake, plan.source, earlier)
            if train["label"].nunique() < 2:
                continue
            model = build_candidate(spec["kind"], spec.get("params")).fit(to_model_input(train), train["label"].to_numpy())
            trained_on = earlier
        y = frame["label"].to_numpy()
        rows.append({"day": d, "sessions": len(frame), "trained_on": trained_on,
                     "challenger_f1": gate.metrics(y, _predict(model, frame)[1])["f1"],
                     "champion_f1": gate.metrics(y, _predict(champion_model, frame)[1])["f1"]})
    return rows


def evaluate_candidates(settings, config: TrainingConfig, policy: gate.GatePolicy, plan: TrainingPlan,
                        results: list[dict[str, Any]], mode: str, decided_by: str = "nightshift") -> dict[str, Any]:
    """Run the gate for the night's best candidate and return the decision record.

    The alias is not moved here (see :func:`apply_decision`), so a manual approval can sit between.
    """
    import mlflow
    from mlflow import MlflowClient

    if not results:
        raise ValueError("no candidate results to evaluate")
    if mode not in gate.MODES:
        raise ValueError(f"mode must be one of {gate.MODES}, got {mode!r}")
    setup_mlflow(settings, config.experiment_name(plan.source))
    client = MlflowClient()
    model_name = config.model_name(plan.source)
    lake = Lake(settings.data_root)
    holdout = load_labelled_sessions(lake, plan.source, plan.holdout_days)
    y = holdout["label"].to_numpy()

    candidates = {}
    for r in sorted(results, key=lambda r: r["candidate"]):
        model = mlflow.sklearn.load_model(r["model_uri"])
        scores, pred = _predict(model, holdout)
        interval = gate.paired_bootstrap_f1_diff(y, pred, np.zeros_like(pred), policy.bootstrap_resamples,
                                                 policy.confidence, policy.seed)
        candidates[r["candidate"]] = {**r, "model": model, "scores": scores, "pred": pred,
                                      "metrics": {**gate.metrics(y, pred), "f1_lower": interval["lower"],
                                                  "f1_upper": interval["upper"]}}
    best_name = sorted(candidates, key=lambda n: (-candidates[n]["metrics"]["f1"], n))[0]
    best = candidates[best_name]

    champion = champion_version(client, model_name)
    checks = [gate.check_floors(best["metrics"], policy)]
    champion_metrics, interval, backtest, slices, champion_scores = None, None, [], [], None
    if champion is not None:
        champion_model = mlflow.sklearn.load_model(f"models:/{model_name}/{champion.version}")
        champion_scores, champion_pred = _predict(champion_model, holdout)
        champion_metrics = gate.metrics(y, champion_pred)
        interval = gate.paired_bootstrap_f1_diff(y, best["pred"], champion_pred, policy.bootstrap_resamples,
                                                 policy.confidence, policy.seed)
        backtest = backtest_rows(settings, config, plan, best_name, best["model"], champion_model, policy)
        slices = gate.slice_table(holdout, best["pred"], champion_pred, policy.slice_columns,
                                  policy.slice_min_sessions, policy.slice_min_positives)
        checks += [gate.check_bootstrap(interval, policy), gate.check_backtest(backtest, policy),
                   gate.check_slices(slices, policy)]
    passed, reason = gate.decision_reason(checks, champion is not None)

    if not passed:
        decision = KEPT
    elif mode == "manual":
        decision = PENDING
    else:
        decision = PROMOTED
    version = mlflow.register_model(best["model_uri"], model_name)
    record = {
        "source": plan.source, "day": plan.day, "mode": mode, "decided_by": decided_by,
        "experiment": config.experiment_name(plan.source),
        "holdout_days": list(plan.holdout_days), "train_days": list(plan.train_days),
        "candidates": {n: c["metrics"] for n, c in candidates.items()},
        "candidate_runs": {n: c["run_id"] for n, c in candidates.items()},
        "best_candidate": best_name, "best_run_id": best["run_id"], "model_name": model_name,
        "challenger_version": str(version.version),
        "champion_before": str(champion.version) if champion else None,
        "champion_metrics": champion_metrics, "bootstrap": interval, "backtest": backtest, "slices": slices,
        "checks": checks, "gate_passed": passed,
        "decision": decision, "reason": reason, "dry_run": mode == "dry_run", "policy": policy.to_dict(),
    }
    for key, value in {
        "nightshift.day": plan.day, "nightshift.holdout_days": ",".join(plan.holdout_days),
        "nightshift.candidate": best_name, "nightshift.gate_passed": str(passed).lower(),
        "nightshift.decision": decision + (" (dry run)" if mode == "dry_run" else ""), "nightshift.reason": reason[:5000],
        "nightshift.holdout_f1": f"{best['metrics']['f1']:.4f}",
        "nightshift.champion_f1": f"{champion_metrics['f1']:.4f}" if champion_metrics else "none",
    }.items():
        client.set_model_version_tag(model_name, version.version, key, value)
    client.set_registered_model_alias(model_name, CHALLENGER, version.version)

    from nightshift.decision_record import log_decision_record

    record["decision_record"] = log_decision_record(settings, record, y, best["scores"], champion_scores)
    return record


def apply_decision(settings, record: dict[str, Any], approved_by: str | None = None) -> dict[str, Any]:
    """Move the aliases when the record says so (promoted, or approved while pending), write the
    decision report, log ``decision.json`` on the run, and append to the promotion log."""
    from mlflow import MlflowClient

    setup_mlflow(settings, record["experiment"])
    client = MlflowClient()
    model_name = record["model_name"]
    record = dict(record)
    if record["decision"] == PENDING and approved_by:
        record.update(decision=PROMOTED, decided_by=approved_by, reason=f"approved by {approved_by}; {record['reason']}")
        client.set_model_version_tag(model_name, record["challenger_version"], "nightshift.decision", PROMOTED)
    if record["decision"] == PROMOTED and not record["dry_run"]:
        current = champion_version(client, model_name)
        move_champion(settings, model_name, record["challenger_version"], action="promote", decided_by=record["decided_by"],
                      reason=record["reason"], mlflow_run_id=record["best_run_id"], day=record["day"],
                      metrics=record["candidates"][record["best_candidate"]], current=current)
    after = champion_version(client, model_name)
    record["champion_after"] = str(after.version) if after else None
    client.log_dict(record["best_run_id"], record, "decision.json")
    Lake(settings.data_root).write_report(record["source"], record["day"], "decision", record)
    log.info("decision for %s %s: %s (%s); champion now %s", record["source"], record["day"], record["decision"],
             record["reason"], record["champion_after"])
    return record


def move_champion(settings, model_name: str, to_version: str, *, action: str, decided_by: str, reason: str,
                  mlflow_run_id: str | None, day: str | None, metrics: dict | None, current=None) -> dict[str, Any]:
    """Point ``champion`` at ``to_version`` (the old one becomes ``previous``) and log the move."""
    from mlflow import MlflowClient

    client = MlflowClient()
    current = current if current is not None else champion_version(client, model_name)
    if current is not None:
        client.set_registered_model_alias(model_name, PREVIOUS, current.version)
    client.set_registered_model_alias(model_name, CHAMPION, str(to_version))
    return promotion_log.append(settings.data_root, {
        "model_name": model_name, "action": action, "from_version": str(current.version) if current else None,
        "to_version": str(to_version), "decided_by": decided_by, "mlflow_run_id": mlflow_run_id, "day": day,
        "metrics": metrics, "reason": reason,
    })


def record_skip(settings, source: str, day: str, reason: str, plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record a night on which no training or promotion happened, and why."""
    record = {"source": source, "day": day, "decision": SKIPPED, "reason": reason, "plan": plan}
    Lake(settings.data_root).write_report(source, day, "decision", record)
    return record
