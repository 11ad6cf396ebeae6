"""The requester dashboard: progress, HITs, spend, live MOS and workers. Behind a token."""

from __future__ import annotations

import hmac
import json
import mimetypes
from pathlib import Path
from typing import Any

from flask import (Blueprint, Response, abort, current_app, redirect, render_template, request,
                   send_file, session, url_for)

from study.errors import StudyError
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
    data: dict[str, Any] = {"status": status, "budget_usd": float(study.settings.budget.max_usd),
                            "methods": [], "workers": [], "reports": status["report"]["files"],
                            "worker_flags": {}, "spend": _money_and_counts(status)}
    from study.report import _study_scale, study_inputs
    try:
        frame, _, _ = study_inputs(study)
    except StudyError:
        frame = None  # nothing collected yet
    if frame is not None:
        data["ratings"] = {"total": int(len(frame)),
                           "valid": int((frame["valid"] & ~frame["gold"]).sum())}
        from analysis.pipeline import analyse
        from analysis.table import RatingsError
        try:
            # A quick live view: fewer bootstrap replicates and no mixed model.
            report = analyse(frame, _study_scale(study), bootstrap=200, seed=0,
                             mixed_model_max_ratings=0).to_dict()
        except RatingsError as exc:
            data["ratings_error"] = exc.message
        else:
            data["methods"] = report["methods"]
            data["workers"] = report["workers"]
    data["worker_flags"] = _worker_flags(study)
    return data


def _worker_flags(study: Study) -> dict[str, dict[str, Any]]:
    conn = study.connect()
    try:
        rows = conn.execute("SELECT worker_id, failures, excluded, blocked, reason "
                            "FROM workers").fetchall()
    finally:
        conn.close()
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        flags = []
        if r["failures"]:
            flags.append(f"{r['failures']} failed")
        if r["excluded"]:
            flags.append("excluded")
        entry = out.setdefault(r["worker_id"], {"blocked": False, "flags": "", "reason": ""})
        entry["blocked"] = entry["blocked"] or bool(r["blocked"])
        entry["flags"] = ", ".join(filter(None, [entry["flags"], *flags]))
        entry["reason"] = entry["reason"] or r["reason"]
    return out


def _money_and_counts(status: dict[str, Any]) -> dict[str, Any]:
    """The spend card's figures, as numbers."""
    pub, col = status["publish"], status["collect"]
    decided = col.get("assignments", {}) or {}
    items = col.get("items", []) or []
    return {
        "hits_published": pub.get("hits_published", 0),
        "hits_designed": pub.get("hits_designed", 0),
        "assignments": sum(decided.values()),
        "approved": decided.get("approve", 0) + decided.get("exclude", 0),
        "rejected": decided.get("reject", 0),
        "valid_ratings": sum(min(i["valid"], i["required"]) for i in items),
        "required_ratings": sum(i["required"] for i in items),
        "spent_usd": float(col.get("spent_usd") or 0),
        "committed_usd": float(col.get("committed_usd") or 0),
    }


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
