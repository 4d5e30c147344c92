"""Input drift: does tonight's data look like the data the champion was trained on, and like the
recent days? Computed before any label of the day is used, so it warns when the labels cannot yet.

Each day's **profile** is computed in Spark from the day's session features when they are built
(``nightshift.features.run_features``, the ``features`` report's ``profile``): lines and sessions,
the template distribution (lines per template id), the sessions per distinct set of template ids
(``session_template_sets``, below), the shares of warn and error lines, the mean session length.
Tonight's profile is compared here (plain Python on those small dicts) with two
references: the champion's training days, and a rolling window of recent validated days.

Statistics (documented choices):
- **Jensen-Shannon distance** (base 2: 0 = same distribution, 1 = disjoint) between template
  distributions. Chosen over PSI as the flag because it is bounded and symmetric, and defined when
  a template is absent on one side (new templates are exactly what drift brings); **PSI** (with a
  small floor for empty bins) is reported next to it for people used to it.
- **Unseen share**: lines whose template never occurred in the reference (``unseen_line_share``),
  and sessions with at least one such line (``unseen_session_share``).
- **Volume**: tonight's lines and sessions over the reference days' median.
- **Session length and level shares**: tonight's mean lines per session and warn/error shares, next
  to the reference's.
Thresholds are data per source (``config/drift.yaml``), with defaults that hold for the shipped
sources.

Why the profile keeps ``session_template_sets`` (a count of sessions per distinct set of template
ids, key: the set's ids sorted numerically and comma-joined, e.g. ``{"1,2,5": 2810, "1,2,5,9": 12}``)
for the unseen-session share: the reference is only known at drift-check time (the champion can
change between the features job and the check), and "sessions with any template outside R" cannot
be recovered from per-template session counts (a session with two new templates would count twice).
The sets are exact for any reference, and small for log data (sessions of one system repeat a few
lifecycles: the demo's HDFS days have 48 to 67 distinct sets for 3,000 sessions, about 2 KB of
JSON). They cost one more Spark aggregation over the day's written features (one row per session)
and keep the check what it is for every other statistic: a pure function of the day reports'
profiles, testable on constructed dicts, recomputable for any day whose reports are kept. Reading
tonight's features Parquet (``event_counts``) at check time would be exact too and spare the Spark
aggregation, but would make the check read a lake partition and depend on its schema. Above
``SESSION_TEMPLATE_SETS_MAX`` distinct sets the profile stores None instead (bounded report size);
that night's unseen-session share, like that of a profile written before the field existed, is
None: reported as not available, never flagged. Only tonight's sets are used: the reference side
needs the template ids alone, so older reference profiles work unchanged.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

PSI_FLOOR = 1e-4
SESSION_TEMPLATE_SETS_MAX = 5000   # distinct per-session template sets kept in a profile (more: None)


def _normalise(counts: dict[str, float], keys) -> list[float]:
    total = float(sum(counts.values()))
    return [(counts.get(k, 0.0) / total) if total else 0.0 for k in keys]


def js_distance(p_counts: dict[str, float], q_counts: dict[str, float]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count distributions."""
    keys = sorted(set(p_counts) | set(q_counts))
    if not keys or not sum(p_counts.values()) or not sum(q_counts.values()):
        return 0.0 if not sum(p_counts.values()) and not sum(q_counts.values()) else 1.0
    p, q = _normalise(p_counts, keys), _normalise(q_counts, keys)
    m = [(a + b) / 2 for a, b in zip(p, q)]

    def kl(x: list[float]) -> float:
        return sum(a * math.log2(a / c) for a, c in zip(x, m) if a > 0)

    return math.sqrt(max(0.0, min(1.0, (kl(p) + kl(q)) / 2)))


def psi(actual: dict[str, float], expected: dict[str, float], floor: float = PSI_FLOOR) -> float:
    """Population stability index of ``actual`` against ``expected`` (bins: template ids; empty
    bins floored at ``floor`` so a new template counts instead of dividing by zero)."""
    keys = sorted(set(actual) | set(expected))
    a, e = _normalise(actual, keys), _normalise(expected, keys)
    return sum((max(x, floor) - max(y, floor)) * math.log(max(x, floor) / max(y, floor)) for x, y in zip(a, e))


