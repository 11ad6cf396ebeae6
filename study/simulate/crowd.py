"""A simulated crowd working over real HTTP on the marketplace's worker site.

Each worker signs in with its own cookie session and, one HIT at a time, does what a person in
a browser does: list the HIT groups, open one (the marketplace picks an available HIT and shows
its preview), accept, open the task page the work page frames, load the two images of every
item, rate, and submit the form to turkSubmitTo. Returners and abandoners accept and then hand
the HIT back or walk away.

When each worker acts is decided in simulated time by `schedule.run_schedule` (one event at a
time, in an order fixed by the seed), so which worker gets which HIT, and so the whole outcome,
depends on the seed alone and not on how fast the machine is.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import time
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import numpy as np
import requests

from study.errors import StudyError
from study.simulate import pages, pairwise, scoring
from study.simulate.results import SimulationResult, Submission, WorkerOutcome
from study.simulate.schedule import SimulatedClock, run_schedule
from study.simulate.workers import (LEVELS, LOW_QUALITY, SATISFICER, SATISFICER_GLANCE_SIDE,
                                    WorkerModel, build_crowd)

RETRIES = 4                 # extra attempts after a connection error or a 5xx/429
BACKOFF_S = 0.2             # first pause; doubles each attempt, capped
BACKOFF_CAP_S = 3.0
REQUEST_TIMEOUT_S = 30.0
MAX_FAILED_TURNS = 3        # a worker whose turns keep failing leaves
MAX_ACCEPT_TRIES = 3        # HITs taken by others between preview and accept, per turn

_ASSIGNMENT_IN_PATH = re.compile(r"/assignments/([^/?#]+)")
_HIT_IN_PATH = re.compile(r"/hits/([^/?#]+)")


class DeadlineReached(Exception):
    pass


class SiteUnavailable(Exception):
    """The site kept failing (connection errors or server faults) after every retry."""


def content_id(pixels: np.ndarray) -> str:
    """A decoded picture's identity: the same pixels under any URL or bytes."""
    return hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()[:32]


class _Images:
    """Images as a shared browser cache would hold them: fetched once per URL, and known by
    their pixels. The same picture may be served under many URLs and with different bytes (the
    page gives every appearance its own), so what a worker compares is the decoded content."""

    def __init__(self) -> None:
        self._content: dict[str, str] = {}            # URL -> content id
        self._prepared: dict[str, np.ndarray] = {}    # content id -> prepared grey image
        self._sizes: dict[str, tuple[int, int]] = {}  # content id -> (width, height)
        self._scores: dict[tuple[str, str], float] = {}
        self._glances: dict[tuple[str, str], float] = {}
        self._references: set[str] = set()            # content ids of the study's references
        self._nearest: dict[str, tuple[str, float]] = {}  # content id -> its reference, distance

    def content(self, url: str, http: "_Http") -> str:
        if url not in self._content:
            self._content[url] = self._remember(scoring.decode_image(_fetch_bytes(url, http)))
        return self._content[url]

    def _remember(self, pixels: np.ndarray) -> str:
        """The picture's content id, prepared for comparison the first time it is seen."""
        cid = content_id(pixels)
        if cid not in self._prepared:
            self._prepared[cid] = scoring.prepare(pixels)
            self._sizes[cid] = (int(pixels.shape[1]), int(pixels.shape[0]))
        return cid

    def true_score(self, reference: str, result: str) -> float:
        """The true score of two content ids."""
        key = (reference, result)
        if key not in self._scores:
            self._scores[key] = scoring.score_from_distance(
                scoring.distance(self._prepared[reference], self._prepared[result]))
        return self._scores[key]

    def glance(self, reference: str, result: str) -> float:
        """The score of two content ids at a glance (what a satisficer goes by)."""
        key = (reference, result)
        if key not in self._glances:
            self._glances[key] = scoring.glance_score(
                self._prepared[reference], self._prepared[result], SATISFICER_GLANCE_SIDE)
        return self._glances[key]

    def size(self, content: str) -> tuple[int, int]:
        return self._sizes[content]

    def add_references(self, paths) -> None:
        """Know the study's reference photos (see `reference_of`)."""
        for path in paths:
            self._references.add(self._remember(scoring.load_image(path)))

    @property
    def knows_references(self) -> bool:
        return bool(self._references)

    def reference_of(self, content: str) -> str:
        """The reference photo a photo shown alone is an output of: the known reference it is
        closest to. A person judges such a photo against their idea of a good photo; the
        simulation stands that in by the study's own reference, which it may know as a
        simulation (an assumption of the model, not something a page tells)."""
        if not self._references:
            raise pages.PageError("the page shows a photo without its reference, and the "
                                  "simulated crowd was given no reference photos")
        return self._nearest_reference(content)[0]

    def closer_to_a_reference(self, a: str, b: str) -> bool:
        """Whether photo `a` is nearer to one of the study's reference photos than `b` is:
        which of two photos is the reference, as the page served it (served bytes may differ
        from the study's files)."""
        return self._nearest_reference(a)[1] < self._nearest_reference(b)[1]

    def _nearest_reference(self, content: str) -> tuple[str, float]:
        if content in self._references:
            return content, 0.0
        if content not in self._nearest:
            self._nearest[content] = min(
                ((scoring.distance(self._prepared[ref], self._prepared[content]), ref)
                 for ref in sorted(self._references)))[::-1]
        return self._nearest[content]


