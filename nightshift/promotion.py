"""Evaluation against the champion, the promotion gate, and the registry aliases.

The night's best candidate (by holdout F1) is the challenger. It is registered (alias
``challenger``), checked by the gate in ``nightshift.gate`` against the champion on the same
sessions, and the decision, its reason and every check are recorded: as model version tags, as a
decision record (Markdown + images) on the challenger's MLflow run, in the lake's reports, and,
when the alias moves, in the promotion log. Modes (``config/promotion.yaml`` or the DAG param):
``auto`` moves the alias when the gate passes, ``dry_run`` moves nothing, ``manual`` waits for an
operator's approval in the Airflow UI before moving it.

Three steps: :func:`judge` (the gate; reads models and data, writes nothing), :func:`publish`
(registers the challenger once per run, tags it, sets ``challenger``, writes the decision record)
and :func:`apply_decision` (moves the aliases through ``nightshift.registry.move_champion``,
compare-and-swap against the champion the decision was made on, and re-renders the record with
the final decision).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nightshift import gate, registry
from nightshift.airflow_links import airflow_tags
from nightshift.lake import Lake
from nightshift.registry import CHALLENGER, CHAMPION, PREVIOUS  # noqa: F401  (re-exported)
from nightshift.training import TrainingConfig, TrainingPlan, load_labelled_sessions, setup_mlflow

if TYPE_CHECKING:
    import numpy as np

PROMOTED, KEPT, SKIPPED, PENDING = "promoted", "kept", "skipped", "awaiting approval"
log = logging.getLogger("nightshift.promotion")


def champion_version(client, model_name: str):
    """The champion's model version, None when there is none yet; raises
    ``nightshift.registry.RegistryUnavailable`` when the registry cannot be asked."""
    return registry.champion(client, model_name)


def _predict(model, frame) -> tuple[np.ndarray, np.ndarray]:
    """P(anomalous) and the decision (>= 0.5: a tuned threshold is folded into the model's
    probabilities, see ``nightshift_model.ThresholdedClassifier``)."""
    from nightshift.modeling import to_model_input

    scores = model.predict_proba(to_model_input(frame))[:, 1]
    return scores, (scores >= 0.5)


def refit_like(model, frame):
    """A fresh copy of ``model``'s configuration (``sklearn.base.clone``: same params, same tuned
    hyperparameters; a threshold chosen inside ``fit`` is chosen again) fitted on ``frame``."""
    from sklearn.base import clone

    from nightshift.modeling import fit_model, to_model_input

    return fit_model(clone(model), to_model_input(frame), frame["label"].to_numpy(), frame["day"].to_numpy())


def backtest_rows(settings, config: TrainingConfig, plan: TrainingPlan, candidate: str, challenger_model, champion_model,
                  policy: gate.GatePolicy, predictions: dict[str, Any] | None = None,
                  champion_days: list[str] | tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Challenger vs champion on each of the last N labelled days.

    On a holdout day the real challenger is used; on an earlier day the challenger's configuration
    (its tuned hyperparameters; the threshold is re-chosen on those earlier days) is refitted on
    the labelled days before it (out of sample), so no day is judged in-sample for the challenger.
    The champion may have trained on those days: such rows are marked ``champion_in_sample``
    (when ``champion_days`` are known) and ``gate.check_backtest`` does not count them as losses.
    ``predictions``, when given, receives ``{day: (y, challenger_pred, champion_pred)}`` for the
    pooled bootstrap.
    """
    lake = Lake(settings.data_root)
    days = plan.labelled_days[-policy.backtest_days:] if policy.backtest_days else ()
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
            model = refit_like(challenger_model, train)
            trained_on = earlier
        y = frame["label"].to_numpy()
        challenger_pred, champion_pred = _predict(model, frame)[1], _predict(champion_model, frame)[1]
        if predictions is not None:
            predictions[d] = (y, challenger_pred, champion_pred)
        rows.append({"day": d, "sessions": len(frame), "trained_on": trained_on,
                     "champion_in_sample": d in (champion_days or ()),
                     "challenger_f1": gate.metrics(y, challenger_pred)["f1"],
                     "champion_f1": gate.metrics(y, champion_pred)["f1"]})
    return rows


def champion_train_days(settings, champion) -> list[str] | None:
    """The champion's training days, from its MLflow run's ``train_days`` param (None if absent)."""
    client = registry.client(settings)
    run = registry.call(settings, f"read run {champion.run_id}", client.get_run, champion.run_id)
    value = (run.data.params or {}).get("train_days")
    return [d for d in value.split(",") if d] if value else None