def unseen_share(counts: dict[str, float], reference: dict[str, float]) -> float:
    """Share of ``counts`` (lines) whose key never occurs in ``reference``."""
    total = sum(counts.values())
    return (sum(v for k, v in counts.items() if k not in reference) / total) if total else 0.0


def unseen_session_share(session_template_sets: dict[str, float] | None, reference) -> float | None:
    """Share of sessions with at least one template id that never occurs in ``reference`` (a
    collection of template ids). ``session_template_sets`` maps a set of template ids (comma-joined)
    to the number of sessions whose distinct templates are exactly that set; None (a profile
    without the sets) gives None: not available."""
    if session_template_sets is None:
        return None
    total = sum(session_template_sets.values())
    if not total:
        return 0.0
    unseen = sum(n for key, n in session_template_sets.items()
                 if any(t not in reference for t in str(key).split(",") if t))
    return unseen / total


def robust_bounds(values: list[float], k: float) -> tuple[float, float] | None:
    """``median +- k * MAD`` of ``values`` (scaled MAD: 1.4826 x the median absolute deviation, so
    k is in standard deviations for normal data); None for fewer than 3 values."""
    if len(values) < 3:
        return None
    med = statistics.median(values)
    mad = 1.4826 * statistics.median(abs(v - med) for v in values)
    return med - k * mad, med + k * mad


@dataclass(frozen=True)
class DriftThresholds:
    window_days: int = 7               # the rolling reference: up to this many validated days before tonight
    js_distance_max: float = 0.2       # template distribution (Jensen-Shannon distance, base 2)
    unseen_line_share_max: float = 0.02   # lines whose template the reference never saw
    unseen_session_share_max: float | None = None   # sessions with any such line (None: not checked)
    volume_ratio_min: float = 0.5      # tonight's lines / the reference median (sessions too)
    volume_ratio_max: float = 2.0
    session_length_ratio_max: float | None = 1.5   # mean lines per session vs the reference's, either way (None: not checked)
    level_share_change_max: float | None = 0.05    # warn or error share of lines minus the reference's, either way
    flag_rate_ratio_max: float = 3.0   # prediction drift: tonight's flag rate / the champion's holdout flag rate
    flag_rate_abs_change_max: float = 0.05   # ... and tonight's minus it (both must be exceeded)
    bounds_k_mad: float = 5.0          # learned validation bounds: median +- k MAD of the recent validated days' volume,
    bounds_min_relative: float = 0.5   # ... widened to at least +-this share of the median (volumes vary little day to day)
    template_share_top: int = 5        # learned template-share bounds for the recent days' most frequent templates (0: none)


def load_thresholds(config_dir: Path, source: str) -> DriftThresholds:
    """``config/drift.yaml``: ``defaults`` then ``sources.<source>``; unknown keys are an error."""
    path = Path(config_dir) / "drift.yaml"
    raw = yaml.safe_load(path.read_text()) if path.exists() else {}
    merged = {**(raw.get("defaults") or {}), **((raw.get("sources") or {}).get(source) or {})}
    known = {f.name for f in fields(DriftThresholds)}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ValueError(f"{path}: unknown drift setting(s) {unknown}; known: {sorted(known)}")
    return DriftThresholds(**merged)