def _fetch_bytes(url: str, http: "_Http") -> bytes:
    if url.startswith("data:"):
        head, _, payload = url.partition(",")
        if head.endswith(";base64"):
            return base64.b64decode(payload)
        return unquote_to_bytes(payload)
    r = http.request("GET", url, step="image")
    if r.status_code >= 400:
        raise pages.PageError(f"image {url} answered HTTP {r.status_code}")
    return r.content


class _Counter:
    """Requests made, and the latency of each successful one by step of the worker's path."""

    def __init__(self) -> None:
        self.value = 0
        self.latencies: dict[str, list[float]] = {}

    def add(self) -> None:
        self.value += 1

    def record(self, step: str, seconds: float) -> None:
        self.latencies.setdefault(step, []).append(seconds)


class _Http:
    """One worker's browser: a cookie session with bounded retries and backoff on connection
    errors and server faults, and the simulation's wall-clock deadline."""

    def __init__(self, session: requests.Session, deadline: float, counter: _Counter,
                 jitter: random.Random) -> None:
        self.session = session
        self.deadline = deadline
        self.counter = counter
        self.jitter = jitter

    def request(self, method: str, url: str, step: str = "other", **kw) -> requests.Response:
        last: str = ""
        for attempt in range(RETRIES + 1):
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineReached()
            self.counter.add()
            t0 = time.perf_counter()
            try:
                r = self.session.request(method, url, timeout=min(REQUEST_TIMEOUT_S, remaining),
                                         **kw)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if r.status_code < 500 and r.status_code != 429:
                    self.counter.record(step, time.perf_counter() - t0)
                    # An earlier attempt may have been carried out with its answer lost.
                    r.retried = attempt > 0
                    return r
                last = f"HTTP {r.status_code}"
            if attempt < RETRIES:
                pause = min(BACKOFF_CAP_S, BACKOFF_S * 2 ** attempt) * (0.5 + self.jitter.random())
                if time.monotonic() + pause >= self.deadline:
                    raise DeadlineReached()
                time.sleep(pause)
        raise SiteUnavailable(f"{method} {url}: {last} after {RETRIES + 1} attempts")