def champion_in_sample_days(champion, train_days: list[str] | None) -> list[str] | None:
    """Days on which the champion's figures are not out of sample: its training days and the
    holdout days of the night that chose it (tag ``nightshift.holdout_days``); None if neither is known."""
    chosen_on = (champion.tags or {}).get("nightshift.holdout_days")
    days = set(train_days or ()) | set(d for d in (chosen_on or "").split(",") if d)
    return sorted(days) if (train_days is not None or chosen_on) else None


@dataclass
class Judgement:
    """What the gate decided, before anything is written: the record (without the registered
    version and the decision record's location) and the holdout scores for the record's images."""

    record: dict[str, Any]
    model_uri: str
    y: Any
    challenger_scores: Any
    champion_scores: Any = None


def judge(settings, config: TrainingConfig, policy: gate.GatePolicy, plan: TrainingPlan,
          results: list[dict[str, Any]], mode: str, decided_by: str = "nightshift") -> Judgement:
    """Run the gate for the night's best candidate against the champion (floors, bootstrap,
    backtest, slices) and decide. Loads models and data; writes nothing to MLflow or the lake."""
    import mlflow
    import numpy as np

    if not results:
        raise ValueError("no candidate results to evaluate")
    if mode not in gate.MODES:
        raise ValueError(f"mode must be one of {gate.MODES}, got {mode!r}")
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    if not plan.labelled:
        return judge_without_labels(settings, config, policy, plan, results, mode, decided_by)
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

    champion = registry.champion(settings, model_name)
    already = champion is not None and champion.run_id == best["run_id"]
    checks = [gate.check_floors(best["metrics"], policy)]
    champion_metrics, interval, backtest, slices, champion_scores = None, None, [], [], None
    holdout_interval, staleness = None, None
    if already:
        # a re-run of an evaluation whose challenger was promoted since: judging it against itself
        # would record "kept" and untag a champion that passed the gate
        checks = []
    elif champion is not None:
        champion_model = mlflow.sklearn.load_model(f"models:/{model_name}/{champion.version}")
        champion_scores, champion_pred = _predict(champion_model, holdout)
        champion_metrics = gate.metrics(y, champion_pred)
        holdout_interval = gate.pooled_bootstrap_f1_diff([(y, best["pred"], champion_pred)], policy.bootstrap_resamples,
                                                         policy.confidence, policy.seed, [",".join(plan.holdout_days)])
        per_day: dict[str, Any] = {}
        champion_days = champion_train_days(settings, champion)
        # in sample for the champion: the days it trained on, and the holdout days it was chosen on
        # (best of the night's candidates there: its F1 on them is optimistic, the winner's curse)
        in_sample = champion_in_sample_days(champion, champion_days)
        backtest = backtest_rows(settings, config, plan, best_name, best["model"], champion_model, policy, per_day,
                                 in_sample)
        # bootstrap_days pooled: evidence only from days both models predict out of sample (the champion's
        # own training days would compare a challenger against the champion's fit of its training data)
        extra = [d for d in sorted(per_day) if d not in plan.holdout_days and d not in (in_sample or ())]
        interval = gate.judged_interval(policy, holdout_interval,
                                        [(y, best["pred"], champion_pred), *(per_day[d] for d in extra)],
                                        [",".join(plan.holdout_days), *extra])
        staleness = gate.is_stale(champion_days, plan.train_days, plan.day, policy)
        slices = gate.slice_table(holdout, best["pred"], champion_pred, policy.slice_columns,
                                  policy.slice_min_sessions, policy.slice_min_positives)
        checks += [gate.check_bootstrap(interval, policy, staleness),
                   gate.waive_backtest_for_broken_champion(gate.check_backtest(backtest, policy), checks[0],
                                                           champion_metrics, holdout_interval, policy),
                   gate.check_slices(slices, policy)]
    passed, reason = gate.decision_reason(checks, champion is not None)
    if already:
        passed, reason = True, (f"already champion: v{champion.version} is this run's model (an earlier run of "
                                f"this evaluation promoted it); not judged again")

    if already:
        decision = PROMOTED
    elif not passed:
        decision = KEPT
    elif mode == "manual":
        decision = PENDING
    else:
        decision = PROMOTED
    record = {
        "source": plan.source, "day": plan.day, "mode": mode, "decided_by": decided_by,
        "experiment": config.experiment_name(plan.source),
        "holdout_days": list(plan.holdout_days), "train_days": list(plan.train_days),
        "candidates": {n: c["metrics"] for n, c in candidates.items()},
        "candidate_runs": {n: c["run_id"] for n, c in candidates.items()},
        "candidate_training": {n: {"kind": c.get("kind"), "supervised": c.get("supervised"), "params": c.get("params"),
                                   "threshold": c.get("threshold"), "seconds": c.get("seconds")}
                               for n, c in candidates.items()},
        "best_candidate": best_name, "best_run_id": best["run_id"], "model_name": model_name,
        "challenger_version": None,
        "champion_before": str(champion.version) if champion else None,
        "champion_metrics": champion_metrics, "bootstrap": interval, "bootstrap_holdout": holdout_interval,
        "staleness": staleness, "rule": policy.rule, "backtest": backtest, "slices": slices,
        "checks": checks, "gate_passed": passed,
        "decision": decision, "reason": reason, "dry_run": mode == "dry_run", "policy": policy.to_dict(),
    }
    return Judgement(record, best["model_uri"], y, best["scores"], champion_scores)


