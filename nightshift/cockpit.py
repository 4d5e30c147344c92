"""What the Nightshift view in the Airflow UI shows (``nightshift.web``), gathered from the lake's
reports and the registry: per source, the champion (which version, since which night, chosen
how), every night's outcome with its reason and evidence, and what a rollback would install.

Everything here reads; the one write path the view offers (a rollback) goes through
``nightshift.rollback``, the locked and logged path the CLI and the rollback DAG use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

from nightshift.lake import Lake
from nightshift.summary import day_row, drift_cell

NIGHTLY_DAG = "nightshift_nightly"
DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:5000"
OUTCOMES = ("promoted", "kept", "skipped", "failed", "rolled back", "running", "not decided")


def mlflow_ui_url(tracking_uri: str | None = None) -> str:
    """Where people open MLflow: ``NIGHTSHIFT_MLFLOW_UI_URL``, else the tracking server when it is
    one (http), else the ``make ui`` address."""
    explicit = os.environ.get("NIGHTSHIFT_MLFLOW_UI_URL")
    if explicit:
        return explicit.rstrip("/")
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return DEFAULT_MLFLOW_UI_URL


def sources(lake: Lake) -> list[str]:
    """Sources that have at least one day of reports."""
    base = lake.root / "reports"
    if not base.is_dir():
        return []
    return sorted(p.name[len("source="):] for p in base.iterdir() if p.is_dir() and p.name.startswith("source="))


def _f1(metrics: dict | None) -> float | None:
    value = (metrics or {}).get("f1")
    return float(value) if isinstance(value, (int, float)) else None


def night(lake: Lake, source: str, day: str) -> dict[str, Any]:
    """One night: outcome, the reason in one line, F1s, the champion's flag rate, links' keys."""
    decision = lake.read_report(source, day, "decision") or {}
    night_report = lake.read_report(source, day, "night") or {}
    scoring = lake.read_report(source, day, "scoring") or {}
    drift = lake.read_report(source, day, "drift") or {}
    row = day_row(lake, source, day)
    outcome = decision.get("decision")
    if outcome is None:
        outcome = "running" if not night_report and lake.read_report(source, day, "spark_ingest") else "not decided"
    reason = decision.get("reason") or row["decision"]
    candidates = decision.get("candidates") or {}
    best = decision.get("best_candidate")
    airflow = decision.get("airflow") or {}
    run_id = airflow.get("airflow.run_id") or decision.get("run_id") or night_report.get("run_id")
    parsed = lake.read_report(source, day, "validation_parsed_lines") or {}
    features = lake.read_report(source, day, "validation_session_features") or {}
    return {
        "source": source,
        "day": day,
        "outcome": outcome,
        "dry_run": bool(decision.get("dry_run")),
        "reason": " ".join(str(reason).split()),
        "best_candidate": best,
        "best_f1": _f1(candidates.get(best)) if best else None,
        "candidates_f1": {name: _f1(m) for name, m in candidates.items()},
        "champion_before": decision.get("champion_before"),
        "champion_f1": _f1(decision.get("champion_metrics")),
        "champion_after": decision.get("champion_after"),
        "challenger_version": decision.get("challenger_version"),
        "mlflow_run_id": decision.get("best_run_id"),
        "flag_rate": scoring.get("flag_rate") if not scoring.get("skipped") else None,
        "scored_by": scoring.get("champion_version"),
        "drift": drift_cell(drift) if drift else None,
        "drift_flagged": bool(drift.get("flagged")),
        "suspect": bool(scoring.get("suspect")),
        "validation": row["validation"],
        "lines": row["lines"],
        "run_id": run_id,
        "has_record": (lake.reports_dir(source, day) / "decision_record" / "decision.html").is_file(),
        "has_validation": bool(parsed or features),
        "wall_s": night_report.get("wall_s"),
    }


def nights(lake: Lake, source: str) -> list[dict[str, Any]]:
    """Every night of ``source`` with reports, oldest first."""
    return [night(lake, source, day) for day in lake.days_with("reports", source)]


def champion_header(settings, model_name: str) -> dict[str, Any]:
    """The champion now: version, since which night and how (the promotion log's last move to it),
    the ``previous`` alias. ``error`` says why the registry could not be read."""
    from nightshift import registry

    out: dict[str, Any] = {"model_name": model_name, "version": None, "previous": None, "since": None, "error": None}
    try:
        c = registry.client(settings)
        champ = registry.champion(c, model_name)
        previous = registry.alias(c, model_name, registry.PREVIOUS)
        view = registry.history(settings, model_name)
    except Exception as exc:         # the page still shows the nights; it says what it could not read
        out["error"] = f"registry not readable: {exc}"
        return out
    out["problems"] = view.problems
    if previous is not None:
        out["previous"] = {"version": str(previous.version),
                           "gate_passed": (previous.tags or {}).get("nightshift.gate_passed") == "true",
                           "day": (previous.tags or {}).get("nightshift.day")}
    if champ is None:
        return out
    out["version"] = str(champ.version)
    out["gate_passed"] = (champ.tags or {}).get("nightshift.gate_passed") == "true"
    out["trained_day"] = (champ.tags or {}).get("nightshift.day")
    out["candidate"] = (champ.tags or {}).get("nightshift.candidate")
    out["run_id"] = champ.run_id
    if view.entries and str(view.entries[-1].get("to_version")) != out["version"] and not view.pending:
        # the alias was moved by hand (MLflow's UI or API): no gate, no log entry; said, not hidden
        out["outside_move"] = (f"the champion alias points at v{out['version']}, but the promotion log's last move "
                               f"installed v{view.entries[-1].get('to_version')}: it was moved outside Nightshift "
                               "(MLflow's UI or API), without the gate and without a log entry")
    moves = [e for e in view.entries if str(e.get("to_version")) == out["version"]]
    if moves:
        last = moves[-1]
        out["since"] = {k: last.get(k) for k in ("time", "day", "action", "decided_by", "reason")}
    return out


def champion_below_floors(lake: Lake, source: str, version: str | None) -> str | None:
    """When the champion's latest evaluated night found it below the promotion floors, say so
    (a champion that is merely "kept" must not read as healthy)."""
    from nightshift.gate import floors_failed

    if version is None:
        return None
    for day in reversed(lake.days_with("reports", source)):
        decision = lake.read_report(source, day, "decision") or {}
        m, policy = decision.get("champion_metrics"), decision.get("policy") or {}
        if str(decision.get("champion_before")) != str(version) or not m or m.get("f1") is None:
            continue
        if "floor_precision" not in policy or not floors_failed(m, policy["floor_precision"], policy["floor_recall"]):
            return None
        flagged = f", flagging {m['flagged']:,} of {m['sessions']:,} sessions" if "flagged" in m else ""
        return (f"On the night of {day} the champion v{version} was below the floors: precision "
                f"{m['precision']:.3f} (floor {policy['floor_precision']}), recall {m['recall']:.3f} "
                f"(floor {policy['floor_recall']}){flagged}. Consider a rollback or a retraining.")
    return None


def run_day(lake: Lake, run_id: str) -> tuple[str, str] | None:
    """The (source, day) an Airflow run worked on, from the reports that record their run id
    (decision, night, the Spark job's); None when no report names it (yet)."""
    base = lake.root / "reports"
    if not base.is_dir():
        return None
    for source in sources(lake):
        for day in reversed(lake.days_with("reports", source)):
            for step in ("night", "decision", "spark_ingest"):
                report = lake.read_report(source, day, step) or {}
                ids = {report.get("run_id"), report.get("airflow_run_id"), (report.get("airflow") or {}).get("airflow.run_id")}
                if run_id in ids:
                    return source, day
    return None


def data_docs_site(lake: Lake) -> Path:
    """The local Data Docs site GX builds in the lake."""
    return lake.gx_dir / "uncommitted" / "data_docs" / "local_site"


def data_docs_page(lake: Lake, source: str, day: str) -> str | None:
    """The day's Data Docs result page, relative to the site: the first failing suite's page when
    validation failed, else the parsed lines' (the validation reports name their exact pages;
    older reports are matched by the run name ``<source> <day> ...``)."""
    site = data_docs_site(lake)
    reports = [lake.read_report(source, day, f"validation_{s}") or {} for s in ("parsed_lines", "session_features")]
    reports.sort(key=lambda r: bool(r.get("success", True)))     # a failed suite first
    for report in reports:
        pages = report.get("data_docs_pages") or {}
        failing = [b for b in pages if any(str(f).startswith(f"{b}:") for f in report.get("failures", []))]
        for batch in failing + sorted(pages):
            path = _site_relative(site, pages[batch])
            if path:
                return path
    validations = site / "validations"
    if not validations.is_dir():
        return None
    prefix = f"{source} {day} "
    found = sorted((p for p in validations.rglob("*.html") if any(part.startswith(prefix) for part in p.parts)),
                   key=lambda p: ("parsed_lines" not in str(p), str(p)))
    return found[0].relative_to(site).as_posix() if found else None


def _site_relative(site: Path, url: str) -> str | None:
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    path = Path(unquote(parsed.path))
    try:
        return path.resolve().relative_to(site.resolve()).as_posix()
    except ValueError:
        return None


def mlflow_run_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base}/#/experiments/{quote(str(experiment_id))}/runs/{quote(run_id)}"


def mlflow_version_url(base: str, model_name: str, version: str) -> str:
    return f"{base}/#/models/{quote(model_name)}/versions/{quote(str(version))}"
