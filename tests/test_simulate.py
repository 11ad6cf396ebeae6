"""The simulated crowd: true scores from real images, worker models, reading HIT pages, and
whole crowds working over HTTP on the real marketplace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data, filters, transform

from study.config import default_settings
from study.errors import StudyError
from study.service import free_port
from study.simulate import (build_crowd, hit_key, item_true_scores, pages, planted_ranking,
                            planted_scores, true_score)
from study.simulate.workers import (CAREFUL, DEFAULT_MIX, KINDS, SATISFICER, SLOPPY, SPAMMER,
                                    STRAIGHTLINER, WorkerModel, apportion, worker_ids)


def small(img: np.ndarray, h: int = 96, w: int = 128) -> np.ndarray:
    return (transform.resize(img, (h, w), anti_aliasing=True) * 255).round().astype(np.uint8)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma == 0:
        return img
    return (filters.gaussian(img, sigma=sigma, channel_axis=2) * 255).round().astype(np.uint8)


PHOTOS = {name: small(getattr(data, name)()) for name in ("astronaut", "chelsea", "coffee")}


# --- true scores ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_true_score_grows_with_blur_from_zero_for_identical(name):
    img = PHOTOS[name]
    scores = [true_score(img, blur(img, s)) for s in (0, 0.7, 1.5, 3, 6)]
    assert scores[0] == pytest.approx(0.0, abs=1e-6)
    assert all(b > a for a, b in zip(scores, scores[1:])), scores
    assert 0 <= min(scores) and max(scores) <= 4
    assert scores[1] < 1.5            # a hint of softness: almost identical or mostly similar
    assert scores[-1] >= 3.0          # strong blur against a sharp reference: mostly different


def test_true_score_sees_a_sharp_background_where_the_reference_is_blurred():
    # The gold control of a bokeh study: the sharp input against the blurred reference.
    sharp = small(data.astronaut(), 128, 128)
    bokeh = sharp.copy()
    bokeh[:, 64:] = blur(sharp, 5)[:, 64:]
    assert true_score(bokeh, sharp) >= 2.5
    assert true_score(bokeh, bokeh) == pytest.approx(0.0, abs=1e-6)


def test_true_score_does_not_depend_on_resolution_or_pixel_format():
    big = small(data.chelsea(), 300, 450)
    soft = blur(big, 3)
    full = true_score(big, soft)
    half = true_score(small(big, 150, 225), small(soft, 150, 225))
    assert abs(full - half) < 0.6
    as_float = true_score(big.astype(np.float32) / 255, soft.astype(np.float32) / 255)
    assert as_float == pytest.approx(full, abs=1e-4)


def test_planted_scores_rank_methods_by_closeness_to_the_reference(tmp_path):
    rows = []
    for image_id, name in enumerate(sorted(PHOTOS)):
        ref = PHOTOS[name]
        ref_path = tmp_path / "refs" / f"{image_id}.png"
        ref_path.parent.mkdir(exist_ok=True)
        Image.fromarray(ref).save(ref_path)
        for method, sigma in (("copy", 0), ("soft", 1.0), ("blurry", 4.0)):
            path = tmp_path / method / f"{image_id}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(blur(ref, sigma)).save(path)
            rows.append((str(image_id), method, ref_path, path))
    items = item_true_scores(rows)
    assert len(items) == 9 and items[("0", "copy")] == pytest.approx(0.0, abs=1e-6)
    scores = planted_scores(rows)
    assert planted_ranking(scores) == ["copy", "soft", "blurry"]
    assert scores["blurry"] == pytest.approx(np.mean([items[(str(i), "blurry")] for i in range(3)]))


# --- worker models -------------------------------------------------------------------------

def test_default_mix_of_thirty_has_every_kind():
    counts = apportion(30)
    assert sum(counts.values()) == 30
    assert counts[CAREFUL] == 18 and counts[SPAMMER] == 3
    assert all(counts[k] >= 1 for k in DEFAULT_MIX)
    assert counts[SATISFICER] == 0                       # only when a mix asks for them
    assert apportion(10, {"careful": 0.7, "satisficer": 0.3})[SATISFICER] == 3
    assert sum(apportion(7, {"careful": 1, "spammer": 1}).values()) == 7
    with pytest.raises(ValueError):
        apportion(5, {"lazy": 1.0})
    with pytest.raises(ValueError):
        apportion(5, {"careful": 0})


def test_crowd_is_deterministic_in_the_seed_and_ids_hide_kinds():
    a, b, c = build_crowd(30, seed=5), build_crowd(30, seed=5), build_crowd(30, seed=6)
    assert [(w.worker_id, w.kind, w.bias) for w in a] == [(w.worker_id, w.kind, w.bias) for w in b]
    assert [w.worker_id for w in a] != [w.worker_id for w in c]
    ids = [w.worker_id for w in a]
    assert len(set(ids)) == 30 and all(i.startswith("A") and len(i) == 14 for i in ids)
    assert worker_ids(5, 3) == ids[:3]
    # Kinds are shuffled over ids, not listed in kind order.
    assert [w.kind for w in a] != sorted((w.kind for w in a), key=KINDS.index)


def _answers(model: WorkerModel, n_hits: int, truth: np.ndarray):
    ratings, secs, truths = [], [], []
    for h in range(n_hits):
        t = {p + 1: float(truth[(h * 7 + p) % len(truth)]) for p in range(10)}
        ans = model.answer(f"hit-{h}", t)
        assert sorted(ans.ratings) == sorted(t) == sorted(ans.seconds)
        for p in t:
            ratings.append(ans.ratings[p])
            secs.append(ans.seconds[p])
            truths.append(t[p])
    return np.array(ratings), np.array(secs), np.array(truths)


def test_worker_kinds_answer_as_their_kind():
    truth = np.linspace(0, 4, 23)
    careful = WorkerModel.create("ACAREFUL", CAREFUL, seed=1)
    sloppy = WorkerModel.create("ASLOPPY", SLOPPY, seed=1)
    spammer = WorkerModel.create("ASPAMMER", SPAMMER, seed=1)
    liner = WorkerModel.create("ALINER", STRAIGHTLINER, seed=1)

    r, s, t = _answers(careful, 40, truth)
    assert set(np.unique(r)) <= {0, 1, 2, 3, 4}
    assert np.corrcoef(r, t)[0, 1] > 0.8      # real subjects: 0.86-0.88 with the others
    assert np.abs(r - t).mean() < 0.8
    assert 5 <= s.min() and s.max() <= 20

    r2, s2, _ = _answers(sloppy, 40, truth)
    assert 0.4 < np.corrcoef(r2, t)[0, 1] < np.corrcoef(r, t)[0, 1]
    assert np.median(s2) < np.median(s)

    r3, s3, t3 = _answers(spammer, 60, truth)
    counts = np.bincount(r3, minlength=5)
    chi2 = ((counts - len(r3) / 5) ** 2 / (len(r3) / 5)).sum()
    assert chi2 < 18.5                           # uniform at p > 0.001, 4 degrees of freedom
    assert abs(np.corrcoef(r3, t3)[0, 1]) < 0.15
    assert s3.max() < 2

    r4, _, _ = _answers(liner, 10, truth)
    assert len(set(r4)) == 1


def _subject_figures(frame):
    """Bias SD, mean inconsistency and mean worker-to-others correlation of a ratings table
    (image, method, worker, score), as the careful workers' fit measures them."""
    d = frame.assign(item=frame["image"].astype(str) + "/" + frame["method"].astype(str))
    d["dev"] = d["score"] - d.groupby("item")["score"].transform("mean")
    bias = d.groupby("worker")["dev"].mean()
    d["res"] = d["dev"] - d["worker"].map(bias)
    total = d.groupby("item")["score"].agg(["sum", "count"])
    d["others"] = (d["item"].map(total["sum"]) - d["score"]) / (d["item"].map(total["count"]) - 1)
    corr = [np.corrcoef(g["score"], g["others"])[0, 1] for _, g in d.groupby("worker")]
    return np.array([bias.std(), d.groupby("worker")["res"].std().mean(), np.mean(corr)])