def _merge(profiles: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in profiles:
        for k, v in (p.get("templates") or {}).items():
            out[k] = out.get(k, 0.0) + float(v)
    return out


def compare(tonight: dict[str, Any], reference: list[dict[str, Any]], thresholds: DriftThresholds) -> dict[str, Any]:
    """Tonight's profile against reference profiles: the statistics and which exceed their bounds."""
    ref_templates = _merge(reference)
    ref_lines = [p["lines"] for p in reference]
    ref_sessions = [p["sessions"] for p in reference]
    stats = {
        "js_distance": round(js_distance(tonight["templates"], ref_templates), 4),
        "psi": round(psi(tonight["templates"], ref_templates), 4),
        "unseen_line_share": round(unseen_share(tonight["templates"], ref_templates), 4),
        "unseen_session_share": _round(unseen_session_share(tonight.get("session_template_sets"), ref_templates)),
        "unseen_templates": sorted(k for k in tonight["templates"] if k not in ref_templates),
        "volume_ratio_lines": round(tonight["lines"] / statistics.median(ref_lines), 4) if ref_lines and statistics.median(ref_lines) else None,
        "volume_ratio_sessions": round(tonight["sessions"] / statistics.median(ref_sessions), 4)
        if ref_sessions and statistics.median(ref_sessions) else None,
        "mean_session_length": tonight.get("mean_session_length"),
        "reference_mean_session_length": _mean([p.get("mean_session_length") for p in reference]),
        "warn_share": tonight.get("warn_share"),
        "reference_warn_share": _mean([p.get("warn_share") for p in reference]),
        "error_share": tonight.get("error_share"),
        "reference_error_share": _mean([p.get("error_share") for p in reference]),
    }
    exceeded = []
    if stats["js_distance"] > thresholds.js_distance_max:
        exceeded.append(f"template distribution: JS distance {stats['js_distance']:.3f} > {thresholds.js_distance_max}")
    if stats["unseen_line_share"] > thresholds.unseen_line_share_max:
        exceeded.append(f"unseen templates: {stats['unseen_line_share']:.1%} of lines "
                        f"({len(stats['unseen_templates'])} templates) > {thresholds.unseen_line_share_max:.1%}")
    session_share, session_max = stats["unseen_session_share"], thresholds.unseen_session_share_max
    if session_max is not None and session_share is not None and session_share > session_max:
        exceeded.append(f"unseen templates: {session_share:.1%} of sessions > {session_max:.1%}")
    for what in ("lines", "sessions"):
        ratio = stats[f"volume_ratio_{what}"]
        if ratio is not None and not (thresholds.volume_ratio_min <= ratio <= thresholds.volume_ratio_max):
            exceeded.append(f"volume: {ratio:.2f}x the reference median of {what} "
                            f"(allowed {thresholds.volume_ratio_min}-{thresholds.volume_ratio_max}x)")
    length, ref_length, most = (stats["mean_session_length"], stats["reference_mean_session_length"],
                                thresholds.session_length_ratio_max)
    if most is not None and length and ref_length and max(length / ref_length, ref_length / length) > most:
        exceeded.append(f"session length: {length:.1f} lines per session vs {ref_length:.1f} "
                        f"(allowed within {most}x either way)")
    for level in ("warn", "error"):
        share, ref_share, most = (stats[f"{level}_share"], stats[f"reference_{level}_share"],
                                  thresholds.level_share_change_max)
        if most is not None and share is not None and ref_share is not None and abs(share - ref_share) > most:
            exceeded.append(f"{level} share: {share:.1%} of lines vs {ref_share:.1%} (allowed +-{most:.0%} points)")
    return {"stats": stats, "exceeded": exceeded}


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def _mean(values: list) -> float | None:
    values = [v for v in values if isinstance(v, (int, float))]
    return round(sum(values) / len(values), 4) if values else None


def profile_of(lake, source: str, day: str) -> dict[str, Any] | None:
    return ((lake.read_report(source, day, "features") or {}).get("profile")) or None


def recent_validated_days(lake, source: str, day: str, window: int) -> list[str]:
    """Up to ``window`` days before ``day`` whose both validation suites passed and that have a profile."""
    out = []
    for d in reversed(lake.days_with("reports", source)):
        if d >= day:
            continue
        if all((lake.read_report(source, d, f"validation_{s}") or {}).get("success")
               for s in ("parsed_lines", "session_features")) and profile_of(lake, source, d):
            out.append(d)
        if len(out) == window:
            break
    return sorted(out)


def champion_training_days(lake, source: str, champion_version: str | None) -> list[str]:
    """The days the champion was trained on, from the decision that registered it."""
    return list((lake.registering_decision(source, champion_version) or {}).get("train_days") or [])


def day_drift(lake, source: str, day: str, thresholds: DriftThresholds, champion_version: str | None = None) -> dict[str, Any]:
    """The ``drift`` report of ``day``: tonight against the champion's training days and against
    the recent validated days; ``flagged`` when either exceeds a threshold."""
    tonight = profile_of(lake, source, day)
    report: dict[str, Any] = {"source": source, "day": day, "flagged": False, "references": {}, "exceeded": []}
    if tonight is None:
        report["summary"] = "not computed: no profile for the day (features not built)"
        return report
    references = {
        "champion_training": [d for d in champion_training_days(lake, source, champion_version) if profile_of(lake, source, d)],
        "recent": recent_validated_days(lake, source, day, thresholds.window_days),
    }
    for name, days in references.items():
        if not days:
            report["references"][name] = {"days": [], "note": "no reference days yet"}
            continue
        result = compare(tonight, [profile_of(lake, source, d) for d in days], thresholds)
        report["references"][name] = {"days": days, **result}
        report["exceeded"].extend(f"vs {name.replace('_', ' ')}: {e}" for e in result["exceeded"])
    report["flagged"] = bool(report["exceeded"])
    judged = [r for r in report["references"].values() if r.get("days")]
    if not judged:
        report["summary"] = "no reference yet (first validated day)"
    elif report["flagged"]:
        report["summary"] = "drift: flagged: " + "; ".join(report["exceeded"][:3])
    else:
        js = max(r["stats"]["js_distance"] for r in judged)
        unseen = max(r["stats"]["unseen_line_share"] for r in judged)
        report["summary"] = f"no drift (JS {js:.3f}, unseen {unseen:.1%})"
    report["champion_version"] = champion_version
    return report


def record_day_drift(settings, lake, source: str, day: str, model_name: str) -> dict[str, Any]:
    """Compute and write the day's ``drift`` report against the current champion's training days
    and the recent validated days (the registry unreachable: against the recent days only, said)."""
    import logging

    from nightshift import registry

    log = logging.getLogger("nightshift.drift")
    thresholds = load_thresholds(settings.config_dir, source)
    note = None
    try:
        champion = registry.champion(settings, model_name)
        champion_version = str(champion.version) if champion is not None else None
    except registry.RegistryUnavailable as exc:
        champion_version, note = None, f"champion not read ({exc}): compared with the recent days only"
    report = day_drift(lake, source, day, thresholds, champion_version)
    report["thresholds"] = {f.name: getattr(thresholds, f.name) for f in fields(DriftThresholds)}
    if note:
        report["note"] = note
    lake.write_report(source, day, "drift", report)
    write_drift_table(settings, lake, source)
    (log.warning if report["flagged"] else log.info)("input drift %s %s: %s", source, day, report["summary"])
    return report


_REFERENCES = ("recent", "champion_training")
_REFERENCE_STATS = ("js_distance", "psi", "unseen_line_share", "unseen_session_share", "volume_ratio_lines",
                    "volume_ratio_sessions", "reference_mean_session_length")
_TONIGHT_STATS = ("mean_session_length", "warn_share", "error_share")
DRIFT_TABLE_COLUMNS = ("day", "flagged", "summary", "champion_version", *_TONIGHT_STATS,
                       *(f"{ref}_{k}" for ref in _REFERENCES for k in ("days", *_REFERENCE_STATS, "unseen_templates")),
                       "exceeded")


def drift_table_rows(lake, source: str) -> list[dict[str, Any]]:
    """One row per day with a ``drift`` report, oldest first: tonight's statistics against each
    reference (``recent_*``: the recent validated days, ``champion_training_*``: the champion's
    training days; empty when that reference had no days)."""
    rows = []
    for day in lake.days_with("reports", source):
        report = lake.read_report(source, day, "drift")
        if not report:
            continue
        references = report.get("references") or {}
        row: dict[str, Any] = {"day": day, "flagged": bool(report.get("flagged")), "summary": report.get("summary"),
                               "champion_version": report.get("champion_version"),
                               "exceeded": "; ".join(report.get("exceeded") or [])}
        judged = [r.get("stats") for r in references.values() if r.get("stats")]
        row.update({k: judged[0].get(k) if judged else None for k in _TONIGHT_STATS})
        for ref in _REFERENCES:
            stats = (references.get(ref) or {}).get("stats") or {}
            row[f"{ref}_days"] = ",".join((references.get(ref) or {}).get("days") or [])
            row.update({f"{ref}_{k}": stats.get(k) for k in _REFERENCE_STATS})
            row[f"{ref}_unseen_templates"] = len(stats["unseen_templates"]) if "unseen_templates" in stats else None
        rows.append(row)
    return rows


def write_drift_table(settings, lake, source: str) -> Path:
    """``drift/source=<s>/drift.parquet``: the source's drift history, one row per day,
    rebuilt from the day reports (the source of truth) under the source's lock and swapped in by
    rename, so that two nights writing at once leave a table with both rows."""
    import os
    import tempfile

    import pandas as pd

    from nightshift import locks

    path = lake.root / "drift" / f"source={source}" / "drift.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    with locks.exclusive(settings, f"drift-table:{source}", timeout_s=120):
        frame = pd.DataFrame(drift_table_rows(lake, source), columns=list(DRIFT_TABLE_COLUMNS))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".drift.", suffix=".parquet.tmp")
        os.close(fd)
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def champion_holdout_flag_rate(lake, source: str, champion_version) -> dict[str, Any] | None:
    """The champion's flag rate on the holdout of the night that registered it."""
    decision = lake.registering_decision(source, champion_version) or {}
    metrics = (decision.get("candidates") or {}).get(decision.get("best_candidate")) or {}
    if metrics.get("sessions") and metrics.get("flagged") is not None:
        return {"day": decision["day"], "flag_rate": metrics["flagged"] / metrics["sessions"]}
    return None


