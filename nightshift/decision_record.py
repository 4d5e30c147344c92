"""The decision record a person reads: one page per nightly decision, with images, as Markdown
(``decision.md``) and as a self-contained HTML page (``decision.html``, images inlined: what
MLflow's artifact viewer renders).

Contents: data validation outcome, candidates' holdout metrics with bootstrap intervals, the
challenger-vs-champion interval, slices, the backtest table, every gate check, the decision and
its reason, a confusion matrix and a precision-recall curve. Written to the lake
(``reports/source=<s>/dt=<day>/decision_record/``) and logged to the challenger's MLflow run
(artifact path ``decision_record/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nightshift.lake import Lake


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _pct(x: Any) -> str:
    """A share as a percentage; "n/a" where the statistic was not available (e.g. the unseen-session
    share of a profile without per-session template sets)."""
    return f"{x:.1%}" if isinstance(x, (int, float)) else "n/a"


def render_markdown(record: dict[str, Any], validation: dict[str, Any], drift: dict[str, Any] | None = None) -> str:
    """The record as Markdown (pure; images are referenced by file name)."""
    out = [f"# Nightshift decision: {record['source']} {record['day']}", "",
           f"**Decision: {record['decision']}**" + (" (dry run: no alias moved)" if record.get("dry_run") else ""), "",
           f"Reason: {record['reason']}", "",
           *_champion_warning(record),
           *([f"Champion after: {('v' + record['champion_after']) if record['champion_after'] else 'none'}"
              + (f" ({record['move']})" if record.get("move") else ""), ""] if "champion_after" in record else []),
           f"Mode `{record['mode']}`; challenger `{record['best_candidate']}` registered as "
           f"{record['model_name']} v{record['challenger_version']}; champion before: "
           f"{('v' + record['champion_before']) if record.get('champion_before') else 'none'}.", "",
           "## Data validation", ""]
    out.append(_table(["suite", "result", "failures"],
                      [[s, "passed" if v and v["success"] else ("FAILED" if v else "not run"),
                        "; ".join(v["failures"]) if v else ""] for s, v in validation.items()]))
    out += _drift_section(drift)
    if record.get("labelled") is False:
        return _render_without_labels(record, out)
    out += ["", f"## Candidates (holdout {', '.join(record['holdout_days'])}; trained on {', '.join(record['train_days'])})", ""]
    training = record.get("candidate_training") or {}

    def trained(n):
        t = training.get(n) or {}
        sec = t.get("seconds") or {}
        thr = t.get("threshold")
        return [("supervised" if t.get("supervised") else "no labels") if t else "",
                "" if thr is None else f"{thr:.3f}",
                f"{sec['train_seconds']:.1f} (search {sec['tuning_seconds']:.1f})" if sec else ""]

    rows = [[n, _fmt(m["f1"]), f"[{m['f1_lower']:.3f}, {m['f1_upper']:.3f}]", _fmt(m["precision"]), _fmt(m["recall"]),
             m["sessions"], m["positives"], *trained(n)] for n, m in record["candidates"].items()]
    if record.get("champion_metrics"):
        m = record["champion_metrics"]
        rows.append([f"champion v{record['champion_before']}", _fmt(m["f1"]), "", _fmt(m["precision"]), _fmt(m["recall"]),
                     m["sessions"], m["positives"], "", "", ""])
    out.append(_table(["model", "F1", f"F1 {record['policy']['confidence']:.0%} CI", "precision", "recall", "sessions",
                       "anomalous", "labels", "threshold", "training s"], rows))
    if training:
        out += ["", "Chosen parameters: " + "; ".join(f"`{n}` {t.get('params')}" for n, t in training.items())]
    if record.get("bootstrap"):
        b = record["bootstrap"]
        out += ["", f"Paired bootstrap ({b['resamples']} resamples) of F1(challenger) - F1(champion): "
                    f"{b['observed']:+.3f}, CI [{b['lower']:+.3f}, {b['upper']:+.3f}] (margin {record['policy']['margin']})."]
        out += ["", "## Promotion rules", "", rule_rows(record)]
    out += ["", "## Gate checks", "", _table(["check", "passed", "detail"],
                                              [[c["name"], "yes" if c["passed"] else "NO", c["detail"]] for c in record["checks"]])]
    if record.get("backtest"):
        out += ["", "## Backtest", "", _table(
            ["day", "sessions", "challenger F1", "champion F1", "challenger trained on", "champion trained on it"],
            [[r["day"], r["sessions"], _fmt(r["challenger_f1"]), _fmt(r["champion_f1"]), ", ".join(r["trained_on"]),
              "yes (not judged, not pooled)" if r.get("champion_in_sample") else "no"]
             for r in record["backtest"]])]
    if record.get("slices"):
        out += ["", "## Slices", "", _table(
            ["slice", "value", "sessions", "anomalous", "challenger F1", "champion F1", "judged"],
            [[r["slice"], r["value"], r["sessions"], r["positives"], _fmt(r["challenger_f1"]), _fmt(r["champion_f1"]),
              "yes" if r["judged"] else "too small"] for r in record["slices"]])]
    out += ["", "## Challenger and champion on the holdout", "", "![confusion matrices](confusion_matrix.png)", "",
            "![precision-recall curves, operating points marked](precision_recall.png)", ""]
    return "\n".join(out)


def _pyplot():
    """matplotlib's pyplot on the file-only backend (no display on the workers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