NO_LABELS_LIMITS = (
    "This source has no labels (labels: none). Nobody knows which of its sessions are anomalous, so no F1, "
    "precision or recall exists for any model here. The gate only checks that the detector flags a plausible and "
    "stable share of sessions (flag-rate bounds, change against the recent nights' median); a detector that flags "
    "the wrong sessions at the right rate passes it. Once labels exist, the same detectors are judged like every "
    "supervised candidate (F1, bootstrap, backtest, slices)."
)
NO_LABELS_IN_SAMPLE = (
    "Tonight's day is the only validated day in the training window (a new source's first), and the detectors were "
    "fitted on it: their flag rate here is in "
    "sample (measured on the sessions they trained on), judged by the flag-rate bounds only. Stability is not judged "
    "tonight: it needs a night the detectors did not train on. From the next validated day on, the newest day is held "
    "out and the flag rate is judged out of sample, bounds and stability."
)


def judge_without_labels(settings, config: TrainingConfig, policy: gate.GatePolicy, plan: TrainingPlan,
                         results: list[dict[str, Any]], mode: str, decided_by: str = "nightshift") -> Judgement:
    """The gate for a source without labels: every detector's flag rate per night (training days
    and tonight's holdout day) must be within bounds and stable (``gate.check_flag_rate``). The
    most stable passing detector is the challenger; with no champion it is promoted, otherwise
    only when the champion fails the check tonight or is stale (``gate.is_stale``).

    An in-sample plan (``TrainingPlan.in_sample``: the source's first validated day, trained on and
    held out) is judged by the flag-rate bounds only, and the reason and the record's ``in_sample``
    and ``limits`` say so."""
    import mlflow

    from nightshift.training import flag_rates, load_sessions

    model_name = config.model_name(plan.source)
    lake = Lake(settings.data_root)
    frame = load_sessions(lake, plan.source, plan.labelled_days)
    holdout_day = plan.holdout_days[-1]
    in_sample = plan.in_sample
    candidates = {}
    for r in sorted(results, key=lambda r: r["candidate"]):
        model = mlflow.sklearn.load_model(r["model_uri"])
        rates = flag_rates(model, frame)
        check = gate.check_flag_rate(rates, holdout_day, policy, in_sample=in_sample)
        candidates[r["candidate"]] = {**r, "rates": rates, "check": check,
                                      "metrics": {"sessions": int((frame["day"] == holdout_day).sum()),
                                                  "flag_rate": rates[holdout_day], "recent_median": check["recent_median"],
                                                  "change": check["change"], "f1": None}}
    best_name = sorted(candidates, key=lambda n: (not candidates[n]["check"]["passed"], candidates[n]["check"]["change"], n))[0]
    best = candidates[best_name]
    champion = registry.champion(settings, model_name)
    already = champion is not None and champion.run_id == best["run_id"]
    checks, champion_check, staleness = [best["check"]], None, None
    if already:
        passed, reason = True, f"already champion: v{champion.version} is this run's model; not judged again"
    elif not best["check"]["passed"]:
        passed, reason = False, f"flag_rate failed: {best['check']['detail']}"
    elif champion is None:
        passed, reason = True, f"no champion yet; flag_rate: {best['check']['detail']}"
    else:
        champion_model = mlflow.sklearn.load_model(f"models:/{model_name}/{champion.version}")
        champion_check = gate.check_flag_rate(flag_rates(champion_model, frame), holdout_day, policy)
        staleness = gate.is_stale(champion_train_days(settings, champion), plan.train_days, plan.day, policy)
        replace = (not champion_check["passed"]) or staleness["stale"]
        checks.append({"name": "champion_flag_rate", "passed": replace,
                       "detail": f"champion v{champion.version} {champion_check['detail']}; {staleness['detail']}"})
        passed = replace
        reason = ((f"challenger {best_name} {'within bounds' if in_sample else 'stable'}; champion " + ("fails the flag-rate check" if not champion_check["passed"]
                   else "is stale")) if replace else
                  "kept: the champion still flags a plausible, stable share and is not stale; without labels there is "
                  "no evidence that the challenger is better") + f" (challenger: {best['check']['detail']})"
    if in_sample and not already:
        reason = ("judged in sample, by flag rate only: the detectors trained on this day, the only validated day in "
                  f"the window (a new source's first), so stability is not judged tonight; {reason}")
    if plan.fallback:
        reason = f"{plan.fallback}; {reason}"
    decision = PROMOTED if already or (passed and mode != "manual") else (PENDING if passed else KEPT)
    record = {
        "source": plan.source, "day": plan.day, "mode": mode, "decided_by": decided_by, "labelled": False,
        "in_sample": in_sample, "fallback": plan.fallback,
        "experiment": config.experiment_name(plan.source),
        "holdout_days": list(plan.holdout_days), "train_days": list(plan.train_days),
        "candidates": {n: c["metrics"] for n, c in candidates.items()},
        "candidate_runs": {n: c["run_id"] for n, c in candidates.items()},
        "candidate_training": {n: {"kind": c.get("kind"), "supervised": False, "params": c.get("params"),
                                   "threshold": None, "seconds": c.get("seconds"), "flag_rates": c["rates"]}
                               for n, c in candidates.items()},
        "best_candidate": best_name, "best_run_id": best["run_id"], "model_name": model_name, "challenger_version": None,
        "champion_before": str(champion.version) if champion else None,
        "champion_metrics": ({"flag_rate": champion_check["flag_rate"], "f1": None} if champion_check else None),
        "bootstrap": None, "bootstrap_holdout": None, "staleness": staleness, "rule": "flag_rate (no labels)",
        "backtest": [], "slices": [], "checks": checks, "gate_passed": passed, "decision": decision,
        "reason": reason, "limits": NO_LABELS_LIMITS + (" " + NO_LABELS_IN_SAMPLE if in_sample else ""),
        "dry_run": mode == "dry_run", "policy": policy.to_dict(),
    }
    return Judgement(record, best["model_uri"], None, None, None)


