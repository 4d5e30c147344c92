"""Watching the champion: realized precision and recall once labels for scored days arrive.

For each day with a predictions partition (``nightshift.scoring``) and labels (a labels file,
or labels carried by the lines), the predictions of the model version that scored the day are
compared with the labels. When the champion's realized precision or recall has been below the
gate's floors on the last K such days in a row, the watch raises an alert (error log + report),
asks for retraining, and rolls the champion back to ``previous`` if the policy says so.
"""

from __future__ import annotations

import logging
from typing import Any

from nightshift import gate
from nightshift.lake import Lake

log = logging.getLogger("nightshift.monitoring")




def realized_metrics(lake: Lake, source: str, day: str, settings=None) -> dict[str, Any] | None:
    """The scoring model's precision/recall on ``day`` against the labels; None until both exist.

    A labels file is used once it passed validation (``nightshift.labels.validated_labels``, the
    same reader as training's); a rejected file is logged as an error and the day is left out.
    Without a file, the labels carried by the lines (the features' ``label``) are used.
    """
    import pandas as pd

    from nightshift.labels import LabelsRejected, validated_labels

    pred_dir = lake.predictions_dir(source, day)
    if not pred_dir.exists():
        return None
    predictions = pd.read_parquet(pred_dir, columns=["session_id", "prediction", "model_version"])
    try:
        labels_file = validated_labels(settings, lake, source, day)
    except LabelsRejected as exc:
        log.error("champion watch leaves out %s %s: %s", source, day, exc)
        return None
    bad_rows = 0
    if labels_file is not None:
        labels, bad_rows = labels_file.frame, labels_file.stats.bad_rows
    elif lake.features_dir(source, day).exists():
        labels = pd.read_parquet(lake.features_dir(source, day), columns=["session_id", "label"])
        labels = labels[labels["label"].notna()].drop_duplicates("session_id")
    else:
        return None
    joined = predictions.merge(labels[["session_id", "label"]], on="session_id", how="inner")
    if joined.empty:
        return None
    m = gate.metrics(joined["label"].astype(int).to_numpy(), joined["prediction"].to_numpy())
    versions = sorted(joined["model_version"].astype(str).unique())
    return {"day": day, "model_version": versions[-1] if len(versions) == 1 else ",".join(versions),
            "label_bad_rows": bad_rows, **m}


def breach(rows: list[dict[str, Any]], policy: gate.GatePolicy) -> bool:
    """True when the last ``watch_days`` rows (oldest first) are all below a floor, for one version."""
    last = rows[-policy.watch_days:] if policy.watch_days else []
    if len(last) < policy.watch_days or len({r["model_version"] for r in last}) != 1:
        return False
    return all(r["precision"] < policy.floor_precision or r["recall"] < policy.floor_recall for r in last)


def watch_champion(settings, model_name: str, source: str, day: str, policy: gate.GatePolicy) -> dict[str, Any]:
    """Compute realized metrics up to ``day``, decide whether to alert, act; write the report."""
    lake = Lake(settings.data_root)
    days = [d for d in lake.days_with("predictions", source) if d <= day]
    rows = [r for r in (realized_metrics(lake, source, d) for d in days) if r is not None]
    alert = breach(rows, policy)
    report = {"source": source, "day": day, "model_name": model_name, "realized": rows, "alert": alert,
              "floors": {"precision": policy.floor_precision, "recall": policy.floor_recall},
              "watch_days": policy.watch_days, "rolled_back": None, "retrain": alert,
              "failing_version": str(rows[-1]["model_version"]) if alert else None, "retrain_for_version": None}
    if alert:
        last = rows[-policy.watch_days:]
        reason = (f"champion v{last[-1]['model_version']} below the floors on {len(last)} consecutive days: "
                  + ", ".join(f"{r['day']} precision {r['precision']:.3f} recall {r['recall']:.3f}" for r in last))
        report["reason"] = reason
        log.error("ALERT %s: %s", model_name, reason)
        if policy.watch_auto_rollback:
            from nightshift.registry import ChampionChanged
            from nightshift.rollback import RollbackRefused, rollback

            try:
                # compare-and-swap: roll back only the version the watch saw failing
                report["rolled_back"] = rollback(settings, model_name, decided_by="nightshift:champion-watch",
                                                 reason=f"automatic: {reason}",
                                                 expected_champion=str(last[-1]["model_version"]))
            except (RollbackRefused, ChampionChanged) as exc:
                report["rolled_back"] = {"refused": str(exc)}
                log.error("automatic rollback refused: %s", exc)
        # the retraining run retrains only while this version is champion: after an automatic
        # rollback that is the version rolled back to (still trained before the failing days),
        # else the failing one (a retraining run that finds another champion does nothing)
        moved = report["rolled_back"] or {}
        report["retrain_for_version"] = str(moved["to_version"]) if moved.get("to_version") else report["failing_version"]
    lake.write_report(source, day, "champion_watch", report)
    if alert:
        from nightshift.alerts import send_alert

        send_alert("champion_watch", source, day, report["reason"],
                   {"rolled_back": report["rolled_back"], "model_name": model_name}, data_root=settings.data_root)
    return report


def stale_retraining_request(settings, model_name: str, failing_version: str | None,
                             asked: str | None = None) -> str | None:
    """Why a retraining run that the champion watch requested because ``failing_version`` failed
    has nothing to do: another version is the champion by the time it runs (the night that scored
    with the failing champion may have promoted a better one meanwhile), or None when it must run.
    The registry unreachable: None (retraining is the safe side). ``asked`` says who asked and why
    (default: the champion watch; ``nightshift.retraining`` for suspect predictions)."""
    if not failing_version:
        return None
    from nightshift import registry

    try:
        champion = registry.champion(settings, model_name)
    except registry.RegistryUnavailable as exc:
        log.warning("champion not read (%s): retraining as requested", exc)
        return None
    current = str(champion.version) if champion is not None else None
    if current == str(failing_version):
        return None
    asked = asked or f"the champion watch asked for retraining because v{failing_version} was below the floors"
    return f"{asked}, but the champion is {'v' + current if current else 'gone'} now: nothing to retrain"