@pytest.mark.parametrize("name", ["nflx_public_raw", "vqeg_hd3_raw"])
def test_careful_workers_match_real_subjects(name):
    import pandas as pd
    from conftest import SUBJECTIVE_DATA

    real = pd.read_csv(SUBJECTIVE_DATA / f"{name}.csv")
    truth = real.groupby(["image", "method"])["score"].mean() - 1     # 1..5 -> 0..4
    keys = list(truth.index)
    figures = []
    for seed in range(4):       # crowds as large as the dataset's, each rating every item
        rows = []
        for w in range(real["worker"].nunique()):
            ans = WorkerModel.create(f"AW{w}", CAREFUL, seed=seed).answer(
                "all", {p: float(truth[k]) for p, k in enumerate(keys)})
            rows += [(*k, w, ans.ratings[p]) for p, k in enumerate(keys)]
        figures.append(_subject_figures(pd.DataFrame(rows, columns=["image", "method", "worker",
                                                                    "score"])))
    measured, target = np.mean(figures, axis=0), _subject_figures(real)
    assert np.abs(measured - target).max() <= 0.05, (measured, target)


def test_satisficers_pass_obvious_gold_at_a_normal_pace_but_barely_follow_the_truth():
    truth = np.linspace(0.5, 3.0, 23)
    r, s, t = _answers(WorkerModel.create("ASAT", SATISFICER, seed=4), 40, truth)
    assert 0.05 < np.corrcoef(r, t)[0, 1] < 0.6
    assert np.median(s) > 5
    gold = WorkerModel.create("ASAT", SATISFICER, seed=4).answer("g", {1: 0.0, 2: 3.8})
    assert gold.ratings[1] == 0 and gold.ratings[2] >= 3