def hit_key(contents: dict[int, tuple[str, ...]]) -> str:
    """A HIT's identity as the worker sees it: which pictures (content ids) sit at which
    position. The same HIT content gives the same answers from the same worker in any run,
    whatever URLs it was served under."""
    text = "\n".join(f"{p} {' '.join(shown)}" for p, shown in sorted(contents.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _landed_before(r: requests.Response) -> bool:
    """A retried return or submit refused as already done (409): the first attempt was
    carried out and only its answer was lost."""
    return bool(getattr(r, "retried", False)) and r.status_code == 409


class _Worker:
    """One worker's session. `begin` takes a HIT and works on it; `finish` submits it. Each
    returns the next step and the simulated seconds until it, or None when the worker leaves."""

    def __init__(self, model: WorkerModel, site: str, images: _Images, http: _Http,
                 max_hits: int | None, on_submit, instructions: dict[str, int] | None = None
                 ) -> None:
        self.model = model
        self.instructions = instructions or {}
        self.site = site.rstrip("/")
        self.images = images
        self.http = http
        self.max_hits = max_hits
        self.on_submit = on_submit
        self.out = WorkerOutcome(model.worker_id, model.kind)
        self.signed_in = False
        self.exhausted_groups: set[str] = set()
        self.failed_turns = 0
        self.pending: tuple[str, dict, Submission] | None = None   # (action, form, submission)

    def begin(self) -> tuple[str, float] | None:
        return self._guarded(self._begin)

    def finish(self) -> tuple[str, float] | None:
        return self._guarded(self._finish)

    def _guarded(self, step) -> tuple[str, float] | None:
        try:
            following = step()
            self.failed_turns = 0
            return following
        except DeadlineReached:
            self.out.stopped = "deadline"
            return None
        except (SiteUnavailable, pages.PageError, requests.RequestException, OSError,
                ValueError) as exc:
            self.pending = None
            self.out.errors.append(f"{type(exc).__name__}: {exc}")
            self.failed_turns += 1
            if self.failed_turns >= MAX_FAILED_TURNS:
                self.out.stopped = "errors"
                return None
            return "begin", self.model.pause(f"failed-{len(self.out.errors)}")

    def _sign_in(self) -> None:
        r = self.http.request("POST", f"{self.site}/login", step="login",
                              data={"worker_id": self.model.worker_id})
        if r.status_code >= 400:
            raise pages.PageError(f"sign-in as {self.model.worker_id} answered HTTP {r.status_code}")
        # The marketplace may give the worker another WorkerId than the name typed in.
        assigned = pages.worker_id(r.text)
        if assigned:
            self.out.worker_id = assigned
        self.signed_in = True

    def _begin(self) -> tuple[str, float] | None:
        if self.max_hits is not None and self.out.accepted - self.out.returned >= self.max_hits:
            self.out.stopped = "max_hits"
            return None
        if not self.signed_in:
            self._sign_in()
        for _ in range(MAX_ACCEPT_TRIES):
            r = self.http.request("GET", f"{self.site}/", step="list")
            if r.status_code >= 400:
                raise pages.PageError(f"HIT list answered HTTP {r.status_code}")
            groups = [g for g in pages.hit_groups(r.text, r.url)
                      if (g.hit_type_id or g.url) not in self.exhausted_groups]
            if not groups:
                self.out.stopped = "no_work"
                return None
            for group in groups:
                accepted = self._try_group(group)
                if accepted is None:
                    continue
                if accepted:
                    return self._work(*accepted)
            # Every group's HIT went to someone else between preview and accept: look again.
        self.out.stopped = "no_work"
        return None

    def _try_group(self, group: pages.HitGroup):
        """Preview the group's next HIT and accept it. None: nothing here for this worker;
        False: lost the race for it; else (hit_id, work page response)."""
        gkey = group.hit_type_id or group.url
        r = self.http.request("GET", group.url, step="preview")
        action = pages.accept_action(r.text, r.url) if r.status_code < 400 else None
        if action is None:
            self.exhausted_groups.add(gkey)
            return None
        m = _HIT_IN_PATH.search(urlsplit(r.url).path)
        preview_src = pages.question_frame_src(r.text, r.url)
        hit_id = m.group(1) if m else pages.query_params(preview_src).get("hitId", "")
        if hit_id in self.out.returned_hits:
            # The marketplace offers the HIT this worker handed back: nothing new here.
            self.exhausted_groups.add(gkey)
            return None
        r = self.http.request("POST", action, step="accept")
        if r.status_code >= 400 or not _ASSIGNMENT_IN_PATH.search(urlsplit(r.url).path):
            return False
        return hit_id, r

    def _return(self, assignment_id: str, hit_id: str) -> bool:
        r = self.http.request("POST", f"{self.site}/assignments/{assignment_id}/return",
                              step="return")
        if r.status_code >= 400 and not _landed_before(r):
            return False
        self.out.returned += 1
        self.out.returned_hits.append(hit_id)
        return True

    def _work(self, hit_id: str, work: requests.Response) -> tuple[str, float] | None:
        self.out.accepted += 1
        nth = self.out.accepted - 1
        src = pages.question_frame_src(work.text, work.url)
        params = pages.query_params(src)
        assignment_id = params.get("assignmentId") or \
            _ASSIGNMENT_IN_PATH.search(urlsplit(work.url).path).group(1)
        hit_id = params.get("hitId") or hit_id
        try:
            r = self.http.request("GET", src, step="task")
            if r.status_code >= 400:
                raise pages.PageError(f"task page {src} answered HTTP {r.status_code}")
            task = pages.task_page(r.text, r.url)
            # A pairwise page shows a second output (B) beside the first (A).
            items = {it.position: (it.reference_url, it.result_url)
                     + ((it.result_b_url,) if it.result_b_url else ()) for it in task.items}
            contents = {p: tuple(self.images.content(u, self.http) if u else "" for u in shown)
                        for p, shown in items.items()}
            judged = {it.position: self._judged(it, contents[it.position])
                      for it in task.items if not it.result_b_url}
        except pages.PageError:
            # A person hands back a HIT whose page is broken rather than sit on it.
            self._return(assignment_id, hit_id)
            raise
        key = hit_key(contents)

        leaving = self.model.leaves(key, nth)
        if leaving == "return":
            if not self._return(assignment_id, hit_id):
                raise pages.PageError(f"the return of {assignment_id} was refused")
            return "begin", self.model.pause(key)
        if leaving == "abandon":
            self.out.abandoned += 1
            self.out.abandoned_assignments.append(assignment_id)
            self.out.stopped = "abandoned"
            return None

        sizes = {p: self.images.size(shown[1]) for p, shown in contents.items()}
        if any(len(shown) == 3 for shown in contents.values()):
            answer, true_scores = pairwise.answer_page(self.model, key, contents, self.images,
                                                       task, sizes)
        else:
            true_scores = {p: self.images.true_score(a, b) for p, (a, b, _) in judged.items()}
            glances = ({p: self.images.glance(a, b) for p, (a, b, _) in judged.items()}
                       if self.model.kind == SATISFICER else None)
            answer = self.model.answer(key, true_scores, glances, sizes)
        form = {k: v for k, v in task.hidden.items()
                if not k.startswith(("seconds_", "view_"))}
        form["assignmentId"] = assignment_id
        for it in task.items:
            p = it.position
            if it.result_b_url:
                form[f"rating_{p}"] = str(answer.ratings[p])
            else:
                form[f"rating_{p}"] = (it.picked(answer.picks[p]) if p in answer.picks else
                                       it.level(answer.differences[p], LEVELS - 1, judged[p][2]))
            told = self.instructions.get(contents[p][1])
            if told is not None and self.model.kind not in LOW_QUALITY and \
                    str(told) in it.levels:
                # A worker who looks at the pair reads its attention check and does as it says;
                # satisficers, spammers and straight-liners answer as they always do.
                form[f"rating_{p}"] = str(told)
            form[f"seconds_{p}"] = f"{answer.seconds[p]:.2f}"
            # What the page records of how the pair was viewed (only a page with the field
            # sends it).
            if f"view_{p}" in task.hidden:
                form[f"view_{p}"] = json.dumps(answer.views[p], separators=(",", ":"))
        if answer.comments:
            form["comments"] = answer.comments
        submit_to = params.get("turkSubmitTo")
        if submit_to:
            action = submit_to.rstrip("/") + "/mturk/externalSubmit"
        elif task.action and "{" not in task.action:
            action = urljoin(r.url, task.action)
        else:
            action = f"{self.site}/mturk/externalSubmit"
        self.pending = (action, form, Submission(
            self.model.worker_id, self.model.kind, hit_id, assignment_id, key,
            dict(answer.ratings), dict(answer.seconds), true_scores, items, answer.comments))
        # The worker holds the assignment while rating; the submit is a later event.
        return "finish", self.model.hit_seconds(key, answer)

    def _judged(self, item: pages.TaskItem, contents: tuple[str, str]) -> tuple[str, str, bool]:
        """(the reference's content, the output's, whether the reference is the photo the
        question asks about): the right photo on a two-sided (CCR) page, which asks about the
        second photo against the first."""
        left, right = contents
        if item.alone:
            return self.images.reference_of(right), right, False
        if item.two_sided:
            if not self.images.knows_references:
                raise pages.PageError("the page does not say which photo is the reference, and "
                                      "the simulated crowd was given no reference photos")
            if self.images.closer_to_a_reference(right, left):
                return right, left, True
        return left, right, False

    def _finish(self) -> tuple[str, float] | None:
        if self.pending is None:
            return "begin", 0.0
        action, form, submission = self.pending
        self.pending = None
        rs = self.http.request("POST", action, data=form, step="submit")
        if rs.status_code >= 400 and not _landed_before(rs):
            raise pages.PageError(f"submit of {submission.assignment_id} answered HTTP "
                                  f"{rs.status_code}")
        self.out.submitted += 1
        self.out.submissions.append(submission)
        self.on_submit()
        return "begin", self.model.pause(submission.hit_key)


def _check_site(site: str, timeout: float) -> None:
    try:
        r = requests.get(site.rstrip("/") + "/", timeout=timeout)
    except requests.RequestException as exc:
        raise StudyError(f"no worker site answers at {site} ({type(exc).__name__})",
                         where=site,
                         hint="start the marketplace (`study serve` or `study marketplace "
                              "serve`) or pass its address with --url") from None
    if r.status_code >= 500 or r.status_code == 404:
        raise StudyError(f"{site} answered HTTP {r.status_code}: not a worker site", where=site,
                         hint="pass the marketplace's base URL with --url; the worker site is "
                              "at {base}/worker/sandbox")


def simulate_crowd(worker_site_url: str, workers: int = 30, seed: int = 0,
                   mix: dict[str, float] | None = None, concurrency: int = 8,
                   max_hits_per_worker: int | None = None, progress: bool = True,
                   deadline_s: float = 900.0, clock: SimulatedClock | None = None,
                   instructions: dict[str, int] | None = None,
                   references=()) -> SimulationResult:
    """Run `workers` simulated workers against the worker site at `worker_site_url`
    (`{base}/worker/sandbox`) until no HIT is left for any of them or `deadline_s` (wall-clock
    seconds) passes.

    `mix` maps worker kinds (careful, sloppy, satisficer, spammer, straightliner, returner,
    abandoner) to shares; `concurrency` bounds the workers in session at once (in simulated
    time). A worker's ratings of a HIT depend only on the seed, the worker and the HIT; the
    order in which workers act depends only on the seed. Given the marketplace's `clock` (a
    `SimulatedClock`), the crowd moves it, so the marketplace sees simulated time too.
    `instructions` maps the content id of each attention trap's picture to the level it asks
    for (study.simulate.instructions), which workers who look at pairs follow. `references`
    (the study's reference photo files) let workers rate pages that show a photo without its
    reference (ACR) or do not say which photo it is (CCR)."""
    if workers < 0:
        raise StudyError("the number of workers must be 0 or more", where="--workers")
    if concurrency < 1:
        raise StudyError("concurrency must be at least 1", where="concurrency")
    if max_hits_per_worker is not None and max_hits_per_worker < 1:
        raise StudyError("max_hits_per_worker must be at least 1", where="max_hits_per_worker")
    try:
        crowd = build_crowd(workers, seed, mix)
    except ValueError as exc:
        raise StudyError(f"bad worker mix: {exc}", where="mix") from None
    site = worker_site_url.rstrip("/")
    _check_site(site, timeout=min(REQUEST_TIMEOUT_S, deadline_s))

    started = time.monotonic()
    deadline = started + deadline_s
    counter = _Counter()
    images = _Images()
    images.add_references(references)
    bar = None
    if progress:
        from study.progress import progress as progress_of
        bar = progress_of(None, "simulated crowd", "HITs submitted")

    def on_submit() -> None:
        if bar is not None:
            bar.update(1)

    sims: list[_Worker] = []
    for m in crowd:
        session = requests.Session()
        session.headers["User-Agent"] = "study-simulated-worker/1"
        http = _Http(session, deadline, counter, random.Random(f"{seed}-{m.worker_id}"))
        sims.append(_Worker(m, site, images, http, max_hits_per_worker, on_submit,
                            instructions))

    try:
        deadline_reached, simulated_s = run_schedule(sims, seed=seed, concurrency=concurrency,
                                                     deadline=deadline, clock=clock)
        if any(w.out.stopped == "deadline" for w in sims):
            deadline_reached = True
    finally:
        for w in sims:
            if not w.out.stopped:
                w.out.stopped = "deadline"
            w.http.session.close()
        if bar is not None:
            bar.close()
    return SimulationResult(site, seed, [w.out for w in sims], time.monotonic() - started,
                            counter.value, deadline_reached, counter.latencies,
                            simulated_s=simulated_s)