def publish(settings, judgement: Judgement) -> dict[str, Any]:
    """Write what :func:`judge` decided: register the challenger (once per run), tag the version,
    point ``challenger`` at it, write and log the decision record. Returns the record."""
    from nightshift.decision_record import log_decision_record

    record = dict(judgement.record)
    record.setdefault("airflow", airflow_tags())   # the run that decided (empty outside Airflow)
    setup_mlflow(settings, record["experiment"])
    model_name = record["model_name"]
    version = registry.register(settings, model_name, judgement.model_uri, record["best_run_id"])
    record["challenger_version"] = str(version.version)
    best_metrics = record["candidates"][record["best_candidate"]]
    client = registry.client(settings)
    for key, value in {
        "nightshift.day": record["day"], "nightshift.holdout_days": ",".join(record["holdout_days"]),
        "nightshift.candidate": record["best_candidate"], "nightshift.gate_passed": str(record["gate_passed"]).lower(),
        "nightshift.decision": record["decision"] + (" (dry run)" if record["dry_run"] else ""),
        "nightshift.reason": record["reason"][:5000],
        "nightshift.holdout_f1": f"{best_metrics['f1']:.4f}" if best_metrics.get("f1") is not None else "unknown (no labels)",
        "nightshift.champion_f1": (f"{record['champion_metrics']['f1']:.4f}" if record["champion_metrics"].get("f1") is not None
                                   else "unknown (no labels)") if record["champion_metrics"] else "none",
    }.items():
        registry.call(settings, f"tag {model_name} v{version.version}", client.set_model_version_tag,
                       model_name, version.version, key, value)
    registry.set_alias(settings, model_name, CHALLENGER, version.version)
    record["decision_record"] = log_decision_record(settings, record, judgement.y, judgement.challenger_scores,
                                                    judgement.champion_scores)
    return record


