"""A small read-only web app for the Airflow UI (mounted by ``plugins/nightshift_plugin.py``):
the promotion log of every model, as HTML and JSON.

FastAPI plugin apps are not behind the Airflow login by default: the plugin passes Airflow's own
auth dependency (``dependencies=``), so every page and JSON answer needs the logged-in user's
token (the UI's cookie or ``Authorization: Bearer``), like ``/api/v2``. The app reads the log (and,
when a move was interrupted, lets ``nightshift.registry.history`` finish it, as every reader does).
Committed moves only; torn lines and moves that could not be reconciled are listed as problems.
"""

from __future__ import annotations

import html
from pathlib import Path

from collections.abc import Sequence

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from nightshift import promotion_log


def create_app(data_root: Path | None = None, dependencies: Sequence = ()) -> FastAPI:
    """The app; ``data_root`` defaults to the configured lake, read at request time; ``dependencies``
    guard every route (the plugin: Airflow's authentication)."""
    app = FastAPI(title="Nightshift", description="Promotion log of the Nightshift models",
                  dependencies=list(dependencies))

    def root() -> Path:
        from nightshift.settings import load_settings

        return Path(data_root) if data_root else load_settings().data_root

    def history(model_name: str) -> promotion_log.LogView:
        import dataclasses

        from nightshift import registry
        from nightshift.settings import load_settings

        view = promotion_log.view(root(), model_name)
        if not view.pending:
            return view
        return registry.history(dataclasses.replace(load_settings(), data_root=root()), model_name)

    def models() -> list[str]:
        folder = root() / "promotions"
        return sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []

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

    @app.get("/", response_class=HTMLResponse)
    @app.get("/promotions", response_class=HTMLResponse)
    def page() -> str:
        parts = ["<html><head><title>Nightshift promotion log</title><style>body{font-family:sans-serif}"
                 "td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}</style></head><body>",
                 "<h1>Nightshift promotion log</h1>"]
        if not models():
            parts.append("<p>No alias moves recorded yet.</p>")
        for m in models():
            parts.append(f"<h2>{html.escape(m)}</h2><table><tr><th>time</th><th>action</th><th>from</th><th>to</th>"
                         "<th>decided by</th><th>day</th><th>reason</th></tr>")
            view = history(m)
            for e in reversed(view.entries):
                cells = [e["time"], e["action"], e["from_version"] or "-", e["to_version"], e["decided_by"],
                         e.get("day") or "-", e["reason"] + (f" [{e['note']}]" if e.get("note") else "")]
                parts.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
            parts.append("</table>")
            if view.problems:
                parts.append("<p><b>Problems:</b></p><ul class='problems'>"
                             + "".join(f"<li>{html.escape(p)}</li>" for p in view.problems) + "</ul>")
        return "\n".join(parts + ["</body></html>"])

    return app