DRIFT_IMAGE = "template_distribution.png"
DRIFT_TREND_IMAGE = "drift_trend.png"


def _drift_section(drift: dict[str, Any] | None) -> list[str]:
    """Input drift of the night and training/serving skew (tonight's features against the
    champion's training days), from the day's ``drift`` report (``nightshift.drift``)."""
    out = ["", "## Input drift and training/serving skew", ""]
    if not drift:
        return out + ["No drift report for this night (computed after validation, before training)."]
    out += [f"**{drift['summary']}**", ""]
    rows = []
    for name, ref in (drift.get("references") or {}).items():
        label = {"champion_training": "champion's training days (skew)", "recent": "recent validated days"}.get(name, name)
        if not ref.get("days"):
            rows.append([label, "-", *["" for _ in range(8)]])
            continue
        st = ref["stats"]
        rows.append([label, ", ".join(ref["days"]), _fmt(st["js_distance"]), _fmt(st["psi"]),
                     f"{st['unseen_line_share']:.1%} ({len(st['unseen_templates'])} templates)",
                     _pct(st.get("unseen_session_share")),
                     _fmt(st["volume_ratio_lines"]),
                     f"{_fmt(st['mean_session_length'])} vs {_fmt(st['reference_mean_session_length'])}",
                     f"{_fmt(st['warn_share'])} vs {_fmt(st['reference_warn_share'])}",
                     f"{_fmt(st['error_share'])} vs {_fmt(st['reference_error_share'])}"])
    out.append(_table(["reference", "days", "JS distance", "PSI", "unseen lines", "unseen sessions",
                       "volume (x median)", "lines/session (tonight vs ref)", "warn share", "error share"], rows))
    t = drift.get("thresholds") or {}
    if t:
        sessions = t.get("unseen_session_share_max")
        out += ["", f"Flagged above JS {t['js_distance_max']}, unseen lines {t['unseen_line_share_max']:.1%}, "
                    + (f"unseen sessions {sessions:.1%}, " if sessions is not None else "")
                    + f"volume outside {t['volume_ratio_min']}-{t['volume_ratio_max']}x (config/drift.yaml)."]
    if drift.get("references", {}).get("champion_training", {}).get("days") or drift.get("references", {}).get("recent", {}).get("days"):
        out += ["", f"![template distribution, reference vs tonight]({DRIFT_IMAGE})", "",
                f"![drift per night: JS distance and unseen share against the recent days]({DRIFT_TREND_IMAGE})"]
    return out