def test_what_the_page_records_follows_how_each_kind_looks():
    """A careful worker keeps the 1:1 view the page opens with (and zooms in on some pairs); a
    satisficer presses "whole photo" at once: on a photo larger than its screen shows at 1:1,
    every pair after the first is recorded below 1:1, and it never flips."""
    from study.simulate.workers import SCREENS, fit_zoom

    truth = {p: 2.0 for p in range(1, 10)}
    large = {p: (1536, 1024) for p in truth}
    small = {p: (96, 64) for p in truth}
    for seed in range(3):
        careful = WorkerModel.create(f"AC{seed}", CAREFUL, seed=seed).answer("h", truth, None, large)
        assert all(v["z"] >= 1 for v in careful.views.values())
        assert sum(v["f"] for v in careful.views.values()) > 0
        sat = WorkerModel.create(f"AS{seed}", SATISFICER, seed=seed)
        ans = sat.answer("h", truth, truth, large)
        zooms = [ans.views[p]["z"] for p in sorted(truth)]
        assert zooms[0] == 1 and all(z < 0.99 for z in zooms[1:])
        assert all(v["f"] == 0 for v in ans.views.values())
        assert (ans.views[1]["w"], ans.views[1]["h"], ans.views[1]["r"]) == sat.screen
        assert sat.screen in [s for s, _ in SCREENS]
        # A photo that fits the screen at 1:1 or more is seen so even as a whole.
        assert all(v["z"] >= 1 for v in sat.answer("h", truth, truth, small).views.values())
    # The rating page's measured panes: 672 x 500 at 1366 x 768.
    assert fit_zoom((1366, 768, 1.0), (672, 500)) == pytest.approx(1.0)
    assert fit_zoom((1366, 768, 2.0), (1344, 1000)) == pytest.approx(1.0)


def test_satisficers_judge_from_a_glance():
    """What sets bokeh methods apart (a sharp background against a blurred one) shows less at a
    glance than on a careful look; identical photos stay identical."""
    from study.simulate.scoring import glance_score, prepare
    from study.simulate.workers import SATISFICER_GLANCE_SIDE

    img = small(data.astronaut(), 384, 384)
    soft = blur(img, 3)
    ref, res = prepare(img), prepare(soft)
    careful, glance = true_score(img, soft), glance_score(ref, res, SATISFICER_GLANCE_SIDE)
    assert 0 < glance < careful - 0.3
    assert glance_score(ref, ref, SATISFICER_GLANCE_SIDE) == pytest.approx(0.0, abs=1e-6)


def test_answers_depend_only_on_seed_worker_and_hit():
    t = {1: 0.3, 2: 2.2, 3: 3.9}
    w = WorkerModel.create("AX", CAREFUL, seed=9)
    assert w.answer("h", t) == WorkerModel.create("AX", CAREFUL, seed=9).answer("h", t)
    answers = {str(w.answer(f"h{i}", t).ratings) + str(w.answer(f"h{i}", t).seconds)
               for i in range(5)}
    assert len(answers) > 1
    other = WorkerModel.create("AX", CAREFUL, seed=10)
    assert other.answer("h", t).seconds != w.answer("h", t).seconds


