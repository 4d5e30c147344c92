"""The promotion gate: statistical, temporal and per-slice evidence that a challenger is better.

All functions are pure (numpy / pandas in, plain data out) so each check can be tested on
constructed cases where the right decision is known. Thresholds come from ``config/promotion.yaml``.
numpy is imported by the functions that compute: every task reads the policy
(``nightshift.context.TaskContext.load``), and most never run a check.

Checks, for a challenger against the current champion on the same sessions:
- floors: the challenger's precision and recall on the holdout reach absolute floors;
- bootstrap: a paired bootstrap gives a confidence interval for F1(challenger) - F1(champion),
  over the holdout sessions or (``bootstrap_days: pooled``) over the holdout AND the backtest days
  pooled, sessions resampled within their day, so an improvement that repeats night after night
  becomes significant while a one-day fluke does not. What the interval must show is the ``rule``:
  ``strict``: its lower bound exceeds ``margin`` (significantly better);
  ``non_inferior``: significantly better, OR non-inferior (lower bound > -``non_inferiority_delta``)
  with a better point estimate, OR non-inferior while the champion is stale (see below).
  The gate before issue 13 ("the lower bound must exceed 0.0 on the holdout bootstrap") is
  ``rule: strict`` AND ``bootstrap_days: holdout`` (with ``margin: 0.0``): ``rule: strict`` alone
  still pools the backtest days into the interval, and an improvement repeated on those days can
  pass it where the old gate kept the champion (``judged_interval``);
- staleness: a champion trained on fewer days than the challenger, or whose newest training day
  is more than ``stale_after_days`` before the night, yields to a non-inferior challenger trained
  on more recent data (``rule: non_inferior`` only);
- backtest: on each of the last N labelled days, the challenger (refitted on the days before that
  day) must not lose to the champion by more than the tolerance;
- slices: on every slice (e.g. component, session length bucket) with enough sessions, the
  challenger's F1 must not fall below the champion's by more than the slice tolerance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import numpy as np

MODES = ("auto", "dry_run", "manual")
RULES = ("strict", "non_inferior")
BOOTSTRAP_DAYS = ("holdout", "pooled")
LENGTH_BUCKETS = ((1, 5), (6, 20), (21, 50), (51, None))


@dataclass(frozen=True)
class GatePolicy:
    mode: str
    rule: str
    margin: float
    non_inferiority_delta: float
    bootstrap_days: str
    stale_after_days: int
    floor_precision: float
    floor_recall: float
    holdout_days: int
    backtest_days: int
    backtest_tolerance: float
    broken_champion_yields: bool
    slice_columns: tuple[str, ...]
    slice_tolerance: float
    slice_min_sessions: int
    slice_min_positives: int
    bootstrap_resamples: int
    confidence: float
    seed: int
    watch_days: int
    watch_auto_rollback: bool
    unlabelled_min_flag_rate: float
    unlabelled_max_flag_rate: float
    unlabelled_max_rate_change: float

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
    if policy.rule not in RULES:
        raise ValueError(f"{path}: rule must be one of {RULES}, got {policy.rule!r}")
    if policy.bootstrap_days not in BOOTSTRAP_DAYS:
        raise ValueError(f"{path}: bootstrap_days must be one of {BOOTSTRAP_DAYS}, got {policy.bootstrap_days!r}")
    if not policy.non_inferiority_delta >= 0:
        raise ValueError(f"{path}: non_inferiority_delta must be >= 0, got {policy.non_inferiority_delta}")
    if not 0.5 < policy.confidence < 1:
        raise ValueError(f"{path}: confidence must be in (0.5, 1), got {policy.confidence}")
    return policy


def f1_from_counts(tp, fp, fn):
    """F1 = 2tp / (2tp + fp + fn), 0 where undefined; works on scalars and arrays."""
    import numpy as np

    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0)


def metrics(y, pred) -> dict[str, float]:
    import numpy as np

    y, pred = np.asarray(y, dtype=bool), np.asarray(pred, dtype=bool)
    tp, fp, fn = int((y & pred).sum()), int((~y & pred).sum()), int((y & ~pred).sum())
    return {
        "f1": float(f1_from_counts(tp, fp, fn)),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "sessions": int(len(y)),
        "positives": int(y.sum()),
        "flagged": tp + fp,
    }


def paired_bootstrap_f1_diff(y, challenger_pred, champion_pred, resamples: int, confidence: float, seed: int) -> dict[str, float]:
    """Paired bootstrap over sessions of F1(challenger) - F1(champion) on one set of sessions.

    Each resample draws sessions with replacement and scores both models on the same draw, so
    the interval reflects the difference on shared data, not two independent noises.
    Returns the observed difference and the percentile interval ``[lower, upper]``.
    """
    return pooled_bootstrap_f1_diff([(y, challenger_pred, champion_pred)], resamples, confidence, seed)


def pooled_bootstrap_f1_diff(groups, resamples: int, confidence: float, seed: int,
                             names: list[str] | None = None) -> dict[str, Any]:
    """Paired bootstrap of F1(challenger) - F1(champion) over several days pooled.

    ``groups``: one ``(y, challenger_pred, champion_pred)`` per day. Sessions are resampled with
    replacement *within* their day (a stratified bootstrap: every resample keeps each day's
    size), the counts (tp, fp, fn) of all days are summed and F1 is computed on the sums. An
    improvement that repeats on several days narrows the interval around a positive difference;
    a one-day fluke is diluted by the other days. Returns the observed pooled difference and the
    percentile interval, with the days and their sizes.
    """
    import numpy as np

    if not groups:
        raise ValueError("cannot bootstrap without sessions")
    contribs, sizes = [], []
    for y, a, b in groups:
        y = np.asarray(y, dtype=bool)
        a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
        if len(y):
            contribs.append(np.stack([y & a, ~y & a, y & ~a, y & b, ~y & b, y & ~b], axis=1).astype(np.int32))
            sizes.append(len(y))
    if not contribs:
        raise ValueError("cannot bootstrap an empty holdout")
    rng = np.random.default_rng(seed)
    sums = np.zeros((resamples, 6), dtype=np.int64)
    for contrib in contribs:
        n = len(contrib)
        chunk = max(1, min(resamples, 20_000_000 // n))
        for start in range(0, resamples, chunk):
            size = min(chunk, resamples - start)
            idx = rng.integers(0, n, size=(size, n))
            sums[start:start + size] += np.stack([contrib[:, j][idx].sum(axis=1) for j in range(6)], axis=1)
    diffs = f1_from_counts(sums[:, 0], sums[:, 1], sums[:, 2]) - f1_from_counts(sums[:, 3], sums[:, 4], sums[:, 5])
    total = np.sum([c.sum(axis=0) for c in contribs], axis=0)
    observed = float(f1_from_counts(total[0], total[1], total[2]) - f1_from_counts(total[3], total[4], total[5]))
    alpha = (1 - confidence) / 2
    out = {"observed": observed, "lower": float(np.quantile(diffs, alpha)), "upper": float(np.quantile(diffs, 1 - alpha)),
           "resamples": int(resamples), "confidence": float(confidence)}
    if names is not None:
        out.update(days=list(names), sessions=[int(n) for n in sizes])
    return out


def judged_interval(policy: GatePolicy, holdout_interval: dict[str, Any], groups, names: list[str]) -> dict[str, Any]:
    """The interval the rule judges. ``bootstrap_days: holdout``: ``holdout_interval`` (the holdout
    sessions alone; with ``rule: strict`` and ``margin: 0.0`` the gate before issue 13).
    ``pooled``: ``groups`` (one ``(y, challenger_pred, champion_pred)`` per day, the holdout's
    first, then the backtest days both models predict out of sample; ``names`` theirs) pooled by
    :func:`pooled_bootstrap_f1_diff`, or the holdout's interval when there is no other day."""
    if policy.bootstrap_days == "holdout" or len(groups) <= 1:
        return holdout_interval
    return pooled_bootstrap_f1_diff(groups, policy.bootstrap_resamples, policy.confidence, policy.seed, names)


