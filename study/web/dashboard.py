"""The requester dashboard: progress, HITs, spend, live MOS and workers. Behind a token."""

from __future__ import annotations

import hashlib
import hmac
import json
import mimetypes
import threading
from typing import Any

from flask import (Blueprint, Response, abort, current_app, redirect, render_template, request,
                   send_file, session)

from study.errors import StudyError
from study.studydir import Study
from study.web.security import same_secret

SESSION_KEY = "dashboard_ok"


def _authorised() -> bool:
    token = current_app.config["DASHBOARD_TOKEN"]
    if session.get(SESSION_KEY) == hmac.new(token.encode(), b"ok", "sha256").hexdigest():
        return True
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(given) and same_secret(given, token)


def dashboard_data(study: Study) -> dict[str, Any]:
    """Everything the dashboard shows, as plain data (also served as JSON)."""
    from study.report import study_inputs
    from study.status import gather

    status = gather(study)
    data: dict[str, Any] = {"status": status, "budget_usd": float(study.settings.budget.max_usd),
                            "methods": [], "workers": [], "reports": status["report"]["files"],
                            "report_card": _report_card(status), "analysis": None,
                            "worker_flags": {}, "spend": _money_and_counts(status),
                            # Adaptive allocation: undecided pairs, spend so far and projected.
                            "allocation": status["collect"].get("allocation_view")}
    try:
        inputs = study_inputs(study)
    except StudyError:
        inputs = None  # nothing collected yet
    if inputs is not None:
        frame = inputs[0]
        data["ratings"] = {"total": int(len(frame)),
                           "valid": int((frame["valid"] & ~frame["gold"]).sum())}
        try:
            report = _analysis(study, inputs)
        except StudyError as exc:
            data["ratings_error"] = exc.message
        else:
            from analysis.report.common import ci_label, correction_name
            as_dict = report.to_dict()
            data["methods"] = as_dict["methods"]
            data["workers"] = as_dict["workers"]
            data["analysis"] = {"scale": report.scale.label, "arrow": report.scale.arrow,
                                "ci_label": ci_label(report),
                                "bootstrap": report.settings["bootstrap"],
                                "seed": report.settings["seed"],
                                "alpha": report.settings["alpha"],
                                "correction": correction_name(report)}
    data["worker_flags"] = _worker_flags(study)
    return data


# The last analysis per study, with the fingerprint of what it was computed from: the page
# refreshes every 15 s, and the full analysis (the report's) runs only when something changed.
_CACHE: dict[str, tuple[str, Any]] = {}
_CACHE_LOCK = threading.Lock()


def _analysis(study: Study, inputs):
    """`study report`'s own analysis (same function, same settings) of the study's ratings."""
    import pandas as pd

    from study.report import analyse_study, analysis_options
    frame, factsheets, fidelity = inputs
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes())
    digest.update(json.dumps([factsheets, fidelity, analysis_options(study)], sort_keys=True,
                             default=str).encode())
    key = digest.hexdigest()
    root = str(study.root)
    with _CACHE_LOCK:
        hit = _CACHE.get(root)
        if hit is not None and hit[0] == key:
            return hit[1]
        report = analyse_study(study, inputs=inputs)
        _CACHE[root] = (key, report)
        return report


def _report_card(status: dict[str, Any]) -> dict[str, Any]:
    """The report stage as the dashboard shows it: never done while collection is incomplete,
    whatever files a partial run has already written."""
    collect = status["collect"]
    items = collect.get("items") or []
    files = status["report"]["files"]
    if not collect.get("complete"):
        complete_items = collect.get("items_complete",
                                     sum(1 for i in items if i["valid"] >= i["required"]))
        text = (f"collection incomplete: {complete_items} of {len(items)} items have all "
                f"their ratings")
        if files:
            text += " (the report files so far cover part of the study)"
        return {"complete": False, "text": text}
    return {"complete": bool(files), "text": ", ".join(files) if files else "not yet"}


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
            flags.append(f"{r['failures']} assignment(s) not approved")
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
        # Paid, but quality control kept their ratings out of the analysis.
        "excluded": decided.get("exclude", 0),
        "rejected": decided.get("reject", 0),
        "undecided": decided.get("undecided", 0),
        "valid_ratings": sum(min(i["valid"], i["required"]) for i in items),
        "required_ratings": sum(i["required"] for i in items),
        "spent_usd": float(col.get("spent_usd") or 0),
        "committed_usd": float(col.get("committed_usd") or 0),
    }


def dashboard_blueprint(study: Study) -> Blueprint:
    bp = Blueprint("dashboard", __name__, template_folder="templates")

    @bp.app_template_filter("fmt")
    def fmt_filter(value, quantity: str = "mos") -> str:
        """Numbers as the report writes them (digits per quantity, — when undefined)."""
        from analysis.report.common import fmt
        return fmt(value, quantity)

    @bp.before_request
    def check_token():
        token = request.args.get("token")
        if token is not None:
            if same_secret(token, current_app.config["DASHBOARD_TOKEN"]):
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