def render_drift_trend(out_dir: Path, lake, source: str, day: str, nights: int = 14) -> Path | None:
    """The drift history up to ``day`` (the ``drift`` reports of the last ``nights`` nights): JS
    distance and unseen-template share against the recent validated days, flagged nights marked."""
    days = [d for d in lake.days_with("reports", source) if d <= day][-nights:]
    rows = []
    for d in days:
        report = lake.read_report(source, d, "drift") or {}
        recent = (report.get("references") or {}).get("recent") or {}
        if recent.get("days"):
            rows.append((d, recent["stats"]["js_distance"], recent["stats"]["unseen_line_share"], report["flagged"]))
    if not rows:
        return None
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(rows)), 3.2))
    x = range(len(rows))
    ax.plot(x, [r[1] for r in rows], marker="o", label="JS distance (template distribution)")
    ax.plot(x, [r[2] for r in rows], marker="s", label="share of lines with unseen templates")
    flagged = [i for i, r in enumerate(rows) if r[3]]
    ax.scatter(flagged, [rows[i][1] for i in flagged], s=120, facecolors="none", edgecolors="red", label="flagged")
    ax.set_xticks(list(x), [r[0][5:] for r in rows], rotation=45, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(f"input drift per night against the recent validated days, up to {day}")
    ax.legend(fontsize=7)
    path = out_dir / DRIFT_TREND_IMAGE
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def render_drift_image(out_dir: Path, lake, drift: dict[str, Any] | None, top: int = 20) -> Path | None:
    """Lines per template (share), tonight against each reference, for the templates with the
    largest share on either side (new templates included), as a PNG."""
    from nightshift.drift import profile_of

    if not drift:
        return None
    tonight = profile_of(lake, drift["source"], drift["day"])
    refs = {name: ref["days"] for name, ref in (drift.get("references") or {}).items() if ref.get("days")}
    if tonight is None or not refs:
        return None
    plt = _pyplot()

    def shares(profiles: list[dict]) -> dict[str, float]:
        counts: dict[str, float] = {}
        for p in profiles:
            for k, v in p["templates"].items():
                counts[k] = counts.get(k, 0.0) + v
        total = sum(counts.values()) or 1.0
        return {k: v / total for k, v in counts.items()}

    series = {"tonight": shares([tonight])}
    for name, days in refs.items():
        series[name.replace("_", " ")] = shares([p for p in (profile_of(lake, drift["source"], d) for d in days) if p])
    keys = sorted(set().union(*series.values()), key=lambda k: -max(s.get(k, 0.0) for s in series.values()))[:top]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(keys)), 3.6))
    width = 0.8 / len(series)
    for i, (name, share) in enumerate(series.items()):
        ax.bar([x + i * width for x in range(len(keys))], [share.get(k, 0.0) for k in keys], width=width, label=name)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(keys))], keys, rotation=60, fontsize=7)
    ax.set_ylabel("share of lines")
    ax.set_xlabel("template id (largest shares)")
    ax.set_title(f"template distribution, {drift['day']} vs references")
    ax.legend(fontsize=8)
    path = out_dir / DRIFT_IMAGE
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _champion_warning(record: dict[str, Any]) -> list[str]:
    """A warning when the champion that stays in production is itself below the floors tonight
    (a "kept" must not read as "all is well")."""
    from nightshift.gate import floors_failed

    m, policy = record.get("champion_metrics"), record.get("policy") or {}
    if not m or m.get("f1") is None or record["decision"] == "promoted" or "floor_precision" not in policy:
        return []
    if not floors_failed(m, policy["floor_precision"], policy["floor_recall"]):
        return []
    flagged = f"; it flagged {m['flagged']:,} of {m['sessions']:,} sessions" if "flagged" in m else ""
    return [f"> **Warning: the champion v{record.get('champion_before')} that stays in production is below the "
            f"floors tonight**: precision {m['precision']:.3f} (floor {policy['floor_precision']}), recall "
            f"{m['recall']:.3f} (floor {policy['floor_recall']}){flagged}. Consider a rollback "
            "(`nightshift_rollback`) or a retraining.", ""]