def length_bucket(line_count) -> np.ndarray:
    """Session length buckets used as a slice: '1-5', '6-20', '21-50', '51+'."""
    import numpy as np

    counts = np.asarray(line_count)
    labels = np.empty(len(counts), dtype=object)
    for low, high in LENGTH_BUCKETS:
        mask = (counts >= low) & ((counts <= high) if high else True)
        labels[mask] = f"{low}-{high}" if high else f"{low}+"
    return labels


def slice_table(frame, challenger_pred, champion_pred, columns, min_sessions: int, min_positives: int) -> list[dict[str, Any]]:
    """Per-slice F1 of both models. ``frame`` has ``label`` and the slice columns
    (``length_bucket`` is derived from ``line_count``). Slices too small to judge are marked."""
    import numpy as np

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


def is_stale(champion_train_days, challenger_train_days, day: str, policy: GatePolicy) -> dict[str, Any]:
    """The staleness rule's facts: a champion trained on fewer days than the challenger, or whose
    newest training day is more than ``stale_after_days`` before ``day``, is stale, provided the
    challenger trained on more recent data (its newest training day is later). Unknown champion
    training days (a model logged without the ``train_days`` param) are never stale."""
    import datetime as dt

    champ, chal = sorted(champion_train_days or ()), sorted(challenger_train_days or ())
    if not champ or not chal:
        return {"stale": False, "champion_days": len(champ), "challenger_days": len(chal), "champion_age_days": None,
                "detail": "champion's training days unknown: not judged stale"}
    age = (dt.date.fromisoformat(day) - dt.date.fromisoformat(champ[-1])).days
    more_recent = chal[-1] > champ[-1]
    fewer, old = len(champ) < len(chal), age > policy.stale_after_days
    stale = bool(more_recent and (fewer or old))
    why = []
    if fewer:
        why.append(f"trained on {len(champ)} day(s) vs the challenger's {len(chal)}")
    if old:
        why.append(f"newest training day {champ[-1]} is {age} days old (limit {policy.stale_after_days})")
    if not more_recent:
        why.append(f"the challenger's data is not more recent ({chal[-1]} vs {champ[-1]})")
    return {"stale": stale, "champion_days": len(champ), "challenger_days": len(chal), "champion_age_days": age,
            "detail": ("champion stale: " if stale else "champion not stale: ") + ("; ".join(why) or
                      f"trained on {len(champ)} day(s), newest {champ[-1]} ({age} days old)")}


