"""The worker site: sign in, find HIT groups, preview, accept, work, return and submit.

Server-rendered HTML with its own Jinja2 environment (autoescaping on), so it can be mounted in
any Flask app. A worker's session is a signed cookie scoped to the realm's path.
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote, urlencode

import jinja2
from flask import Blueprint, Response, current_app, redirect, request
from itsdangerous import BadSignature, URLSafeSerializer

from study.marketplace import assignments, hit_pages, identity, limits, questionform
from study.marketplace import qualification_requests as qual_requests
from study.marketplace import worker_flow as flow
from study.marketplace.errors import WorkerError
from study.marketplace.ids import worker_id_for
from study.marketplace.invites import completion_link
from study.marketplace.market import Market
from study.marketplace.questions import parse_question
from study.marketplace.tables import REALMS

PREVIEW_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"
# No allow-same-origin: a HIT's page runs in an opaque origin, so its scripts can read nothing of
# the site that frames it (the worker's session, the requester's dashboard on the same host).
# It submits through the capability in turkSubmitTo (see _submit_base), not through cookies.
IFRAME_SANDBOX = ("allow-scripts allow-forms allow-popups "
                  "allow-top-navigation-by-user-activation")

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("study.marketplace", "templates"),
    autoescape=True, trim_blocks=True, lstrip_blocks=True)


def _market() -> Market:
    return current_app.extensions["marketplace"]


def _page(template: str, status: int = 200, **ctx) -> Response:
    realm = ctx.get("realm")
    ctx.setdefault("home", _url(f"/worker/{realm}/") if realm else None)
    html = _env.get_template(template).render(**ctx)
    resp = Response(html, status=status, content_type="text/html; charset=utf-8")
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _url(path: str) -> str:
    return request.script_root + path


def _see_other(path: str) -> Response:
    return redirect(_url(path), code=303)


def _cookie_name(realm: str) -> str:
    return f"mkw_{realm}"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(_market().cookie_secret, salt="marketplace-worker")


def _current_worker(realm: str) -> str | None:
    raw = request.cookies.get(_cookie_name(realm))
    if not raw:
        return None
    try:
        data = _serializer().loads(raw)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("r") != realm:
        return None
    return data.get("w")


def _sign_in(resp: Response, realm: str, worker_id: str) -> Response:
    resp.set_cookie(_cookie_name(realm), _serializer().dumps({"r": realm, "w": worker_id}),
                    path=_url(f"/worker/{realm}"), httponly=True, samesite="Lax",
                    secure=request.is_secure, max_age=30 * 86400)
    return resp


def _requester_page(html: str) -> Response:
    """A page the requester wrote (a HIT's question, a qualification test), served as is."""
    resp = Response(html, content_type="text/html; charset=utf-8")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _error(realm: str, exc: WorkerError) -> Response:
    return _page("message.html", exc.status, realm=realm, title=exc.title,
                 message=exc.message)


def _submit_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(_market().cookie_secret, salt="marketplace-submit")


def _submit_base(realm: str, assignment_id: str | None = None,
                 worker_id: str | None = None) -> str:
    """turkSubmitTo. For an accepted assignment it carries a signed capability naming the
    assignment and its worker: the page, sandboxed in an opaque origin, posts without the
    worker's cookie, and only a page handed this URL can submit for that assignment."""
    base = request.host_url.rstrip("/") + request.script_root + f"/worker/{realm}"
    if assignment_id and worker_id and assignment_id != PREVIEW_ID:
        token = _submit_serializer().dumps({"r": realm, "a": assignment_id, "w": worker_id})
        return f"{base}/s/{token}"
    return base


def _submitter(realm: str, token: str | None, assignment_id: str) -> str | None:
    """The worker a submission speaks for: from a valid capability for this assignment, else
    from the session cookie."""
    if token is None:
        return _current_worker(realm)
    try:
        data = _submit_serializer().loads(token)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("r") != realm or data.get("a") != assignment_id:
        return None
    return data.get("w")


def _frame_src(realm: str, hit: dict, assignment_id: str, worker_id: str | None) -> tuple[str, int]:
    q = parse_question(hit["Question"])
    params = [("assignmentId", assignment_id), ("hitId", hit["HITId"]),
              ("turkSubmitTo", _submit_base(realm, assignment_id, worker_id))]
    if worker_id:
        params.append(("workerId", worker_id))
    query = urlencode(params, quote_via=quote)
    if q.kind in ("html", "form"):  # served here
        src = _url(f"/worker/{realm}/hits/{hit['HITId']}/question") + "?" + query
    else:
        src = q.content + ("&" if "?" in q.content else "?") + query
    return src, q.frame_height


def _need_worker(realm: str):
    worker = _current_worker(realm)
    if worker is None:
        if realm == "sandbox":
            return None, _see_other("/worker/sandbox/login")
        return None, _page("message.html", 401, realm=realm, title="Invitation needed",
                           message="Open the invitation link you were given to start working.")
    return worker, None


def make_blueprint() -> Blueprint:
    bp = Blueprint("marketplace_worker", __name__)

    @bp.url_value_preprocessor
    def _check_realm(endpoint, values):
        realm = (values or {}).get("realm")
        if realm is not None and realm not in REALMS:
            from flask import abort
            abort(404)

    @bp.before_request
    def _limit_body():
        # Checked before Flask parses a form: a worker's POST is a small form.
        if request.method != "POST":
            return None
        request.max_content_length = limits.MAX_FORM_BYTES
        length = request.content_length
        if length is not None and length > limits.MAX_FORM_BYTES:
            limits.drain(request.stream, length)
            resp = _page("message.html", 413, realm=None, title="Too large",
                         message=f"What you sent is larger than {limits.MAX_FORM_BYTES} bytes.")
            resp.headers["Connection"] = "close"
            return resp
        return None

    @bp.get("/worker/<realm>/")
    def groups(realm: str):
        worker, early = _need_worker(realm)
        if early:
            return early
        groups = flow.list_groups(_market(), realm, worker)
        for g in groups:
            g["href"] = _url(f"/worker/{realm}/groups/{g['hit_type_id']}")
        return _page("groups.html", realm=realm, worker=worker, groups=groups,
                     logout=_url(f"/worker/{realm}/logout"))

    @bp.get("/worker/sandbox/login")
    def login_form():
        return _page("login.html", realm="sandbox", action=_url("/worker/sandbox/login"))

    @bp.post("/worker/sandbox/login")
    def login():
        name = (request.form.get("worker_id") or "").strip()
        if not name or len(name) > 64:
            return _page("login.html", 400, realm="sandbox", action=_url("/worker/sandbox/login"),
                         error="Type a worker id of 1 to 64 characters.")
        profile = {}
        try:
            if request.form.get("locale"):
                loc = request.form["locale"].strip().upper()
                if not re.fullmatch(r"[A-Z]{2}(-[A-Z0-9]{1,3})?", loc):
                    raise ValueError("locale must be a country code such as US or US-CA")
                profile["country"], _, sub = loc.partition("-")
                profile["subdivision"] = sub or None
            if request.form.get("hits_approved"):
                profile["hits_approved"] = max(0, int(request.form["hits_approved"]))
            if request.form.get("percent_approved"):
                profile["percent_approved"] = max(0, min(100, int(request.form["percent_approved"])))
            if request.form.get("masters"):
                profile["masters"] = request.form["masters"] in ("1", "true", "on", "yes")
        except ValueError as exc:
            return _page("login.html", 400, realm="sandbox", action=_url("/worker/sandbox/login"),
                         error=f"Invalid profile value: {exc}")
        worker_id = worker_id_for(name)
        flow.ensure_worker(_market(), "sandbox", worker_id, **profile)
        return _sign_in(_see_other("/worker/sandbox/"), "sandbox", worker_id)

    @bp.post("/worker/<realm>/logout")
    def logout(realm: str):
        resp = _see_other(f"/worker/{realm}/")
        resp.delete_cookie(_cookie_name(realm), path=_url(f"/worker/{realm}"))
        return resp

    @bp.get("/worker/live/join/<token>")
    def join(token: str):
        market = _market()
        invite = flow.invite(market, token)
        if invite is None:
            return _page("message.html", 404, realm="live", home=None,
                         title="Unknown invitation",
                         message="This invitation link is not valid. Check the link you were "
                                 "given.")
        try:
            worker_id = identity.join(market, invite, _current_worker("live"),
                                      identity.platform_attributes(request.args))
        except WorkerError as exc:
            return _join_refused(exc)
        return _sign_in(_see_other("/worker/live/"), "live", worker_id)

    @bp.get("/worker/live/join")
    def join_personal():
        # A personal link: its key names the participant, whichever browser opens it.
        key = (request.args.get("key") or "")[:200]
        try:
            worker_id = identity.join_personal(_market(), key, _current_worker("live"),
                                               identity.platform_attributes(request.args))
        except WorkerError as exc:
            return _join_refused(exc)
        return _sign_in(_see_other("/worker/live/"), "live", worker_id)

    def _join_refused(exc: WorkerError) -> Response:
        # A link back to the HIT list only for a browser with a session to see it with.
        home = _url("/worker/live/") if _current_worker("live") else None
        return _page("message.html", exc.status, realm="live", home=home, title=exc.title,
                     message=exc.message)

    @bp.get("/worker/<realm>/groups/<hit_type_id>")
    def group(realm: str, hit_type_id: str):
        worker, early = _need_worker(realm)
        if early:
            return early
        hit_id = flow.pick_hit(_market(), realm, worker, hit_type_id)
        if hit_id is None:
            return _page("message.html", 404, realm=realm, title="No HITs left",
                         message="There are no more HITs in this group that you can work on.")
        return _see_other(f"/worker/{realm}/hits/{hit_id}")

    @bp.get("/worker/<realm>/mturk/preview")
    @bp.get("/worker/<realm>/projects/<group>/tasks")
    def group_link(realm: str, group: str | None = None):
        # MTurk's worker links: /mturk/preview?groupId=ID and /projects/ID/tasks.
        worker, early = _need_worker(realm)
        if early:
            return early
        group = group or request.args.get("groupId", "")
        hit_type_id = flow.hit_type_of_group(_market(), realm, worker, group[:64])
        return _see_other(f"/worker/{realm}/groups/{quote(hit_type_id, safe='')}")

    @bp.get("/worker/<realm>/hits/<hit_id>")
    def preview(realm: str, hit_id: str):
        worker = _current_worker(realm)
        try:
            hit = flow.worker_hit(_market(), realm, worker, hit_id, "preview")
        except WorkerError as exc:
            return _error(realm, exc)
        src, height = _frame_src(realm, hit, PREVIEW_ID, worker)
        return _page("hit.html", realm=realm, worker=worker, hit=hit, preview=True,
                     frame_src=src, frame_height=height, sandbox=IFRAME_SANDBOX,
                     accept_action=_url(f"/worker/{realm}/hits/{hit_id}/accept"))

    @bp.get("/worker/<realm>/hits/<hit_id>/question")
    def question(realm: str, hit_id: str):
        market = _market()
        q = flow.question(market, realm, hit_id)
        if q is None:
            return _page("message.html", 404, realm=realm, title="Not found",
                         message="This HIT does not exist.")
        aid = request.args.get("assignmentId", PREVIEW_ID)
        worker = _current_worker(realm)
        if aid != PREVIEW_ID:
            # A page opened with an assignment submits for it: only its worker may open it.
            try:
                flow.work(market, realm, worker, aid, hit_id)
            except WorkerError as exc:
                return _error(realm, exc)
        submit_url = _submit_base(realm, aid, worker) + "/mturk/externalSubmit"
        if q.kind == "external":
            return redirect(q.content)
        if q.kind == "form":
            page = questionform.render(questionform.parse(q.content), submit_url,
                                       {"assignmentId": aid}, preview=aid == PREVIEW_ID)
        else:
            page = hit_pages.serve_html(q.content, submit_url,
                                        _url(f"/worker/{realm}/mturk-public"))
        return _requester_page(page)

    @bp.post("/worker/<realm>/hits/<hit_id>/accept")
    def accept(realm: str, hit_id: str):
        worker, early = _need_worker(realm)
        if early:
            return early
        try:
            aid = flow.accept(_market(), realm, worker, hit_id)
        except WorkerError as exc:
            return _error(realm, exc)
        return _see_other(f"/worker/{realm}/assignments/{aid}")

    @bp.get("/worker/<realm>/assignments/<assignment_id>")
    def work(realm: str, assignment_id: str):
        worker, early = _need_worker(realm)
        if early:
            return early
        try:
            a, hit = flow.work(_market(), realm, worker, assignment_id)
        except WorkerError as exc:
            mine = flow.assignment(_market(), realm, assignment_id)
            if mine is not None and mine["worker_id"] == worker \
                    and mine["status"] in ("Submitted", "Approved", "Rejected"):
                return _see_other(f"/worker/{realm}/assignments/{assignment_id}/submitted")
            return _error(realm, exc)
        src, height = _frame_src(realm, hit, assignment_id, worker)
        return _page("hit.html", realm=realm, worker=worker, hit=hit, preview=False,
                     frame_src=src, frame_height=height, sandbox=IFRAME_SANDBOX,
                     assignment=a, return_action=_url(
                         f"/worker/{realm}/assignments/{assignment_id}/return"),
                     submitted_url=_url(f"/worker/{realm}/assignments/{assignment_id}/submitted"))

    @bp.get("/worker/<realm>/assignments/<assignment_id>/submitted")
    def submitted(realm: str, assignment_id: str):
        """The full-page confirmation of a worker's own submitted assignment: what happens
        next, and when."""
        worker, early = _need_worker(realm)
        if early:
            return early
        a = flow.assignment(_market(), realm, assignment_id)
        if a is None or a["worker_id"] != worker:
            return _page("message.html", 404, realm=realm, title="Not found",
                         message="This assignment is not yours.")
        if a["status"] == "Accepted":
            return _see_other(f"/worker/{realm}/assignments/{assignment_id}")
        invite = flow.invite_of(_market(), worker) if realm == "live" else None
        auto = a["auto_approval_time"]
        return _page("confirmed.html", realm=realm, assignment_id=assignment_id,
                     state=a["status"],
                     auto_approval=(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(auto))
                                    if auto else None),
                     completion_code=invite["completion_code"] if invite else None,
                     completion_link=completion_link(invite))

    @bp.post("/worker/<realm>/assignments/<assignment_id>/return")
    def return_(realm: str, assignment_id: str):
        worker, early = _need_worker(realm)
        if early:
            return early
        try:
            flow.return_assignment(_market(), realm, worker, assignment_id)
        except WorkerError as exc:
            return _error(realm, exc)
        return _see_other(f"/worker/{realm}/")

    @bp.route("/worker/<realm>/mturk/externalSubmit", methods=["GET", "POST"])
    @bp.route("/worker/<realm>/s/<token>/mturk/externalSubmit", methods=["GET", "POST"])
    def external_submit(realm: str, token: str | None = None):
        data = request.form if request.method == "POST" else request.args
        aid = (data.get("assignmentId") or "").strip()
        if not aid or aid == PREVIEW_ID:
            return _page("message.html", 400, realm=realm, title="Nothing to submit",
                         message="Accept the HIT before submitting it (assignmentId is missing).")
        fields = [(name, "|".join(values)) for name, values in data.lists()
                  if name != "assignmentId"]
        try:
            limits.check_answers(fields)
        except limits.Refused as exc:
            return _page("message.html", exc.status, realm=realm, title="Too large",
                         message=exc.message)
        worker = _submitter(realm, token, aid)
        if worker is None:
            if token is not None:
                return _page("message.html", 403, realm=realm, title="Not your assignment",
                             message="This submission link is not valid for this assignment.")
            worker, early = _need_worker(realm)
            if early:
                return early
        market = _market()
        files = {name: (f.filename or name, f.read(limits.MAX_FORM_BYTES + 1))
                 for name, f in request.files.items()}
        try:
            flow.submit(market, realm, worker, aid, fields, files)
        except WorkerError as exc:
            return _error(realm, exc)
        invite = flow.invite_of(market, worker) if realm == "live" else None
        link = completion_link(invite)
        if link and request.headers.get("Sec-Fetch-Dest") == "document":
            return redirect(link, code=303)  # a top-level submission goes straight back
        return _page("submitted.html", realm=realm, assignment_id=aid,
                     completion_code=invite["completion_code"] if invite else None,
                     completion_link=link)

    @bp.get("/worker/<realm>/mturk-public/<name>")
    def helper_script(realm: str, name: str):
        # Local stand-ins for MTurk's helper script and crowd element library.
        script = hit_pages.script(name)
        if script is None:
            return _page("message.html", 404, realm=realm, title="Not found",
                         message="No such script.")
        resp = Response(script, content_type="text/javascript; charset=utf-8")
        resp.headers["Cache-Control"] = "max-age=3600"
        return resp

    @bp.get("/worker/<realm>/uploads/<key>")
    def uploaded_file(realm: str, key: str):
        market = _market()
        if assignments.upload_key_of(market, request.args.get("token", "")) != key:
            return _page("message.html", 403, realm=realm, title="Link expired",
                         message="This file link is not valid or has expired (60 seconds).")
        up = flow.uploaded(market, realm, key)
        if up is None:
            return _page("message.html", 404, realm=realm, title="Not found",
                         message="This file no longer exists.")
        resp = Response(up["content"], content_type="application/octet-stream")
        resp.headers["Content-Disposition"] = \
            f"attachment; filename*=UTF-8''{quote(up['filename'])}"
        return resp

    @bp.get("/worker/<realm>/qualifications")
    def qualifications(realm: str):
        worker, early = _need_worker(realm)
        if early:
            return early
        quals = qual_requests.requestable(_market(), realm)
        for q in quals:
            q["href"] = _url(f"/worker/{realm}/qualifications/{q['id']}")
            q["action"] = _url(f"/worker/{realm}/qualifications/{q['id']}/request")
        return _page("qualifications.html", realm=realm, worker=worker, quals=quals)

    @bp.get("/worker/<realm>/qualifications/<qid>")
    def qualification_test(realm: str, qid: str):
        worker, early = _need_worker(realm)
        if early:
            return early
        try:
            q = qual_requests.qual_type(_market(), realm, qid)
        except WorkerError as exc:
            return _error(realm, exc)
        if q["test"] is None:
            return _see_other(f"/worker/{realm}/qualifications")
        page = questionform.render(questionform.parse(q["test"]),
                                   _url(f"/worker/{realm}/qualifications/{qid}/request"), {},
                                   preview=False)
        return _requester_page(page)

    @bp.post("/worker/<realm>/qualifications/<qid>/request")
    def request_qualification(realm: str, qid: str):
        worker, early = _need_worker(realm)
        if early:
            return early
        fields = [(name, "|".join(values)) for name, values in request.form.lists()]
        try:
            limits.check_answers(fields)
            status = qual_requests.request(_market(), realm, worker, qid, fields)
        except limits.Refused as exc:
            return _page("message.html", exc.status, realm=realm, title="Too large",
                         message=exc.message)
        except WorkerError as exc:
            return _error(realm, exc)
        message = ("You have the qualification now." if status == "Granted" else
                   "Your request was sent to the requester, who will decide on it.")
        return _page("message.html", realm=realm, title=f"Qualification {status.lower()}",
                     message=message)

    return bp
