"""The Nightshift view of the Airflow UI (mounted by ``plugins/nightshift_plugin.py`` at
``/nightshift``): per source the champion (version, since which night, chosen how), every night
with its outcome, reason, F1s and links (Airflow run, MLflow run and version, decision record,
Data Docs), a metric trend, and a rollback form; plus the promotion log, as HTML and JSON.

FastAPI plugin apps are not behind the Airflow login by default: the plugin passes Airflow's own
auth dependency (``dependencies=``), so every page and JSON answer needs the logged-in user's
token (the UI's cookie or ``Authorization: Bearer``), like ``/api/v2``. The rollback POST also
needs ``rollback_dependencies`` (the plugin: may trigger ``nightshift_rollback``) and takes the
user's name from ``user_name`` (a dependency); without one the app refuses to roll back.
The session cookie is SameSite=Lax, so a form posted from another site carries no login.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from nightshift import cockpit, promotion_log
from nightshift.airflow_links import run_url
from nightshift.lake import Lake, check_day

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px 24px;color:#1f2328}
h1{font-size:1.4em} h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em} td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} .reason{max-width:38em}
.outcome{font-weight:600;padding:1px 6px;border-radius:4px;white-space:nowrap}
.promoted{background:#dafbe1;color:#116329} .kept{background:#eef1f4;color:#3d444d}
.skipped{background:#fff8c5;color:#7d4e00} .failed{background:#ffebe9;color:#a40e26}
.running,.not-decided{background:#ddf4ff;color:#0550ae}
.header{border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;background:#f6f8fa;max-width:60em}
.warn{border:1px solid #d4a72c;background:#fff8c5;padding:8px 12px;border-radius:6px;max-width:60em}
.error{border:1px solid #cf222e;background:#ffebe9;padding:8px 12px;border-radius:6px;max-width:60em}
.ok{border:1px solid #1a7f37;background:#dafbe1;padding:8px 12px;border-radius:6px;max-width:60em}
td.drift.flagged,.suspect{color:#a40e26;font-weight:600} a{color:#0969da} nav a{margin-right:1em} textarea{width:36em;height:4em}
"""


def _page(title: str, body: list[str] | str) -> str:
    content = body if isinstance(body, str) else "\n".join(body)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{content}</body></html>")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _prefix(request: Request) -> str:
    """Where the app is mounted (``/nightshift`` in Airflow; empty in tests)."""
    return request.scope.get("root_path", "").rstrip("/")


def trend_svg(rows: list[dict[str, Any]], width: int = 720, height: int = 220) -> str:
    """The nights' best candidate F1, champion F1 and champion flag rate as an inline SVG chart."""
    points = [r for r in rows if r["best_f1"] is not None or r["champion_f1"] is not None or r["flag_rate"] is not None]
    if not points:
        return "<p>No metrics yet: the trend appears after the first night with a holdout.</p>"
    left, right, top, bottom = 40, 150, 10, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(rows)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + plot_h * (1 - max(0.0, min(1.0, v)))

    parts = [f"<svg class='trend' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"role='img' aria-label='metric trend'>"]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{y(tick):.1f}' y2='{y(tick):.1f}' stroke='#eee'/>"
                     f"<text x='{left - 6}' y='{y(tick) + 4:.1f}' font-size='10' text-anchor='end'>{tick:g}</text>")
    series = [("best candidate F1", "best_f1", "#0969da"), ("champion F1", "champion_f1", "#1a7f37"),
              ("champion flag rate", "flag_rate", "#cf222e")]
    for k, (label, key, colour) in enumerate(series):
        pts = [(x(i), y(r[key])) for i, r in enumerate(rows) if r[key] is not None]
        if len(pts) > 1:
            parts.append(f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='"
                         + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + "'/>")
        parts.extend(f"<circle cx='{a:.1f}' cy='{b:.1f}' r='3' fill='{colour}'/>" for a, b in pts)
        ly = top + 14 + 16 * k
        parts.append(f"<rect x='{left + plot_w + 12}' y='{ly - 8}' width='10' height='10' fill='{colour}'/>"
                     f"<text x='{left + plot_w + 26}' y='{ly + 1}' font-size='11'>{_e(label)}</text>")
    for i, r in enumerate(rows):
        parts.append(f"<text x='{x(i):.1f}' y='{height - bottom + 14}' font-size='10' text-anchor='middle'>"
                     f"{_e(r['day'][5:])}</text>")
    parts.append("</svg>")
    return "".join(parts)