def evaluate_candidates(settings, config: TrainingConfig, policy: gate.GatePolicy, plan: TrainingPlan,
                        results: list[dict[str, Any]], mode: str, decided_by: str = "nightshift") -> dict[str, Any]:
    """Judge the night's best candidate and publish the decision; returns the decision record.

    The alias is not moved here (see :func:`apply_decision`), so a manual approval can sit between.
    """
    return publish(settings, judge(settings, config, policy, plan, results, mode, decided_by))


def apply_decision(settings, record: dict[str, Any], approved_by: str | None = None) -> dict[str, Any]:
    """Move the aliases when the record says so (promoted, or approved while pending) through
    ``registry.move_champion`` against the champion the decision was made on, then write the
    decision report, log ``decision.json`` and the final decision record on the run.

    Raises ``registry.ChampionChanged`` when the champion moved since the decision (nothing moves;
    re-run the evaluation), ``registry.RegistryUnavailable`` when the registry is down. Re-running
    it after a successful move changes nothing (the challenger already is champion).
    """
    from nightshift.decision_record import update_markdown

    registry.call(settings, f"open the experiment {record['experiment']}", setup_mlflow, settings, record["experiment"])
    client = registry.client(settings)
    model_name = record["model_name"]
    record = dict(record)
    if record["decision"] == PENDING and approved_by:
        record.update(decision=PROMOTED, decided_by=approved_by, reason=f"approved by {approved_by}; {record['reason']}")
        registry.call(settings, f"tag {model_name} v{record['challenger_version']}", client.set_model_version_tag,
                       model_name, record["challenger_version"], "nightshift.decision", PROMOTED)
    if record["decision"] == PROMOTED and not record["dry_run"]:
        move = registry.move_champion(
            settings, model_name, record["challenger_version"], expected_champion=record["champion_before"],
            action="promote", decided_by=record["decided_by"], reason=record["reason"],
            mlflow_run_id=record["best_run_id"], day=record["day"],
            metrics=record["candidates"][record["best_candidate"]])
        record["move"] = move["status"]
    after = registry.champion(client, model_name)
    record["champion_after"] = str(after.version) if after else None
    registry.call(settings, f"describe {model_name} v{record['challenger_version']}", client.update_model_version,
                  model_name, record["challenger_version"], version_description(record))
    registry.call(settings, "log decision.json", client.log_dict, record["best_run_id"], record, "decision.json")
    if record.get("decision_record"):
        update_markdown(settings, record)
    Lake(settings.data_root).write_report(record["source"], record["day"], "decision", record)
    log.info("decision for %s %s: %s (%s); champion now %s", record["source"], record["day"], record["decision"],
             record["reason"], record["champion_after"])
    return record


def version_description(record: dict[str, Any]) -> str:
    """The model version's description in MLflow: the night's decision, its reason and where
    the evidence is (the decision record on the run, the Airflow run)."""
    best = record["candidates"][record["best_candidate"]]
    f1 = f"{best['f1']:.3f}" if best.get("f1") is not None else "n/a (no labels)"
    decision = record["decision"] + (" (dry run: no alias moved)" if record.get("dry_run") else "")
    after = f"champion after: v{record['champion_after']}" if record.get("champion_after") else "no champion"
    lines = [
        f"**{decision}** on the night of {record['day']} ({record['source']}); {after}",
        "",
        f"Reason: {record['reason'][:2000]}",
        "",
        f"Candidate `{record['best_candidate']}` (holdout F1 {f1}; holdout {', '.join(record['holdout_days'])}, "
        f"trained on {', '.join(record.get('train_days') or [])}).",
        f"Decision record: artifacts `decision_record/decision.md` and `decision.json` of run `{record['best_run_id']}`.",
    ]
    if (record.get("airflow") or {}).get("airflow.url"):
        lines.append(f"Airflow run: {record['airflow']['airflow.url']}")
    return "\n".join(lines)


def move_champion(settings, model_name: str, to_version: str, *, expected_champion: str | None, action: str,
                  decided_by: str, reason: str, mlflow_run_id: str | None = None, day: str | None = None,
                  metrics: dict | None = None) -> dict[str, Any]:
    """Kept for callers of the old name: see ``nightshift.registry.move_champion``."""
    return registry.move_champion(settings, model_name, to_version, expected_champion=expected_champion,
                                  action=action, decided_by=decided_by, reason=reason, mlflow_run_id=mlflow_run_id,
                                  day=day, metrics=metrics)


def record_skip(settings, source: str, day: str, reason: str, plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record a night on which no training or promotion happened, and why."""
    record = {"source": source, "day": day, "decision": SKIPPED, "reason": reason, "plan": plan}
    Lake(settings.data_root).write_report(source, day, "decision", record)
    return record
