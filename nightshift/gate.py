"""The promotion gate: statistical, temporal and per-slice evidence that a challenger is better.

All functions are pure (numpy / pandas in, plain data out) so each check can be tested on
constructed cases where the right decision is known. Thresholds come from ``config/promotion.yaml``.

Checks, for a challenger against the current champion on the same sessions:
- floors: the challenger's precision and recall on the holdout reach absolute floors;
- bootstrap: a paired bootstrap over sessions gives a confidence interval for
  F1(challenger) - F1(champion); its lower bound must exceed the margin;
- backtest: on each of the last N labelled days, the challenger (refitted on the days before that
  day) must not lose to the champion by more than the tolerance;
- slices: on every slice (e.g. component, session length bucket) with enough sessions, the
  challenger's F1 must not fall below the champion's by more than the slice tolerance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

MODES = ("auto", "dry_run", "manual")
LENGTH_BUCKETS = ((1, 5), (6, 20), (21, 50), (51, None))


@dataclass(frozen=True)
class GatePolicy:
    mode: str
    margin: float
    floor_precision: float
    floor_recall: float
    holdout_days: int
    backtest_days: int
    backtest_tolerance: float
    slice_columns: tuple[str, ...]
    slice_tolerance: float
    slice_min_sessions: int
    slice_min_positives: int
    bootstrap_resamples: int
    confidence: float
    seed: int
    watch_days: int
    watch_auto_rollback: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_policy(config_dir: Path) -> GatePolicy:
    """Read ``config/promotion.yaml``; unknown or missing keys are errors, not silent defaults."""
    path = Path(config_dir) / "promotion.yaml"
    raw = yaml.safe_load(path.read_text()) or {}
    fields = {f for f in GatePolicy.__dataclass_fields__}
    unknown, missing = set(raw) - fields, fields - set(raw)
    if unknown or missing:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    policy = GatePolicy(**{**raw, "slice_columns": tuple(raw["slice_columns"])})
    if policy.mode not in MODES:
        raise ValueError(f"{path}: mode must be one of {MODES}, got {policy.mode!r}")
    if not 0.5 < policy.confidence < 1:
        raise ValueError(f"{path}: confidence must be in (0.5, 1), got {policy.confidence}")
    return policy


def f1_from_counts(tp, fp, fn):
    """F1 = 2tp / (2tp + fp + fn), 0 where undefined; works on scalars and arrays."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0)


def metrics(y, pred) -> dict[str, float]:
    y, pred = np.asarray(y, dtype=bool), np.asarray(pred, dtype=bool)
    tp, fp, fn = int((y & pred).sum()), int((~y & pred).sum()), int((y & ~pred).sum())
    return {
        "f1": float(f1_from_counts(tp, fp, fn)),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "sessions": int(len(y)),
        "positives": int(y.sum()),
    }


