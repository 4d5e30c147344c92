"""The decision record a person reads: one Markdown page per nightly decision, with images.

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


def render_markdown(record: dict[str, Any], validation: dict[str, Any]) -> str:
    """The record as Markdown (pure; images are referenced by file name)."""
    out = [f"# Nightshift decision: {record['source']} {record['day']}", "",
           f"**Decision: {record['decision']}**" + (" (dry run: no alias moved)" if record.get("dry_run") else ""), "",
           f"Reason: {record['reason']}", "",
           *([f"Champion after: {('v' + record['champion_after']) if record['champion_after'] else 'none'}"
              + (f" ({record['move']})" if record.get("move") else ""), ""] if "champion_after" in record else []),
           f"Mode `{record['mode']}`; challenger `{record['best_candidate']}` registered as "
           f"{record['model_name']} v{record['challenger_version']}; champion before: "
           f"{('v' + record['champion_before']) if record.get('champion_before') else 'none'}.", "",
           "## Data validation", ""]
    out.append(_table(["suite", "result", "failures"],
                      [[s, "passed" if v and v["success"] else ("FAILED" if v else "not run"),
                        "; ".join(v["failures"]) if v else ""] for s, v in validation.items()]))
    out += ["", f"## Candidates (holdout {', '.join(record['holdout_days'])}; trained on {', '.join(record['train_days'])})", ""]
    rows = [[n, _fmt(m["f1"]), f"[{m['f1_lower']:.3f}, {m['f1_upper']:.3f}]", _fmt(m["precision"]), _fmt(m["recall"]),
             m["sessions"], m["positives"]] for n, m in record["candidates"].items()]
    if record.get("champion_metrics"):
        m = record["champion_metrics"]
        rows.append([f"champion v{record['champion_before']}", _fmt(m["f1"]), "", _fmt(m["precision"]), _fmt(m["recall"]),
                     m["sessions"], m["positives"]])
    out.append(_table(["model", "F1", f"F1 {record['policy']['confidence']:.0%} CI", "precision", "recall", "sessions",
                       "anomalous"], rows))
    if record.get("bootstrap"):
        b = record["bootstrap"]
        out += ["", f"Paired bootstrap ({b['resamples']} resamples) of F1(challenger) - F1(champion): "
                    f"{b['observed']:+.3f}, CI [{b['lower']:+.3f}, {b['upper']:+.3f}] (margin {record['policy']['margin']})."]
    out += ["", "## Gate checks", "", _table(["check", "passed", "detail"],
                                              [[c["name"], "yes" if c["passed"] else "NO", c["detail"]] for c in record["checks"]])]
    if record.get("backtest"):
        out += ["", "## Backtest", "", _table(
            ["day", "sessions", "challenger F1", "champion F1", "challenger trained on"],
            [[r["day"], r["sessions"], _fmt(r["challenger_f1"]), _fmt(r["champion_f1"]), ", ".join(r["trained_on"])]
             for r in record["backtest"]])]
    if record.get("slices"):
        out += ["", "## Slices", "", _table(
            ["slice", "value", "sessions", "anomalous", "challenger F1", "champion F1", "judged"],
            [[r["slice"], r["value"], r["sessions"], r["positives"], _fmt(r["challenger_f1"]), _fmt(r["champion_f1"]),
              "yes" if r["judged"] else "too small"] for r in record["slices"]])]
    out += ["", "## Challenger on the holdout", "", "![confusion matrix](confusion_matrix.png)", "",
            "![precision-recall curve](precision_recall.png)", ""]
    return "\n".join(out)


def render_images(out_dir: Path, y, challenger_scores, champion_scores=None) -> list[Path]:
    """Confusion matrix (challenger, threshold 0.5) and precision-recall curves as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay

    y = np.asarray(y)
    paths = []
    fig, ax = plt.subplots(figsize=(4, 4))
    ConfusionMatrixDisplay.from_predictions(y, (np.asarray(challenger_scores) >= 0.5).astype(int), labels=[0, 1],
                                            display_labels=["normal", "anomalous"], ax=ax, colorbar=False)
    ax.set_title("challenger, holdout")
    paths.append(out_dir / "confusion_matrix.png")
    fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    if 0 < y.sum() < len(y):
        PrecisionRecallDisplay.from_predictions(y, challenger_scores, name="challenger", ax=ax)
        if champion_scores is not None:
            PrecisionRecallDisplay.from_predictions(y, champion_scores, name="champion", ax=ax)
    ax.set_title("precision-recall, holdout")
    paths.append(out_dir / "precision_recall.png")
    fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)
    return paths


def log_decision_record(settings, record: dict[str, Any], y, challenger_scores, champion_scores=None) -> dict[str, str]:
    """Write the record to the lake and log it to the challenger's run; returns both locations."""
    from nightshift import registry

    lake = Lake(settings.data_root)
    out_dir = lake.reports_dir(record["source"], record["day"]) / "decision_record"
    out_dir.mkdir(parents=True, exist_ok=True)
    validation = {s: lake.read_report(record["source"], record["day"], f"validation_{s}")
                  for s in ("parsed_lines", "session_features")}
    (out_dir / "decision.md").write_text(render_markdown(record, validation))
    render_images(out_dir, y, challenger_scores, champion_scores)
    registry.call(settings, "log the decision record", registry.client(settings).log_artifacts,
                   record["best_run_id"], str(out_dir), "decision_record")
    return {"path": str(out_dir / "decision.md"), "mlflow_artifact": f"runs:/{record['best_run_id']}/decision_record/decision.md"}


def update_markdown(settings, record: dict[str, Any]) -> None:
    """Re-render ``decision.md`` with the record's final decision (after an approval, a move or a
    refusal) in the lake and on the run; the images stay as they are."""
    from nightshift import registry

    lake = Lake(settings.data_root)
    out_dir = lake.reports_dir(record["source"], record["day"]) / "decision_record"
    out_dir.mkdir(parents=True, exist_ok=True)
    validation = {s: lake.read_report(record["source"], record["day"], f"validation_{s}")
                  for s in ("parsed_lines", "session_features")}
    (out_dir / "decision.md").write_text(render_markdown(record, validation))
    registry.call(settings, "log the decision record", registry.client(settings).log_artifact,
                   record["best_run_id"], str(out_dir / "decision.md"), "decision_record")