def create_app(data_root: Path | None = None, dependencies: Sequence = (), rollback_dependencies: Sequence = (),
               user_name: Callable[..., str] | None = None) -> FastAPI:
    """The app; ``data_root`` defaults to the configured lake, read at request time; ``dependencies``
    guard every route (the plugin: Airflow's authentication); ``rollback_dependencies`` guard the
    rollback POST as well; ``user_name`` is a dependency returning who is logged in."""
    app = FastAPI(title="Nightshift", description="The Nightshift view: champions, nights, rollbacks",
                  dependencies=list(dependencies))

    def settings():
        from nightshift.settings import load_settings

        s = load_settings()
        return dataclasses.replace(s, data_root=Path(data_root)) if data_root else s

    def lake() -> Lake:
        return Lake(settings().data_root)

    def model_name(source: str) -> str:
        from nightshift.training import load_training_config

        return load_training_config(settings().config_dir).model_name(source)

    def known_source(source: str) -> str:
        if source not in cockpit.sources(lake()):
            raise HTTPException(404, f"no nights recorded for source {source!r}; known: {cockpit.sources(lake())}")
        return source

    def history(name: str) -> promotion_log.LogView:
        from nightshift import registry

        view = promotion_log.view(settings().data_root, name)
        if not view.pending:
            return view
        return registry.history(settings(), name)

    def models() -> list[str]:
        folder = settings().data_root / "promotions"
        return sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []

    # -- the view --------------------------------------------------------------------------------

    def night_links(prefix: str, name: str, row: dict[str, Any]) -> list[str]:
        links = []
        if row["run_id"]:
            links.append(f"<a class='l-run' target='_top' href='{_e(run_url(cockpit.NIGHTLY_DAG, row['run_id']))}'>run</a>")
        if row["mlflow_run_id"]:
            links.append(f"<a class='l-mlflow' target='_blank' href='{prefix}/mlflow/runs/{quote(row['mlflow_run_id'])}'>MLflow run</a>")
        if row["challenger_version"]:
            url = cockpit.mlflow_version_url(cockpit.mlflow_ui_url(settings().mlflow_tracking_uri), name, row["challenger_version"])
            links.append(f"<a class='l-version' target='_blank' href='{_e(url)}'>v{_e(row['challenger_version'])}</a>")
        if row["outcome"] not in ("running",):
            links.append(f"<a class='l-record' href='{prefix}/records/{quote(row['source'])}/{row['day']}'>decision record</a>")
        if row["has_validation"]:
            links.append(f"<a class='l-datadocs' href='{prefix}/datadocs/{quote(row['source'])}/{row['day']}'>Data Docs</a>")
        return links

    def champion_block(prefix: str, source: str, name: str, header: dict[str, Any]) -> list[str]:
        if header.get("error"):
            return [f"<div class='error'>{_e(header['error'])}</div>"]
        if header["version"] is None:
            return [f"<div class='header champion'>No champion yet for <b>{_e(name)}</b>: the first version that "
                    "passes the gate becomes champion.</div>"]
        since = header.get("since") or {}
        mlflow = cockpit.mlflow_ui_url(settings().mlflow_tracking_uri)
        how = (f"{_e(since.get('action'))} by {_e(since.get('decided_by'))} at {_e(since.get('time'))}: "
               f"{_e(since.get('reason'))}") if since else "no promotion log entry for this version"
        night = (f"since the night of <a href='{prefix}/records/{quote(source)}/{since['day']}'>{_e(since['day'])}</a>"
                 if since.get("day") else "since " + _e(since.get("time") or "an unknown time"))
        out = [f"<div class='header champion'><b>Champion of {_e(name)}: "
               f"<a target='_blank' href='{_e(cockpit.mlflow_version_url(mlflow, name, header['version']))}'>"
               f"v{_e(header['version'])}</a></b> ({_e(header.get('candidate'))}, trained through "
               f"{_e(header.get('trained_day'))}), {night}.<br>Chosen: {how}"]
        previous = header.get("previous")
        out.append(f"<br>Previous: v{_e(previous['version'])}" if previous else "<br>No 'previous' version")
        out.append(f" · <a class='rollback' href='{prefix}/rollback/{quote(source)}'>Roll back…</a></div>")
        if header.get("outside_move"):
            out.append(f"<div class='error outside-move'>{_e(header['outside_move'])}</div>")
        warning = cockpit.champion_below_floors(lake(), source, header["version"])
        if warning:
            out.append(f"<div class='warn champion-warning'>{_e(warning)}</div>")
        if header.get("gate_passed") is False:
            out.append("<div class='warn'>The champion never passed the promotion gate (forced rollback).</div>")
        return out

    @app.get("/", response_class=HTMLResponse)
    @app.get("/view", response_class=HTMLResponse)
    def view(request: Request, source: str | None = None, message: str | None = None) -> str:
        prefix = _prefix(request)
        shown = [known_source(source)] if source else cockpit.sources(lake())
        body = ["<h1>Nightshift</h1>",
                f"<nav><a href='{prefix}/promotions'>Promotion log</a>"
                + "".join(f"<a href='{prefix}/view?source={quote(s)}'>{_e(s)}</a>" for s in cockpit.sources(lake()))
                + "</nav>"]
        if message:
            body.append(f"<div class='ok'>{_e(message)}</div>")
        if not shown:
            body.append("<p>No nights recorded yet: run the nightly DAG (or <code>make demo</code>).</p>")
        for src in shown:
            name = model_name(src)
            rows = cockpit.nights(lake(), src)
            body.append(f"<h2 id='source-{_e(src)}'>{_e(src)}</h2>")
            body.extend(champion_block(prefix, src, name, cockpit.champion_header(settings(), name)))
            body.append("<h3>Trend</h3>" + trend_svg(rows))
            body.append("<h3>Nights</h3><table class='nights'><tr><th>night</th><th>outcome</th><th>reason</th>"
                        "<th>best candidate F1</th><th>champion F1</th><th>champion after</th>"
                        "<th>champion flag rate</th><th>drift</th><th>links</th></tr>")
            for r in reversed(rows):
                outcome = r["outcome"] + (" (dry run)" if r["dry_run"] else "")
                best = f"{_fmt(r['best_f1'])} ({_e(r['best_candidate'])})" if r["best_candidate"] else "-"
                champ = f"{_fmt(r['champion_f1'])} (v{_e(r['champion_before'])})" if r["champion_before"] else "-"
                body.append(
                    f"<tr class='night' data-day='{r['day']}' data-outcome='{_e(r['outcome'])}'>"
                    f"<td>{r['day']}</td><td><span class='outcome {r['outcome'].replace(' ', '-')}'>{_e(outcome)}</span></td>"
                    f"<td class='reason'>{_e(r['reason'])}</td><td>{best}</td><td>{champ}</td>"
                    f"<td>{'v' + _e(r['champion_after']) if r['champion_after'] else '-'}</td>"
                    f"<td>{_fmt(r['flag_rate'], 3)}{' <b class=suspect>suspect</b>' if r['suspect'] else ''}</td>"
                    f"<td class='drift{' flagged' if r['drift_flagged'] else ''}'>{_e(r['drift'] or '-')}</td>"
                    f"<td>{' · '.join(night_links(prefix, name, r))}</td></tr>")
            body.append("</table>")
        return _page("Nightshift", body)

    @app.get("/nights/{source}.json")
    def nights_json(source: str) -> dict[str, Any]:
        known_source(source)
        name = model_name(source)
        return {"source": source, "model_name": name, "champion": cockpit.champion_header(settings(), name),
                "nights": cockpit.nights(lake(), source)}

    # -- evidence behind the links ---------------------------------------------------------------

    @app.get("/records/{source}/{day}", response_class=HTMLResponse)
    def record(request: Request, source: str, day: str):
        known_source(source)
        day = _day(day)
        page = lake().reports_dir(source, day) / "decision_record" / "decision.html"
        if page.is_file():
            return FileResponse(page, media_type="text/html")
        row = cockpit.night(lake(), source, day)
        if not lake().reports_dir(source, day).is_dir():
            raise HTTPException(404, f"no reports for {source} {day}")
        prefix = _prefix(request)
        body = [f"<h1>Decision record: {_e(source)}, night of {day}</h1>",
                f"<p><span class='outcome {row['outcome'].replace(' ', '-')}'>{_e(row['outcome'])}</span> "
                f"{_e(row['reason'])}</p>",
                f"<p>Validation: {_e(row['validation'])}; lines in: {_e(row['lines'])}.</p>"]
        for suite in ("parsed_lines", "session_features"):
            report = lake().read_report(source, day, f"validation_{suite}")
            if report and not report["success"]:
                body.append(f"<h2>{suite}: failed expectations</h2><ul class='failures'>"
                            + "".join(f"<li>{_e(f)}</li>" for f in report["failures"]) + "</ul>")
        links = night_links(prefix, model_name(source), row)
        body.append("<p>" + " · ".join(link for link in links if "l-record" not in link) + "</p>")
        body.append("<p>No model was evaluated this night, so the record has no metrics or plots.</p>")
        return HTMLResponse(_page(f"Decision record {source} {day}", body))

    @app.get("/datadocs/site/{path:path}")
    def data_docs_file(path: str):
        site = cockpit.data_docs_site(lake()).resolve()
        target = (site / path).resolve() if path else site / "index.html"
        if not target.is_relative_to(site):
            raise HTTPException(404, "outside the Data Docs site")
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            raise HTTPException(404, f"no Data Docs page {path!r} (validation has not run?)")
        return FileResponse(target)

    @app.get("/datadocs/{source}/{day}")
    def data_docs_of_day(request: Request, source: str, day: str):
        known_source(source)
        page = cockpit.data_docs_page(lake(), source, _day(day))
        if page is None:
            raise HTTPException(404, f"no Data Docs result for {source} {day}: validation did not run that night")
        return RedirectResponse(f"{_prefix(request)}/datadocs/site/{quote(page)}", status_code=307)

    @app.get("/mlflow/runs/{run_id}")
    def mlflow_run(run_id: str):
        from nightshift import registry

        try:
            experiment_id = registry.client(settings()).get_run(run_id).info.experiment_id
        except Exception as exc:
            raise HTTPException(404, f"MLflow run {run_id} not found: {exc}") from exc
        base = cockpit.mlflow_ui_url(settings().mlflow_tracking_uri)
        return RedirectResponse(cockpit.mlflow_run_url(base, experiment_id, run_id), status_code=307)

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse)
    @app.get("/runs/{dag_id}/{run_id}/{what}")
    def of_run(request: Request, dag_id: str, run_id: str, what: str = "record"):
        """A run's night (the nightly DAG's run view and its tasks' extra links)."""
        if what not in ("record", "mlflow", "datadocs"):
            raise HTTPException(404, f"unknown link {what!r}: record, mlflow or datadocs")
        found = cockpit.run_day(lake(), run_id)
        if found is None:
            why = ("No night recorded for this run yet: its reports appear when its tasks have run (the "
                   "decision record after evaluate_candidates, a failed night's record after report_night)."
                   if dag_id == cockpit.NIGHTLY_DAG else
                   f"Nightshift records nights of {cockpit.NIGHTLY_DAG}; this run of {dag_id} has none. "
                   f"<a href='{_prefix(request)}/view'>The Nightshift view</a> shows every night.")
            return HTMLResponse(_page("Nightshift: run", [f"<h1>{_e(dag_id)} / {_e(run_id)}</h1><p>{why}</p>"]),
                                status_code=404)
        source, day = found
        prefix = _prefix(request)
        if what == "datadocs":
            return RedirectResponse(f"{prefix}/datadocs/{quote(source)}/{day}", status_code=307)
        if what == "mlflow":
            mlflow_run_id = cockpit.night(lake(), source, day)["mlflow_run_id"]
            if not mlflow_run_id:
                raise HTTPException(404, f"no MLflow run for {source} {day}: no candidate was trained that night")
            return RedirectResponse(f"{prefix}/mlflow/runs/{quote(mlflow_run_id)}", status_code=307)
        return RedirectResponse(f"{prefix}/records/{quote(source)}/{day}", status_code=307)

    # -- rollback ---------------------------------------------------------------------------------

    def rollback_form(prefix: str, source: str, error: str | None = None) -> str:
        from nightshift import registry

        name = model_name(source)
        header = cockpit.champion_header(settings(), name)
        body = [f"<h1>Roll back {_e(name)}</h1>", f"<p><a href='{prefix}/view?source={quote(source)}'>back to the view</a></p>"]
        if error:
            body.append(f"<div class='error refusal'>Rollback refused: {_e(error)}</div>")
        if header.get("error"):
            body.append(f"<div class='error'>{_e(header['error'])}</div>")
            return _page("Roll back", body)
        previous = header.get("previous")
        if header["version"] is None:
            body.append("<p>There is no champion to roll back.</p>")
            return _page("Roll back", body)
        body.append(f"<p>Champion now: <b>v{_e(header['version'])}</b>.</p>")
        target = None
        if previous:
            target = registry.get_version(settings(), name, previous["version"])
        if target is None:
            body.append("<p>There is no 'previous' version to roll back to.</p>")
            return _page("Roll back", body)
        tags = target.tags or {}
        gate = ("passed the promotion gate" if tags.get("nightshift.gate_passed") == "true"
                else "<b>never passed the promotion gate</b> (refused unless forced)")
        body.append(
            f"<div class='header target'>Target: <b>v{_e(target.version)}</b> (the 'previous' alias), candidate "
            f"{_e(tags.get('nightshift.candidate'))}, trained through {_e(tags.get('nightshift.day'))}; it {gate}. "
            f"Its night: {_e(tags.get('nightshift.decision'))}: {_e(tags.get('nightshift.reason'))} "
            f"(holdout F1 {_e(tags.get('nightshift.holdout_f1'))}).</div>")
        body.append(
            f"<form method='post' action='{prefix}/rollback/{quote(source)}'>"
            f"<input type='hidden' name='expected_champion' value='{_e(header['version'])}'>"
            f"<input type='hidden' name='to_version' value='{_e(target.version)}'>"
            "<p><label>Reason (recorded in the promotion log)<br><textarea name='reason' required minlength='3'></textarea></label></p>"
            "<p><label><input type='checkbox' name='force' value='true'> force (allow a version that never passed the gate)</label></p>"
            f"<p><button type='submit'>Roll back v{_e(header['version'])} → v{_e(target.version)}</button></p></form>")
        return _page("Roll back", body)

    @app.get("/rollback/{source}", response_class=HTMLResponse)
    def rollback_page(request: Request, source: str) -> str:
        return rollback_form(_prefix(request), known_source(source))

    who = user_name or _no_user

    @app.post("/rollback/{source}", dependencies=list(rollback_dependencies))
    def rollback_action(request: Request, source: str, reason: str = Form(""), to_version: str = Form(""),
                        expected_champion: str = Form(""), force: str = Form(""), user: str = Depends(who)):
        from nightshift import registry
        from nightshift.rollback import RollbackRefused, rollback

        known_source(source)
        prefix = _prefix(request)
        if len(reason.strip()) < 3:
            return HTMLResponse(rollback_form(prefix, source, "a reason of at least 3 characters is required"), status_code=400)
        try:
            entry = rollback(settings(), model_name(source), to_version=to_version or None, force=force == "true",
                             decided_by=f"airflow-user:{user} (nightshift view)", reason=reason.strip(),
                             expected_champion=expected_champion or None)
        except (RollbackRefused, registry.ChampionChanged, registry.RegistryUnavailable) as exc:
            return HTMLResponse(rollback_form(prefix, source, str(exc)), status_code=409)
        message = f"Rolled back {entry['model_name']}: v{entry['from_version']} -> v{entry['to_version']} by {user}"
        return RedirectResponse(f"{prefix}/view?source={quote(source)}&message={quote(message)}", status_code=303)

    # -- the promotion log --------------------------------------------------------------------

    @app.get("/promotions.json")
    def all_logs() -> dict[str, list[dict]]:
        return {m: history(m).entries for m in models()}

    @app.get("/problems.json")
    def all_problems() -> dict[str, list[str]]:
        return {m: history(m).problems for m in models()}

    @app.get("/promotions/{model_name}.json")
    def model_log(model_name: str) -> list[dict]:
        if model_name not in models():
            raise HTTPException(404, f"no promotion log for {model_name!r}; known: {models()}")
        return history(model_name).entries

    @app.get("/promotions", response_class=HTMLResponse)
    def promotions_page(request: Request) -> str:
        parts = ["<h1>Nightshift promotion log</h1>", f"<nav><a href='{_prefix(request)}/view'>Nightshift view</a></nav>"]
        if not models():
            parts.append("<p>No alias moves recorded yet.</p>")
        for m in models():
            parts.append(f"<h2>{_e(m)}</h2><table class='log'><tr><th>time</th><th>action</th><th>from</th><th>to</th>"
                         "<th>decided by</th><th>day</th><th>reason</th></tr>")
            log_view = history(m)
            for e in reversed(log_view.entries):
                cells = [e["time"], e["action"], e["from_version"] or "-", e["to_version"], e["decided_by"],
                         e.get("day") or "-", e["reason"] + (f" [{e['note']}]" if e.get("note") else "")]
                parts.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
            parts.append("</table>")
            if log_view.problems:
                parts.append("<p><b>Problems:</b></p><ul class='problems'>"
                             + "".join(f"<li>{_e(p)}</li>" for p in log_view.problems) + "</ul>")
        return _page("Nightshift promotion log", parts)

    return app


def _no_user() -> str:
    raise HTTPException(403, "rolling back needs a logged-in user: serve this app through the Airflow plugin")


def _day(day: str) -> str:
    try:
        return check_day(day)
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from exc

