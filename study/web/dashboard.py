"""The requester dashboard: progress, HITs, spend, live MOS and workers. Behind a token."""

from __future__ import annotations

import hmac
import json
import mimetypes
from pathlib import Path
from typing import Any

from flask import (Blueprint, Response, abort, current_app, redirect, render_template, request,
                   send_file, session, url_for)

from study.studydir import Study

SESSION_KEY = "dashboard_ok"


def _authorised() -> bool:
    token = current_app.config["DASHBOARD_TOKEN"]
    if session.get(SESSION_KEY) == hmac.new(token.encode(), b"ok", "sha256").hexdigest():
        return True
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(given) and hmac.compare_digest(given, token)


def dashboard_data(study: Study) -> dict[str, Any]:
    """Everything the dashboard shows, as plain data (also served as JSON)."""
    from study.status import gather

    status = gather(study)
    data: dict[str, Any] = {"status": status, "budget_usd": study.config["budget"]["max_usd"],
                            "methods": [], "workers": [], "reports": status["report"]["files"]}
    try:
        from study.crowd.collect import ratings_frame
        frame = ratings_frame(study)
    except Exception as exc:  # no crowd data yet is normal, a broken table is shown as text
        data["ratings_error"] = str(exc)
        return data
    valid = frame[frame["valid"].astype(bool) & ~frame["gold"].astype(bool)] \
        if len(frame) else frame
    data["ratings"] = {"total": int(len(frame)), "valid": int(len(valid))}
    if len(valid) >= 2:
        from analysis.pipeline import analyse
        from analysis.scale import Scale
        report = analyse(valid[["image", "method", "worker", "score"]], Scale.similarity(),
                         bootstrap=200, seed=0, mixed_model=False)
        data["methods"] = report.methods_table()
        data["workers"] = report.workers_table()
    data["worker_flags"] = _worker_flags(study)
    return data


def _worker_flags(study: Study) -> dict[str, dict[str, Any]]:
    conn = study.connect()
    try:
        rows = conn.execute("SELECT worker_id, blocked, flags, reason FROM workers").fetchall()
    finally:
        conn.close()
    return {r["worker_id"]: {"blocked": bool(r["blocked"]), "flags": r["flags"],
                             "reason": r["reason"]} for r in rows}


def dashboard_blueprint(study: Study) -> Blueprint:
    bp = Blueprint("dashboard", __name__, template_folder="templates")

    @bp.before_request
    def check_token():
        token = request.args.get("token")
        if token is not None:
            if hmac.compare_digest(token, current_app.config["DASHBOARD_TOKEN"]):
                session[SESSION_KEY] = hmac.new(token.encode(), b"ok", "sha256").hexdigest()
                # Drop the token from the address bar (and from any history or referrer).
                return redirect(request.path)
            return Response(render_template("web/denied.html"), status=403)
        if not _authorised():
            return Response(render_template("web/denied.html"), status=401)
        return None

    @bp.get("/")
    def overview():
        data = dashboard_data(study)
        return render_template("web/dashboard.html", study_name=study.name, d=data)

    @bp.get("/data.json")
    def data_json():
        return Response(json.dumps(dashboard_data(study), default=str),
                        mimetype="application/json")

    @bp.get("/reports/<name>")
    def report_file(name: str):
        path = (study.reports_dir / name).resolve()
        if path.parent != study.reports_dir.resolve() or not path.is_file():
            abort(404)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return send_file(path, mimetype=mime)

    return bp