def _render_without_labels(record: dict[str, Any], out: list[str]) -> str:
    """The record of a source without labels: flag rates per night, the check, the limits."""
    training = record.get("candidate_training") or {}
    days = list(dict.fromkeys([*record["train_days"], *record["holdout_days"]]))   # in sample: the same day once
    in_sample = " (in sample: the same day, judged by the flag-rate bounds only)" if record.get("in_sample") else ""
    out += ["", "## What this decision cannot know", "", record["limits"], "",
            f"## Detectors (tonight {', '.join(record['holdout_days'])}; trained on {', '.join(record['train_days'])}"
            f"{in_sample})", ""]
    rows = []
    for n, m in record["candidates"].items():
        rates = (training.get(n) or {}).get("flag_rates") or {}
        sec = (training.get(n) or {}).get("seconds") or {}
        rows.append([n, *[f"{rates[d]:.2%}" if d in rates else "" for d in days],
                     *(["", "n/a"] if m.get("recent_median") is None else [f"{m['recent_median']:.2%}", f"{m['change']:.2%}"]),
                     f"{sec.get('train_seconds', 0):.1f}"])
    out.append(_table(["detector", *[f"flag rate {d}" for d in days], "recent median", "change", "training s"], rows))
    p = record["policy"]
    out += ["", f"Bounds: flag rate {p['unlabelled_min_flag_rate']:.2%}-{p['unlabelled_max_flag_rate']:.2%}, change "
                f"at most {p['unlabelled_max_rate_change']:.2%}.", "", "## Gate checks", "",
            _table(["check", "passed", "detail"], [[c["name"], "yes" if c["passed"] else "NO", c["detail"]]
                                                   for c in record["checks"]]), ""]
    return "\n".join(out)


def rule_rows(record: dict[str, Any]) -> str:
    """One row per rule of the comparison with its numbers (``config/promotion.yaml``: ``rule``,
    ``margin``, ``non_inferiority_delta``, ``bootstrap_days``, ``stale_after_days``)."""
    policy, b = record["policy"], record["bootstrap"]
    rule = record.get("rule") or policy.get("rule", "strict")
    delta = policy.get("non_inferiority_delta", 0.0)
    hb = record.get("bootstrap_holdout") or b
    days = b.get("days") or record["holdout_days"]
    st = record.get("staleness")
    check = next((c for c in record["checks"] if c["name"] == "bootstrap"), {})
    yes = lambda ok: "yes" if ok else "no"  # noqa: E731
    rows = [
        ["evidence", f"bootstrap over {', '.join(days)} ({sum(b.get('sessions') or []) or '?'} sessions, resampled "
                     f"within days); holdout alone: {hb['observed']:+.3f} [{hb['lower']:+.3f}, {hb['upper']:+.3f}]", ""],
        ["superior", f"lower {b['lower']:+.3f} > margin {policy['margin']}", yes(b["lower"] > policy["margin"])],
        ["non-inferior", f"lower {b['lower']:+.3f} > -delta {-delta:+.3f}"
                         + ("" if rule == "non_inferior" else " (not used: rule strict)"), yes(b["lower"] > -delta)],
        ["better point estimate", f"observed {b['observed']:+.4f} > 0", yes(b["observed"] > 0)],
        ["stale champion", (st["detail"] if st else "not judged") + ("" if rule == "non_inferior" else " (not used: rule strict)"),
         yes(bool(st and st["stale"]))],
        [f"rule `{rule}`", "strict: superior" if rule == "strict" else
         "non_inferior: superior, or non-inferior and (better point estimate or stale champion)",
         f"passed as {check['via']}" if check.get("via") else "NO"],
    ]
    return _table(["rule", "numbers", "holds"], rows)


def render_images(out_dir: Path, y, challenger_scores, champion_scores=None) -> list[Path]:
    """Confusion matrices (challenger and, when there is one, champion; both at their operating
    point: probability 0.5, where each model's own threshold lies) and precision-recall curves
    with each operating point marked, as PNG."""
    plt = _pyplot()
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, precision_score, recall_score

    y = np.asarray(y)
    models = [("challenger", np.asarray(challenger_scores))]
    if champion_scores is not None:
        models.append(("champion", np.asarray(champion_scores)))
    paths = []
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 4), squeeze=False)
    for ax, (name, scores) in zip(axes[0], models):
        ConfusionMatrixDisplay.from_predictions(y, (scores >= 0.5).astype(int), labels=[0, 1],
                                                display_labels=["normal", "anomalous"], ax=ax, colorbar=False)
        ax.set_title(f"{name}, holdout")
    paths.append(out_dir / "confusion_matrix.png")
    fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    if 0 < y.sum() < len(y):
        for (name, scores), color in zip(models, ("C0", "C1")):
            PrecisionRecallDisplay.from_predictions(y, scores, name=name, ax=ax, curve_kwargs={"color": color})
            pred = (scores >= 0.5).astype(int)
            point = (recall_score(y, pred, zero_division=0), precision_score(y, pred, zero_division=0))
            ax.plot(*point, marker="o", markersize=8, color=color, linestyle="none",
                    label=f"{name} operating point (P {point[1]:.2f}, R {point[0]:.2f})")
        ax.legend(loc="lower left", fontsize=8)
    ax.set_title("precision-recall, holdout")
    paths.append(out_dir / "precision_recall.png")
    fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)
    return paths