def check_bootstrap(interval: dict[str, float], policy: GatePolicy, staleness: dict[str, Any] | None = None) -> dict[str, Any]:
    """The comparison rule on the bootstrap interval (``policy.rule``); see the module docstring.

    The returned check carries ``rule`` and ``via`` (which clause passed: ``superior``,
    ``non_inferior+better``, ``non_inferior+stale``, or None) for the decision record."""
    where = ("holdout + backtest days pooled" if len(interval.get("days") or ()) > 1 else "holdout")
    ci = (f"F1 difference {interval['observed']:+.3f} ({where}), {interval['confidence']:.0%} CI "
          f"[{interval['lower']:+.3f}, {interval['upper']:+.3f}]")
    superior = interval["lower"] > policy.margin
    if policy.rule == "strict":
        return {"name": "bootstrap", "passed": bool(superior), "rule": "strict", "via": "superior" if superior else None,
                "detail": f"{ci}; lower bound must exceed margin {policy.margin} (rule strict)"}
    non_inferior = interval["lower"] > -policy.non_inferiority_delta
    better = interval["observed"] > 0
    stale = bool(staleness and staleness["stale"])
    via = ("superior" if superior else "non_inferior+better" if non_inferior and better
           else "non_inferior+stale" if non_inferior and stale else None)
    parts = [f"superior (lower > margin {policy.margin}): {'yes' if superior else 'no'}",
             f"non-inferior (lower > -{policy.non_inferiority_delta}): {'yes' if non_inferior else 'no'}",
             f"better point estimate (observed {interval['observed']:+.4f} > 0): {'yes' if better else 'no'}"]
    if staleness is not None:
        parts.append(staleness["detail"])
    return {"name": "bootstrap", "passed": via is not None, "rule": "non_inferior", "via": via,
            "detail": f"{ci}; " + ", ".join(parts) + (f"; passes as {via}" if via else
                      "; needs superior, or non-inferior with a better point estimate or a stale champion")}