def prediction_drift(lake, source: str, day: str, champion_version, flag_rate: float | None,
                     thresholds: DriftThresholds) -> dict[str, Any]:
    """Tonight's champion flag rate against its holdout flag rate and its recent nights' median;
    with the day's input drift, whether tonight's predictions are suspect (and why)."""
    references: dict[str, float] = {}
    holdout = champion_holdout_flag_rate(lake, source, champion_version)
    if holdout:
        references[f"holdout ({holdout['day']})"] = holdout["flag_rate"]
    recent = []
    for d in reversed(lake.days_with("reports", source)):
        if d >= day:
            continue
        scoring = lake.read_report(source, d, "scoring") or {}
        if (str(scoring.get("champion_version")) == str(champion_version) and scoring.get("flag_rate") is not None
                and not (scoring.get("prediction_drift") or {}).get("suspect")):
            recent.append(scoring["flag_rate"])
        if len(recent) == thresholds.window_days:
            break
    if recent:
        references[f"median of {len(recent)} recent night(s)"] = statistics.median(recent)
    reasons = []
    if flag_rate is not None:
        for name, ref in references.items():
            high = flag_rate > max(ref * thresholds.flag_rate_ratio_max, ref + thresholds.flag_rate_abs_change_max)
            low = flag_rate < ref / thresholds.flag_rate_ratio_max and ref - flag_rate > thresholds.flag_rate_abs_change_max
            if high or low:
                reasons.append(f"flag rate {flag_rate:.1%} vs {ref:.1%} on the champion's {name}")
    input_drift = lake.read_report(source, day, "drift") or {}
    if input_drift.get("flagged"):
        reasons.append(f"input {input_drift['summary']}")
    return {"flag_rate": flag_rate, "references": {k: round(v, 6) for k, v in references.items()},
            "suspect": bool(reasons), "reasons": reasons,
            "input_drift": input_drift.get("summary"),
            "skew": serving_skew(lake, source, day, champion_version, thresholds, input_drift)}