def render_html(markdown_text: str, out_dir: Path) -> str:
    """The record as one self-contained HTML page (tables rendered, images inlined as data URIs),
    which MLflow's artifact viewer shows as a page: it shows ``decision.md`` as plain text, with
    its image links as literal text."""
    import base64
    import html
    import re

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)

    def inline(match: re.Match) -> str:
        path = out_dir / html.unescape(match.group(1))
        if "/" in match.group(1) or not path.is_file():
            return match.group(0)
        return 'src="data:image/png;base64,' + base64.b64encode(path.read_bytes()).decode() + '"'

    body = re.sub(r'src="([^"]+\.png)"', inline, body)
    style = ("body{font-family:sans-serif;max-width:1000px;margin:1em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}"
             "blockquote{background:#fff3cd;border-left:4px solid #e0a800;margin:1em 0;padding:.5em 1em}")
    title = html.escape(markdown_text.splitlines()[0].lstrip("# ") if markdown_text else "Nightshift decision")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head>"
            f"<body>{body}</body></html>")


def _write_markdown(settings, record: dict[str, Any]):
    """Render ``decision.md`` into the day's ``decision_record/`` (atomically: a reader never sees
    half a page); returns that directory."""
    lake = Lake(settings.data_root)
    out_dir = lake.reports_dir(record["source"], record["day"]) / "decision_record"
    out_dir.mkdir(parents=True, exist_ok=True)
    validation = {s: lake.read_report(record["source"], record["day"], f"validation_{s}")
                  for s in ("parsed_lines", "session_features")}
    drift = lake.read_report(record["source"], record["day"], "drift")
    _write_atomic(out_dir / "decision.md", render_markdown(record, validation, drift))
    return out_dir


def _write_html(out_dir: Path) -> None:
    """``decision.html`` from ``decision.md`` and the images beside it."""
    _write_atomic(out_dir / "decision.html", render_html((out_dir / "decision.md").read_text(), out_dir))


def _write_atomic(path: Path, text: str) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def log_decision_record(settings, record: dict[str, Any], y, challenger_scores, champion_scores=None) -> dict[str, str]:
    """Write the record to the lake and log it to the challenger's run; returns both locations."""
    from nightshift import registry

    out_dir = _write_markdown(settings, record)
    if y is not None:          # a source without labels has no confusion matrix or PR curve
        render_images(out_dir, y, challenger_scores, champion_scores)
    lake = Lake(settings.data_root)
    render_drift_image(out_dir, lake, lake.read_report(record["source"], record["day"], "drift"))
    render_drift_trend(out_dir, lake, record["source"], record["day"])
    _write_html(out_dir)
    registry.call(settings, "log the decision record", registry.client(settings).log_artifacts,
                   record["best_run_id"], str(out_dir), "decision_record")
    return {"path": str(out_dir / "decision.md"), "mlflow_artifact": f"runs:/{record['best_run_id']}/decision_record/decision.md"}


def update_markdown(settings, record: dict[str, Any]) -> None:
    """Re-render ``decision.md`` with the record's final decision (after an approval, a move or a
    refusal) in the lake and on the run; the images stay as they are."""
    from nightshift import registry

    out_dir = _write_markdown(settings, record)
    _write_html(out_dir)
    for name in ("decision.md", "decision.html"):
        registry.call(settings, "log the decision record", registry.client(settings).log_artifact,
                      record["best_run_id"], str(out_dir / name), "decision_record")