def paired_bootstrap_f1_diff(y, challenger_pred, champion_pred, resamples: int, confidence: float, seed: int) -> dict[str, float]:
    """Paired bootstrap over sessions of F1(challenger) - F1(champion).

    Each resample draws sessions with replacement and scores both models on the same draw, so
    the interval reflects the difference on shared data, not two independent noises.
    Returns the observed difference and the percentile interval ``[lower, upper]``.
    """
    y = np.asarray(y, dtype=bool)
    a, b = np.asarray(challenger_pred, dtype=bool), np.asarray(champion_pred, dtype=bool)
    n = len(y)
    if n == 0:
        raise ValueError("cannot bootstrap an empty holdout")
    # per-session contributions to (tp, fp, fn) of each model
    contrib = np.stack([y & a, ~y & a, y & ~a, y & b, ~y & b, y & ~b], axis=1).astype(np.int32)
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    chunk = max(1, min(resamples, 20_000_000 // max(n, 1)))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        sums = np.stack([contrib[:, j][idx].sum(axis=1) for j in range(6)], axis=1)
        diffs[start : start + size] = f1_from_counts(sums[:, 0], sums[:, 1], sums[:, 2]) - f1_from_counts(
            sums[:, 3], sums[:, 4], sums[:, 5]
        )
    alpha = (1 - confidence) / 2
    observed = float(metrics(y, a)["f1"] - metrics(y, b)["f1"])
    return {"observed": observed, "lower": float(np.quantile(diffs, alpha)), "upper": float(np.quantile(diffs, 1 - alpha)),
            "resamples": int(resamples), "confidence": float(confidence)}


def length_bucket(line_count) -> np.ndarray:
    """Session length buckets used as a slice: '1-5', '6-20', '21-50', '51+'."""
    counts = np.asarray(line_count)
    labels = np.empty(len(counts), dtype=object)
    for low, high in LENGTH_BUCKETS:
        mask = (counts >= low) & ((counts <= high) if high else True)
        labels[mask] = f"{low}-{high}" if high else f"{low}+"
    return labels


def slice_table(frame, challenger_pred, champion_pred, columns, min_sessions: int, min_positives: int) -> list[dict[str, Any]]:
    """Per-slice F1 of both models. ``frame`` has ``label`` and the slice columns
    (``length_bucket`` is derived from ``line_count``). Slices too small to judge are marked."""
    y = frame["label"].to_numpy().astype(bool)
    a, b = np.asarray(challenger_pred, dtype=bool), np.asarray(champion_pred, dtype=bool)
    rows = []
    for column in columns:
        values = length_bucket(frame["line_count"]) if column == "length_bucket" else frame[column].astype(str).to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            ya = y[mask]
            judged = mask.sum() >= min_sessions and ya.sum() >= min_positives
            rows.append({
                "slice": column, "value": str(value), "sessions": int(mask.sum()), "positives": int(ya.sum()),
                "challenger_f1": metrics(ya, a[mask])["f1"], "champion_f1": metrics(ya, b[mask])["f1"],
                "judged": bool(judged),
            })
    return rows


def check_floors(challenger: dict[str, float], policy: GatePolicy) -> dict[str, Any]:
    ok = challenger["precision"] >= policy.floor_precision and challenger["recall"] >= policy.floor_recall
    return {"name": "floors", "passed": bool(ok),
            "detail": f"precision {challenger['precision']:.3f} (floor {policy.floor_precision}), "
                      f"recall {challenger['recall']:.3f} (floor {policy.floor_recall})"}


def check_bootstrap(interval: dict[str, float], policy: GatePolicy) -> dict[str, Any]:
    ok = interval["lower"] > policy.margin
    return {"name": "bootstrap", "passed": bool(ok),
            "detail": f"F1 difference {interval['observed']:+.3f}, {interval['confidence']:.0%} CI "
                      f"[{interval['lower']:+.3f}, {interval['upper']:+.3f}]; lower bound must exceed margin {policy.margin}"}


def check_backtest(rows: list[dict[str, Any]], policy: GatePolicy) -> dict[str, Any]:
    """``rows``: one per backtest day with ``day``, ``challenger_f1``, ``champion_f1``."""
    losses = [r for r in rows if r["challenger_f1"] < r["champion_f1"] - policy.backtest_tolerance]
    detail = ", ".join(f"{r['day']}: {r['challenger_f1']:.3f} vs {r['champion_f1']:.3f}" for r in rows) or "no backtest days"
    return {"name": "backtest", "passed": not losses,
            "detail": (f"loses on {', '.join(r['day'] for r in losses)} (tolerance {policy.backtest_tolerance}); "
                       if losses else "") + detail}


def check_slices(rows: list[dict[str, Any]], policy: GatePolicy) -> dict[str, Any]:
    judged = [r for r in rows if r["judged"]]
    collapsed = [r for r in judged if r["challenger_f1"] < r["champion_f1"] - policy.slice_tolerance]
    if collapsed:
        worst = ", ".join(f"{r['slice']}={r['value']} {r['challenger_f1']:.3f} vs {r['champion_f1']:.3f}" for r in collapsed)
        return {"name": "slices", "passed": False, "detail": f"worse by more than {policy.slice_tolerance} on {worst}"}
    return {"name": "slices", "passed": True, "detail": f"{len(judged)} slices judged, none worse by more than {policy.slice_tolerance}"}


def decision_reason(checks: list[dict[str, Any]], has_champion: bool = True) -> tuple[bool, str]:
    """All checks must pass; the reason names every failed check (or says what passed)."""
    failed = [c for c in checks if not c["passed"]]
    if failed:
        return False, "; ".join(f"{c['name']} failed: {c['detail']}" for c in failed)
    if not has_champion:
        return True, "no champion yet; " + "; ".join(f"{c['name']}: {c['detail']}" for c in checks)
    return True, "gate passed: " + "; ".join(f"{c['name']}: {c['detail']}" for c in checks)
