"""`study serve`: one Flask application with the marketplace (Requester API and worker site),
the image host and task pages, and the requester dashboard."""

from __future__ import annotations

import secrets
from typing import Any, Callable

from flask import Flask, render_template

from study.service import service_id
from study.web import security
from study.studydir import Study


def marketplace_keys(study: Study) -> dict[str, str]:
    s = study.secrets()
    return {s["aws_access_key_id"]: s["aws_secret_access_key"]}


def create_app(study: Study, *, dashboard_token: str | None = None,
               clock: Callable[[], float] | None = None, **marketplace_kw: Any) -> Flask:
    from study import marketplace
    from study.crowd.pages import tasks_blueprint
    from study.web.dashboard import dashboard_blueprint

    app = Flask(__name__)
    app.secret_key = secrets.token_bytes(32)
    app.config["STUDY_ROOT"] = str(study.root)
    token = dashboard_token or study.settings.serve.dashboard_token or \
        secrets.token_urlsafe(18)
    app.config["DASHBOARD_TOKEN"] = token

    marketplace.register(app, study.marketplace_db_path, keys=marketplace_keys(study),
                         clock=clock, **marketplace_kw)
    app.register_blueprint(tasks_blueprint(study))
    app.register_blueprint(dashboard_blueprint(study), url_prefix="/dashboard")
    security.install(app, behind_tls_proxy=study.settings.serve.behind_tls_proxy)

    @app.get("/")
    def index():
        return render_template("web/index.html", study_name=study.name)

    @app.get("/healthz")
    def healthz():
        return {"ok": True, "service_id": service_id(study.study_id)}

    return app