def test_returners_return_and_abandoners_leave():
    ret = WorkerModel.create("AR", "returner", seed=2)
    assert ret.leaves("k0", 0) == "return"
    later = [ret.leaves(f"k{i}", i) for i in range(1, 60)]
    assert "return" in later and None in later
    assert WorkerModel.create("AB", "abandoner", seed=2).leaves("k", 0) == "abandon"
    assert WorkerModel.create("AC", CAREFUL, seed=2).leaves("k", 0) is None


# --- reading pages -------------------------------------------------------------------------

def task_html(items: list[tuple[str, str]], hidden: dict[str, str] | None = None) -> str:
    """A task page as the HIT page contract describes it."""
    parts = ['<!DOCTYPE html><html><head><title>Rate</title>'
             '<script>var s = "<section class=\\"item\\" data-position=\\"99\\">";</script>'
             '</head><body><form id="rating-form" method="post" action="">',
             '<input type="hidden" name="assignmentId" value="">']
    for k, v in (hidden or {}).items():
        parts.append(f'<input type="hidden" name="{k}" value="{v}">')
    for p, (ref, res) in enumerate(items, 1):
        parts.append(f'<section class="item card" data-position="{p}"><div class="pair">'
                     f'<img class="reference" src="{ref}" alt="reference">'
                     f'<img class="result zoomable" src="{res}" alt="result"></div>')
        for level in range(5):
            parts.append(f'<label><input type="radio" name="rating_{p}" value="{level}">'
                         f'{level}</label>')
        parts.append(f'<input type="hidden" name="seconds_{p}" value="0"></section>')
    parts.append('<textarea name="comments"></textarea>'
                 '<button id="submit" type="submit" disabled>Submit</button></form></body></html>')
    return "".join(parts)


def test_task_page_is_read_per_the_hit_page_contract():
    html = task_html([("/img/a.png", "https://cdn.example/b.png?X-Sig=1"), ("/img/c.png", "d.png")],
                     hidden={"studyRef": "s1"})
    page = pages.task_page(html, "http://127.0.0.1:9/worker/sandbox/hits/H/question?x=1")
    assert page.positions == [1, 2]
    assert page.items[0].reference_url == "http://127.0.0.1:9/img/a.png"
    assert page.items[0].result_url == "https://cdn.example/b.png?X-Sig=1"
    assert page.items[1].result_url == "http://127.0.0.1:9/worker/sandbox/hits/H/d.png"
    assert page.items[0].levels == ["0", "1", "2", "3", "4"]
    assert page.hidden == {"assignmentId": "", "studyRef": "s1", "seconds_1": "0", "seconds_2": "0"}
    with pytest.raises(pages.PageError):
        pages.task_page("<html><body><p>nothing</p></body></html>", "http://x/")
    with pytest.raises(pages.PageError):
        pages.task_page('<form id="rating-form"><section class="item" data-position="1">'
                        '<img class="reference" src="a"></section></form>', "http://x/")


def test_worker_site_pages_are_read_per_the_url_layout():
    listing = ('<ul><li><a class="hit-group" data-hit-type-id="T1" href="/worker/sandbox/groups/T1">'
               'Rate</a></li><li><a class="other" href="/x">x</a></li></ul>')
    groups = pages.hit_groups(listing, "http://h:1/worker/sandbox/")
    assert [(g.hit_type_id, g.url) for g in groups] == [("T1", "http://h:1/worker/sandbox/groups/T1")]
    preview = ('<iframe id="question-frame" src="/worker/sandbox/hits/H1/question?assignmentId='
               'ASSIGNMENT_ID_NOT_AVAILABLE&amp;hitId=H1&amp;turkSubmitTo=http%3A%2F%2Fh%3A1%2Fworker'
               '%2Fsandbox"></iframe><form id="accept-form" method="post" '
               'action="/worker/sandbox/hits/H1/accept"><button>Accept</button></form>')
    src = pages.question_frame_src(preview, "http://h:1/worker/sandbox/hits/H1")
    q = pages.query_params(src)
    assert q["hitId"] == "H1" and q["turkSubmitTo"] == "http://h:1/worker/sandbox"
    assert q["assignmentId"] == "ASSIGNMENT_ID_NOT_AVAILABLE"
    assert pages.accept_action(preview, "http://h:1/x") == "http://h:1/worker/sandbox/hits/H1/accept"
    assert pages.accept_action("<p>No HITs left</p>", "http://h:1/x") is None


def test_hit_key_names_content_and_positions():
    a = {1: ("aa", "bb"), 2: ("aa", "cc")}
    assert hit_key(a) == hit_key(dict(a)) != hit_key({1: ("bb", "aa"), 2: ("aa", "cc")})
    assert hit_key(a) != hit_key({1: ("aa", "cc"), 2: ("aa", "bb")})


