"""The per-day summary a person reads after a run: what came in, what passed, what was decided.

Built only from the lake's reports (``reports/source=<s>/dt=<day>/*.json``), so it shows what the
pipeline recorded, not what the caller expected.
"""

from __future__ import annotations

from nightshift.lake import Lake


def day_row(lake: Lake, source: str, day: str) -> dict[str, str]:
    """One summary row for a day, from whatever reports exist for it."""
    ingest = lake.read_report(source, day, "ingest")
    parsed_v = lake.read_report(source, day, "validation_parsed_lines")
    features_v = lake.read_report(source, day, "validation_session_features")
    decision = lake.read_report(source, day, "decision")
    scoring = lake.read_report(source, day, "scoring")
    night = lake.read_report(source, day, "night")
    drift = lake.read_report(source, day, "drift")

    row = {"day": day, "lines": "-", "quarantined": "-", "new_templates": "-", "validation": "not run", "candidates": "-",
           "champion_f1": "-", "decision": "not run", "champion_after": "-", "scored": "-", "night": "-", "drift": "-", "record": None}
    if drift:
        row["drift"] = drift_cell(drift)
    if night:
        parts = night["parts"]
        row["night"] = (f"{night['wall_s']:.0f} s (Spark {parts['spark_startup_s']:.0f}+{parts['spark_work_s']:.0f}, "
                        f"train {parts['training_s']:.0f})")
    if scoring:
        row["scored"] = (f"{scoring['flagged']}/{scoring['sessions']} flagged by v{scoring['champion_version']}"
                         if not scoring.get("skipped") else f"skipped: {scoring['skipped']}")
    if ingest:
        row["lines"] = f"{ingest['input_lines']:,}"
        row["quarantined"] = f"{ingest['quarantined_lines']:,} ({ingest['quarantine_rate']:.1%})"
        row["new_templates"] = str(len(ingest.get("new_templates", [])))
    else:
        row["decision"] = "failed: ingest did not complete"
    failed = [v for v in (parsed_v, features_v) if v and not v["success"]]
    if failed:
        first = failed[0]
        row["validation"] = f"FAILED {first['suite']}"
        row["decision"] = "skipped: validation failed: " + "; ".join(first["failures"][:2])
    elif parsed_v and features_v:
        row["validation"] = "passed"
    elif parsed_v:
        row["validation"] = "parsed ok, features not validated"
    if decision and not failed:
        if decision["decision"] == "skipped":
            row["decision"] = f"skipped: {decision['reason']}"
        else:
            row["candidates"] = " ".join(f"{name}={_f1(m)}" for name, m in decision["candidates"].items())
            champ = decision.get("champion_metrics")
            row["champion_f1"] = f"{_f1(champ)} (v{decision['champion_before']})" if champ else "none"
            dry = " (dry run)" if decision.get("dry_run") else ""
            row["decision"] = f"{decision['decision']}{dry}: {decision['reason']}"
            row["champion_after"] = f"v{decision['champion_after']}" if decision.get("champion_after") else "none"
            row["record"] = (decision.get("decision_record") or {}).get("path")
    return row


def render_table(rows: list[dict[str, str]]) -> str:
    """A plain-text table (wraps nothing; long decisions go last)."""
    headers = {"day": "day", "lines": "lines in", "quarantined": "quarantined", "new_templates": "new templates",
               "validation": "validation",
               "candidates": "candidate F1 (holdout)", "champion_f1": "champion F1", "champion_after": "champion after", "scored": "nightly scoring",
               "night": "night wall", "drift": "input drift",
               "decision": "decision"}
    keys = list(headers)
    widths = {k: max(len(headers[k]), *(len(r[k]) for r in rows)) if rows else len(headers[k]) for k in keys}
    lines = ["  ".join(headers[k].ljust(widths[k]) for k in keys).rstrip()]
    lines.append("  ".join("-" * widths[k] for k in keys))
    for r in rows:
        lines.append("  ".join(r[k].ljust(widths[k]) for k in keys).rstrip())
    return "\n".join(lines)


def summarize(lake: Lake, source: str, days: list[str]) -> str:
    """The table, then where each day's decision record is."""
    rows = [day_row(lake, source, d) for d in days]
    records = [f"  {r['day']}: {r['record']}" for r in rows if r["record"]]
    return render_table(rows) + ("\n\nDecision records (Markdown, with confusion matrix and PR curve):\n" + "\n".join(records)
                                 if records else "")


def drift_cell(drift: dict) -> str:
    """``drift: flagged (JS 0.41, unseen 12.0%)``, ``none (JS 0.01, unseen 0.0%)`` or why not computed."""
    judged = [r["stats"] for r in (drift.get("references") or {}).values() if r.get("days")]
    if not judged:          # the first validated day, or no profile (said in the summary)
        return "no reference yet" if drift.get("summary", "").startswith("no reference") else drift.get("summary", "-")
    js = max(st["js_distance"] for st in judged)
    unseen = max(st["unseen_line_share"] for st in judged)
    return f"{'drift: flagged' if drift['flagged'] else 'none'} (JS {js:.2f}, unseen {unseen:.1%})"


def _f1(metrics: dict | None) -> str:
    """F1 to three decimals, or "n/a" where there is none (sources without labels)."""
    value = (metrics or {}).get("f1")
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"