def serving_skew(lake, source: str, day: str, champion_version, thresholds: DriftThresholds,
                 input_drift: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Training/serving skew: the statistics of the features scored tonight against those of the
    days ``champion_version`` (the model that scored them) was trained on. The night's drift report
    holds them when the night's champion is that version; otherwise (a rollback or a promotion
    between the night's drift check and the scoring) they are computed here from the profiles.
    None when the version's training days have no profile."""
    input_drift = input_drift if input_drift is not None else (lake.read_report(source, day, "drift") or {})
    reference = (input_drift.get("references") or {}).get("champion_training") or {}
    if str(input_drift.get("champion_version")) == str(champion_version) and reference.get("stats"):
        days, stats = reference["days"], reference["stats"]
    else:
        tonight = profile_of(lake, source, day)
        days = [d for d in champion_training_days(lake, source, champion_version) if profile_of(lake, source, d)]
        if tonight is None or not days:
            return None
        stats = compare(tonight, [profile_of(lake, source, d) for d in days], thresholds)["stats"]
    return {"champion_version": str(champion_version), "reference_days": list(days), **stats}


# what the learned bounds bound, per validation suite: (report, key) of the recent validated days
LEARNED_VOLUME = {"parsed_lines": ("ingest", "parsed_lines"), "session_features": ("features", "sessions")}


def learned_template_share_bounds(lake, source: str, day: str, thresholds: DriftThresholds) -> list[dict[str, Any]] | None:
    """Line-share bounds for the ``template_share_top`` templates with the largest median share of
    lines over the recent validated days (their profiles): ``median +- k MAD`` of each one's daily
    share, widened to at least ``+-bounds_min_relative`` of the median, within [0, 1]; a template
    absent from a day counts as share 0 there. None until there are 3 such days."""
    if thresholds.template_share_top <= 0:
        return None
    days = recent_validated_days(lake, source, day, thresholds.window_days)
    shares_by_day, used_days = [], []
    for d in days:
        profile = profile_of(lake, source, d) or {}
        total = float(profile.get("lines") or 0)
        if total > 0:
            shares_by_day.append({str(k): float(v) / total for k, v in (profile.get("templates") or {}).items()})
            used_days.append(d)
    if len(shares_by_day) < 3:
        return None
    templates = set().union(*shares_by_day)
    medians = {k: statistics.median(s.get(k, 0.0) for s in shares_by_day) for k in templates}
    top = sorted(medians, key=lambda k: (-medians[k], k))[:thresholds.template_share_top]
    out = []
    for template in top:
        values = [s.get(template, 0.0) for s in shares_by_day]
        low, high = robust_bounds(values, thresholds.bounds_k_mad)
        med = medians[template]
        low = max(0.0, min(low, med * (1 - thresholds.bounds_min_relative)))
        high = min(1.0, max(high, med * (1 + thresholds.bounds_min_relative)))
        out.append({"template_id": template, "min": math.floor(low * 1e4) / 1e4, "max": math.ceil(high * 1e4) / 1e4,
                    "median": round(med, 4), "days": used_days, "k_mad": thresholds.bounds_k_mad})
    return out


def template_shares(profile: dict[str, Any] | None, template_ids: list[str]) -> dict[str, float]:
    """The share of a profile's lines each of ``template_ids`` has (0 for an absent one)."""
    profile = profile or {}
    total = float(profile.get("lines") or 0)
    counts = {str(k): float(v) for k, v in (profile.get("templates") or {}).items()}
    return {t: (counts.get(t, 0.0) / total if total else 0.0) for t in template_ids}


def learned_volume_bounds(lake, source: str, day: str, suite: str, thresholds: DriftThresholds) -> dict[str, Any] | None:
    """Row-count bounds for ``suite`` learned from the recent validated days: ``median +- k MAD``,
    at least ``+-bounds_min_relative`` of the median; None until there are 3 such days (the
    source's fixed bounds apply alone)."""
    step, key = LEARNED_VOLUME[suite]
    days = recent_validated_days(lake, source, day, thresholds.window_days)
    values = [(lake.read_report(source, d, step) or {}).get(key) for d in days]
    values = [float(v) for v in values if isinstance(v, (int, float))]
    bounds = robust_bounds(values, thresholds.bounds_k_mad)
    if bounds is None:
        return None
    med = statistics.median(values)
    low = max(0, math.floor(min(bounds[0], med * (1 - thresholds.bounds_min_relative))))
    high = math.ceil(max(bounds[1], med * (1 + thresholds.bounds_min_relative)))
    return {"min": low, "max": high, "median": med, "days": days, "k_mad": thresholds.bounds_k_mad}