def test_schedule_is_a_function_of_the_seed_in_simulated_time():
    from study.simulate.schedule import SimulatedClock, run_schedule

    class Actor:
        def __init__(self, name, log, clock):
            self.name, self.log, self.clock, self.n = name, log, clock, 0

        def begin(self):
            self.log.append((self.name, "begin", self.clock()))
            self.n += 1
            return None if self.n > 2 else ("finish", 100.0 + len(self.name))

        def finish(self):
            self.log.append((self.name, "finish", self.clock()))
            return "begin", 5.0

    def run(seed):
        log, clock = [], SimulatedClock(start=1000.0)
        actors = [Actor(n, log, clock) for n in ("a", "bb", "ccc", "dddd")]
        stopped, simulated = run_schedule(actors, seed=seed, concurrency=2,
                                          deadline=float("inf"), clock=clock)
        assert not stopped and simulated == clock() - 1000.0
        return log

    first = run(3)
    assert first == run(3) and first != run(4)
    assert [t for *_, t in first] == sorted(t for *_, t in first)   # time never goes back
    # At most two in session at once: the third arrives only after one has left.
    started = {n: min(t for m, _, t in first if m == n) for n in ("a", "bb", "ccc", "dddd")}
    left = sorted(max(t for m, _, t in first if m == n) for n in ("a", "bb", "ccc", "dddd"))
    assert sorted(started.values())[2] >= left[0]


def test_an_unreachable_worker_site_is_a_clear_error():
    import socket

    from study.simulate import simulate_crowd

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StudyError) as e:
        simulate_crowd(f"http://127.0.0.1:{port}/worker/sandbox", workers=2, progress=False)
    assert "no worker site" in str(e.value) and "--url" in str(e.value)


# --- the command ---------------------------------------------------------------------------

def _set_serve_port(study: Path, port: int) -> None:
    import re

    path = study / "study.toml"
    text = path.read_text()
    text, n = re.subn(r"(?m)^port\s*=\s*\d+", f"port = {port}", text)
    assert n == 1
    text, n = re.subn(r'(?m)^base_url\s*=\s*"http://127\.0\.0\.1:\d+"',
                      f'base_url = "http://127.0.0.1:{port}"', text)
    assert n == 1
    path.write_text(text)


def test_command_outside_a_study_without_url_says_so(run_cli, tmp_path):
    res = run_cli("simulate", "--workers", "2", cwd=tmp_path, expect=2)
    assert "not inside a study folder" in res.output and "Traceback" not in res.output


def test_command_refuses_the_live_realm_and_a_bad_mix(run_cli, tmp_path):
    res = run_cli("simulate", "--url", "http://127.0.0.1:9", "--realm", "live", cwd=tmp_path,
                  expect=2)
    assert "sandbox" in res.output
    res = run_cli("simulate", "--url", "http://127.0.0.1:9", "--mix", "careful=1,lazy=2",
                  cwd=tmp_path, expect=2)
    assert "lazy" in res.output


def test_command_in_a_study_with_no_service_running_says_how_to_start_it(run_cli, study_dir):
    _set_serve_port(study_dir, free_port())
    res = run_cli("simulate", "--workers", "2", cwd=study_dir, expect=2)
    assert "no service answers at" in res.output and "study serve" in res.output


# --- a crowd on the real marketplace -------------------------------------------------------

ANSWERS_NS = ("{http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/"
              "QuestionFormAnswers.xsd}")