def check_flag_rate(rates: dict[str, float], holdout_day: str, policy: GatePolicy,
                    in_sample: bool = False) -> dict[str, Any]:
    """Sources without labels: the only evidence is how many sessions a detector flags. Tonight's
    flag rate must lie in ``[unlabelled_min_flag_rate, unlabelled_max_flag_rate]`` and differ from
    the median of the recent nights by at most ``unlabelled_max_rate_change`` (stability).
    ``rates``: ``{day: flag rate}`` including ``holdout_day``.

    ``in_sample``: the detector was fitted on ``holdout_day`` itself (the first validated day of a
    source without labels, ``TrainingPlan.in_sample``): only the bounds are judged; stability needs
    a night the detector did not train on, so it is not judged (``stability_judged`` False)."""
    import numpy as np

    tonight = rates[holdout_day]
    recent = [] if in_sample else [r for d, r in rates.items() if d != holdout_day]
    median = float(np.median(recent)) if recent else None
    change = abs(tonight - median) if median is not None else 0.0
    in_bounds = policy.unlabelled_min_flag_rate <= tonight <= policy.unlabelled_max_flag_rate
    stable = change <= policy.unlabelled_max_rate_change
    if in_sample:
        stability = ("stability not judged: in sample (the detector was fitted on this same day; stability needs "
                     "an out-of-sample night)")
    elif median is not None:
        stability = (f"recent nights' median {median:.2%}, change {change:.2%} (max "
                     f"{policy.unlabelled_max_rate_change:.2%}: {'stable' if stable else 'UNSTABLE'})")
    else:
        stability = "recent nights' median unknown (no earlier night)"
    return {"name": "flag_rate", "passed": bool(in_bounds and stable), "flag_rate": tonight, "recent_median": median,
            "change": change, "in_sample": in_sample, "stability_judged": median is not None,
            "detail": ("in sample, " if in_sample else "")
                      + f"flags {tonight:.2%} of {holdout_day}'s sessions (bounds {policy.unlabelled_min_flag_rate:.2%}-"
                        f"{policy.unlabelled_max_flag_rate:.2%}: {'ok' if in_bounds else 'OUT'}); " + stability}


def check_backtest(rows: list[dict[str, Any]], policy: GatePolicy) -> dict[str, Any]:
    """``rows``: one per backtest day with ``day``, ``challenger_f1``, ``champion_f1`` (and
    ``champion_in_sample``: the champion trained on that day or was chosen on it as the best of its
    night; such a day is shown, not judged)."""
    losses = [r for r in rows if r["challenger_f1"] < r["champion_f1"] - policy.backtest_tolerance
              and not r.get("champion_in_sample")]
    detail = ", ".join(f"{r['day']}: {r['challenger_f1']:.3f} vs {r['champion_f1']:.3f}"
                       + (" (champion in sample, not judged)" if r.get("champion_in_sample") else "")
                       for r in rows) or "no backtest days"
    return {"name": "backtest", "passed": not losses,
            "detail": (f"loses on {', '.join(r['day'] for r in losses)} (tolerance {policy.backtest_tolerance}); "
                       if losses else "") + detail}


def floors_failed(m: dict[str, Any] | None, floor_precision: float, floor_recall: float) -> bool:
    """Whether metrics with precision and recall fall below the floors (False without metrics)."""
    return bool(m) and (m["precision"] < floor_precision or m["recall"] < floor_recall)


def below_floors(m: dict[str, Any] | None, policy: GatePolicy) -> bool:
    return floors_failed(m, policy.floor_precision, policy.floor_recall)


def waive_backtest_for_broken_champion(backtest: dict[str, Any], floors: dict[str, Any], champion_metrics: dict | None,
                                       holdout_interval: dict[str, float] | None, policy: GatePolicy) -> dict[str, Any]:
    """The backtest protects a working champion from a challenger that regresses on earlier days.
    A champion below the floors on tonight's holdout (after drift, say) has nothing to protect: a
    challenger that passes the floors and is significantly better on the holdout (the interval's
    lower bound above 0) is not held back by older days (``broken_champion_yields``). The check
    says so, with what the backtest found."""
    if (not policy.broken_champion_yields or backtest["passed"] or not floors["passed"]
            or not below_floors(champion_metrics, policy) or holdout_interval is None or holdout_interval["lower"] <= 0):
        return backtest
    return {"name": "backtest", "passed": True, "waived": True,
            "detail": (f"waived: the champion is below the floors on tonight's holdout (precision "
                       f"{champion_metrics['precision']:.3f}, recall {champion_metrics['recall']:.3f}) and the challenger "
                       f"passes them and is better there (F1 difference CI [{holdout_interval['lower']:+.3f}, "
                       f"{holdout_interval['upper']:+.3f}]); the backtest found: {backtest['detail']}")}


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