def _png(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def image_host():
    """The study's images on a small web server of their own, by content hash, as `study
    serve` hosts them: {image name: (reference URL, {method: result URL})}."""
    import hashlib
    import threading

    from flask import Flask, Response, abort
    from werkzeug.serving import make_server

    blobs: dict[str, bytes] = {}
    app = Flask("images")
    app.config["tasks"] = tasks = {}

    @app.get("/task/<name>")
    def task(name):
        # ExternalQuestion pages, as `study serve` would serve them.
        if name not in tasks:
            abort(404)
        return tasks[name]

    @app.get("/i/<name>.png")
    def image(name):
        if name not in blobs:
            abort(404)
        return Response(blobs[name], mimetype="image/png",
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"

    def url_of(arr: np.ndarray) -> str:
        data_ = _png(arr)
        name = hashlib.sha256(data_).hexdigest()[:32]
        blobs[name] = data_
        return f"{base}/i/{name}.png"

    layout = {}
    for name, ref in PHOTOS.items():
        ref = small(ref, 64, 96)
        layout[name] = (url_of(ref), {m: url_of(blur(ref, s)) for m, s in
                                      (("same", 0), ("soft", 0.8), ("mid", 1.6), ("blurry", 4.0))})
    layout["__tasks__"] = (base, tasks)
    yield layout
    server.shutdown()


def _hit_items(layout, n_hits: int, k: int) -> list[list[tuple[str, str]]]:
    pairs = [(ref, res) for name, (ref, results) in layout.items() if name != "__tasks__"
             for res in results.values()]
    rng = np.random.default_rng(0)
    hits = []
    for h in range(n_hits):
        idx = rng.choice(len(pairs), size=k, replace=False)
        hits.append([pairs[i] for i in idx])
    return hits


def _publish(client, hits: list[list[tuple[str, str]]], assignments: int) -> dict[str, int]:
    """HTMLQuestion HITs carrying the real HIT page; returns {HITId: index}."""
    from study.crowd.pages import html_question, render_page

    out = {}
    for i, items in enumerate(hits):
        page = render_page([{"position": p, "reference_url": a, "result_url": b}
                            for p, (a, b) in enumerate(items, 1)], "Rate how similar two photos look",
                           default_settings().scale.scale())
        hit = client.create_hit(
            MaxAssignments=assignments, LifetimeInSeconds=3600, AssignmentDurationInSeconds=600,
            Reward="0.10", Title="Rate how similar two photos look",
            Description="Compare each photo with the original.", Keywords="image, rating",
            Question=html_question(page), RequesterAnnotation=f"hit-{i}")["HIT"]
        out[hit["HITId"]] = i
    return out


def _listed_answers(client, hit_ids) -> dict[str, dict]:
    """Every listed assignment: {AssignmentId: {worker, hit, status, fields}}."""
    import xml.etree.ElementTree as ET

    out = {}
    for hit_id in hit_ids:
        token = None
        while True:
            kw = {"HITId": hit_id, "MaxResults": 100}
            if token:
                kw["NextToken"] = token
            page = client.list_assignments_for_hit(**kw)
            for a in page["Assignments"]:
                root = ET.fromstring(a["Answer"])
                fields = {ans.findtext(f"{ANSWERS_NS}QuestionIdentifier"):
                          ans.findtext(f"{ANSWERS_NS}FreeText")
                          for ans in root.findall(f"{ANSWERS_NS}Answer")}
                out[a["AssignmentId"]] = {"worker": a["WorkerId"], "hit": a["HITId"],
                                          "status": a["AssignmentStatus"], "fields": fields}
            token = page.get("NextToken")
            if not token:
                break
    return out


MIX = {"careful": 0.5, "spammer": 0.25, "straightliner": 1 / 16, "sloppy": 1 / 16,
       "returner": 1 / 16, "abandoner": 1 / 16}


def test_a_crowd_rates_real_hits_on_the_marketplace(tmp_path, image_host, run_cli, study_dir):
    from study.marketplace.ids import SeededIds
    from study.marketplace.testing import running_marketplace
    from study.simulate import simulate_crowd

    hits = _hit_items(image_host, n_hits=10, k=4)
    with running_marketplace(tmp_path / "a", new_id=SeededIds(7)) as mk:
        client = mk.client()
        index = _publish(client, hits, assignments=5)
        result = simulate_crowd(mk.worker_url(), workers=16, seed=7, mix=MIX, concurrency=16,
                                progress=False, deadline_s=120)
        listed = _listed_answers(client, index)

    assert not result.deadline_reached
    assert all(not w.errors for w in result.workers), [w.errors for w in result.workers]
    counts = result.by_kind()
    assert counts["careful"]["workers"] == 8 and counts["spammer"]["workers"] == 4
    subs = result.submissions
    # Every submission landed, exactly as sent, and nothing else did.
    assert {s.assignment_id for s in subs} == set(listed)
    for s in subs:
        got = listed[s.assignment_id]
        assert got["status"] == "Submitted" and got["worker"] == s.worker_id
        assert got["hit"] == s.hit_id
        for p, r in s.ratings.items():
            assert got["fields"][f"rating_{p}"] == str(r)
            assert float(got["fields"][f"seconds_{p}"]) == pytest.approx(s.seconds[p], abs=0.01)
        assert set(got["fields"]) <= ({f"rating_{p}" for p in s.ratings}
                                      | {f"seconds_{p}" for p in s.ratings}
                                      | {f"view_{p}" for p in s.ratings} | {"comments"})
    # The crowd used the capacity it was offered: 10 HITs x 5 assignments, less what the
    # abandoner still holds.
    assert len(subs) == 10 * 5 - counts["abandoner"]["abandoned"]
    assert counts["returner"]["returned"] >= 1 and counts["abandoner"]["abandoned"] == 1
    returned = [h for w in result.workers for h in w.returned_hits]
    assert returned and all(a not in listed for w in result.workers
                            for a in w.abandoned_assignments)
    # One assignment per worker per HIT.
    assert len({(s.worker_id, s.hit_id) for s in subs}) == len(subs)

    # The planted kinds answer as planted.
    def ratings_of(kind):
        r = [(s.ratings[p], s.true_scores[p]) for s in subs if s.kind == kind for p in s.ratings]
        return np.array(r, dtype=float).reshape(-1, 2)

    careful = ratings_of("careful")
    assert np.corrcoef(careful[:, 0], careful[:, 1])[0, 1] > 0.8
    spam = ratings_of("spammer")
    assert len(spam) >= 40
    counts5 = np.bincount(spam[:, 0].astype(int), minlength=5)
    chi2 = ((counts5 - len(spam) / 5) ** 2 / (len(spam) / 5)).sum()
    assert chi2 < 18.5 and abs(np.corrcoef(spam[:, 0], spam[:, 1])[0, 1]) < 0.35
    for wid in result.straightliners:
        assert len({r for s in subs if s.worker_id == wid for r in s.ratings.values()}) == 1
    assert set(result.low_quality_workers) == set(result.spammers) | set(result.straightliners)
    assert len(result.low_quality_workers) == 5
    # Same true score for the same pair, whoever fetched it.
    truth = {}
    for s in subs:
        for p, pair in s.items.items():
            assert truth.setdefault(pair, s.true_scores[p]) == s.true_scores[p]

    # The same seed on a fresh marketplace with the same HITs (and the same seeded ids),
    # through `study simulate --url`: every worker gets the same HITs and answers them alike.
    with running_marketplace(tmp_path / "b", new_id=SeededIds(7)) as mk:
        client = mk.client()
        index_b = _publish(client, hits, assignments=5)
        res = run_cli("simulate", "--url", mk.base_url, "--workers", "16", "--seed", "7",
                      "--concurrency", "16", "--json", "--mix",
                      ",".join(f"{k}={v}" for k, v in MIX.items()), cwd=study_dir)
        listed_b = _listed_answers(client, index_b)
    import json

    summary = json.loads(res.output)
    assert summary["totals"]["submitted"] == len(listed_b) == len(subs)
    assert sorted(summary["spammers"]) == sorted(result.spammers)
    first = {(s.worker_id, index[s.hit_id]): {f"rating_{p}": str(r) for p, r in s.ratings.items()}
             for s in subs}
    again = {(a["worker"], index_b[a["hit"]]): {k: v for k, v in a["fields"].items()
                                                 if k.startswith("rating_")}
             for a in listed_b.values()}
    assert first == again


class _Faulty:
    """WSGI middleware in front of the marketplace's worker site: some requests fail with 503
    before reaching it, others are carried out and then answered 502 (the answer is lost),
    and every request can be slowed down."""

    def __init__(self, app, before_every: int = 0, after_every: int = 0, delay_s: float = 0.0):
        import threading

        self.app = app
        self.before_every, self.after_every, self.delay_s = before_every, after_every, delay_s
        self.lock = threading.Lock()
        self.n = 0
        self.injected = {"before": 0, "after": 0}

    def __call__(self, environ, start_response):
        import time

        if not environ.get("PATH_INFO", "").startswith("/worker/"):
            return self.app(environ, start_response)
        if self.delay_s:
            time.sleep(self.delay_s)
        with self.lock:
            self.n += 1
            n = self.n
        if self.before_every and n % self.before_every == 0:
            self.injected["before"] += 1
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"busy"]
        if self.after_every and n % self.after_every == 0:
            self.injected["after"] += 1
            body = self.app(environ, lambda *a, **k: None)
            b"".join(body)
            if hasattr(body, "close"):
                body.close()
            start_response("502 Bad Gateway", [("Content-Type", "text/plain")])
            return [b"lost"]
        return self.app(environ, start_response)


def _faulty_marketplace(tmp_path, **faults):
    import secrets

    from study.marketplace import create_app
    from study.marketplace.server import serve_in_thread
    from study.marketplace.testing import RunningMarketplace

    key_id, secret = "AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    app = create_app(tmp_path / "marketplace.db", keys={key_id: secret})
    faulty = _Faulty(app.wsgi_app, **faults)
    app.wsgi_app = faulty
    url, stop = serve_in_thread(app, "127.0.0.1", 0)
    return RunningMarketplace(url, key_id, secret, tmp_path / "marketplace.db", app, None,
                              stop), faulty


def test_the_crowd_rides_out_server_faults_and_lost_answers(tmp_path, image_host):
    from study.simulate import simulate_crowd

    mk, faulty = _faulty_marketplace(tmp_path, before_every=5, after_every=13)
    try:
        client = mk.client()
        index = _publish(client, _hit_items(image_host, n_hits=6, k=3), assignments=3)
        result = simulate_crowd(mk.worker_url(), workers=8, seed=3, concurrency=4,
                                mix={"careful": 0.75, "returner": 0.25}, progress=False,
                                deadline_s=120)
        listed = _listed_answers(client, index)
    finally:
        mk.stop()
    assert faulty.injected["before"] > 5 and faulty.injected["after"] > 2
    assert not result.deadline_reached
    assert all(not w.errors for w in result.workers), [w.errors for w in result.workers]
    subs = result.submissions
    # Nothing submitted twice, nothing submitted unnoticed, nothing noticed that did not land.
    assert len({s.assignment_id for s in subs}) == len(subs)
    assert {s.assignment_id for s in subs} == set(listed)
    # An accept whose answer was lost leaves the worker holding an assignment it cannot see;
    # everything else was done.
    assert len(subs) >= 6 * 3 - faulty.injected["after"]


def test_the_crowd_stops_at_its_deadline(tmp_path, image_host):
    from study.simulate import simulate_crowd

    mk, _ = _faulty_marketplace(tmp_path, delay_s=0.25)
    try:
        client = mk.client()
        index = _publish(client, _hit_items(image_host, n_hits=6, k=3), assignments=3)
        result = simulate_crowd(mk.worker_url(), workers=8, seed=3, concurrency=2,
                                progress=False, deadline_s=1.5)
        listed = _listed_answers(client, index)
    finally:
        mk.stop()
    assert result.deadline_reached
    assert any(w.stopped == "deadline" for w in result.workers)
    assert len(result.submissions) < 6 * 3
    assert {s.assignment_id for s in result.submissions} <= set(listed)


def test_external_question_hits_and_a_broken_task_page(tmp_path, image_host):
    from study.crowd.pages import external_question, render_page
    from study.marketplace.testing import running_marketplace
    from study.simulate import simulate_crowd

    base, tasks = image_host["__tasks__"]
    items = _hit_items(image_host, n_hits=1, k=3)[0]
    tasks["ok"] = render_page([{"position": p, "reference_url": a, "result_url": b}
                               for p, (a, b) in enumerate(items, 1)], "Rate",
                              default_settings().scale.scale())
    with running_marketplace(tmp_path) as mk:
        client = mk.client()
        ids = {}
        for name in ("ok", "missing"):
            ids[name] = client.create_hit(
                MaxAssignments=2, LifetimeInSeconds=3600, AssignmentDurationInSeconds=600,
                Reward="0.10", Title=f"Rate photos ({name})", Description="Compare photos.",
                Question=external_question(f"{base}/task/{name}"))["HIT"]["HITId"]
        result = simulate_crowd(mk.worker_url(), workers=2, seed=1, mix={"careful": 1},
                                progress=False, deadline_s=60)
        listed = _listed_answers(client, ids.values())
        broken = client.get_hit(HITId=ids["missing"])["HIT"]
    assert {s.hit_id for s in result.submissions} == {ids["ok"]}
    assert {s.assignment_id for s in result.submissions} == set(listed)
    assert {(a["worker"], a["hit"]) for a in listed.values()} == {
        (w.worker_id, ids["ok"]) for w in result.workers}
    for w in result.workers:
        # The broken page was handed back, not left to expire.
        assert w.returned == 1 and w.returned_hits == [ids["missing"]]
        assert len(w.errors) == 1 and "404" in w.errors[0]
    assert broken["NumberOfAssignmentsAvailable"] == 2
