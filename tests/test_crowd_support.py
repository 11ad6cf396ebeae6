"""Shared pieces of the crowd tests: a study with finished renders, its marketplace and
service on a real HTTP server, and a worker driven over HTTP."""

from __future__ import annotations

import json
import shutil
import os
import re
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import numpy as np
import pytest
import requests
from PIL import Image

from study import store
from study.crowd.client import requester
from study.service import announce_service, service_id
from study.studydir import Study

METHODS = ("input", "gaussian", "depth-blend", "scatter", "reference")


def use_service_url(root: Path, url: str) -> None:
    """Point the study's settings at a service listening at `url` (port and base URL)."""
    set_config(root, f'[hosting]\nmode = "service"\nbase_url = "{url}"\n'
                     f'[serve]\nport = {url.rsplit(":", 1)[1]}\n')


def set_config(root: Path, text: str) -> None:
    """Append TOML tables to study.toml (a table that exists is replaced)."""
    path = root / "study.toml"
    body = path.read_text()
    for header in re.findall(r"^\[[^\]]+\]$", text, flags=re.M):
        body = re.sub(rf"^{re.escape(header)}\n(?:(?!\[).*\n?)*", "", body, flags=re.M)
    path.write_text(body + "\n" + text.strip() + "\n")


BLEND = {"reference": 0.0, "depth-blend": 0.25, "scatter": 0.5, "gaussian": 0.75, "input": 1.0}


def add_renders(root: Path, methods=METHODS) -> Study:
    """Finished renders for every image and method (real PNGs, rows as the renderer writes
    them): each method blends the reference with the sharp input by its own amount, so the
    methods differ as much as real ones do."""
    study = Study.open(root)
    conn = study.connect()
    try:
        images = conn.execute("SELECT * FROM images").fetchall()
        with store.transaction(conn):
            for method in methods:
                for img in images:
                    ref = np.asarray(Image.open(img["reference_path"]).convert("RGB"), float)
                    inp = np.asarray(Image.open(img["input_path"]).convert("RGB"), float)
                    a = BLEND.get(method, 0.5)
                    out = np.clip((1 - a) * ref + a * inp, 0, 255).astype(np.uint8)
                    path = root / "renders" / method / f"{img['image_id']}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(out).save(path)
                    conn.execute(
                        "INSERT OR REPLACE INTO renders (method, image_id, status, path, sha256, "
                        "width, height) VALUES (?,?, 'done', ?, '', ?, ?)",
                        (method, img["image_id"], str(path.relative_to(root)), out.shape[1],
                         out.shape[0]))
    finally:
        conn.close()
    return Study.open(root)


def make_bokeh_dataset(root: Path, ids=(1, 2, 10), size=(64, 96)) -> Path:
    """An EBB!-layout dataset whose pairs differ the way real ones do: a sharp, textured f/16
    input and a strongly blurred f/1.8 reference."""
    from PIL import ImageFilter

    h, w = size
    for k, i in enumerate(ids):
        rng = np.random.default_rng(k)
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 5.0 + k)], axis=2)
        texture = rng.uniform(-0.35, 0.35, size=(h, w, 1)) * ((xx + yy + k) % 6 < 3)[..., None]
        sharp = (np.clip(base + texture, 0, 1) * 255).astype(np.uint8)
        blurred = Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(4))
        for sub, im in (("original", Image.fromarray(sharp)), ("bokeh", blurred)):
            path = root / "test" / sub / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            im.save(path)
    return root


@contextmanager
def study_service(root: Path, throttle=None, faults=None):
    """The marketplace and the study's task pages and images on one real HTTP server, announced
    in .serve.json as a running `study serve` is, with hosting.base_url pointing at it."""
    from flask import Flask

    from study.crowd.pages import tasks_blueprint
    from study.marketplace import register
    from study.marketplace.server import serve_in_thread

    study = Study.open(root)
    keys = study.secrets()
    app = Flask("test-study-service")
    market = register(app, study.marketplace_db_path,
                      {keys["aws_access_key_id"]: keys["aws_secret_access_key"]},
                      throttle=throttle, faults=faults)
    app.register_blueprint(tasks_blueprint(_LazyStudy(root)))
    app.add_url_rule("/healthz", "healthz",
                     lambda: {"ok": True, "service_id": service_id(study.study_id)})
    url, stop = serve_in_thread(app, "127.0.0.1", 0)
    try:
        use_service_url(root, url)
        announce_service(study, url)
        yield url, market
    finally:
        (root / ".serve.json").unlink(missing_ok=True)
        stop()
        market.pool.close_all()


class _LazyStudy:
    """Re-opens the study on each use, so settings written after start-up are seen."""

    def __init__(self, root: Path):
        self.root = root

    def __getattr__(self, name):
        return getattr(Study.open(self.root), name)


class _Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.attrs: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.attrs.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict]]:
    p = _Forms()
    p.feed(html)
    return p.attrs


def work_one_hit(session, site: str, worker: str, answer) -> dict | None:
    """A worker signs in, takes the first HIT offered and submits `answer(positions, query)`
    ({field: value}; query holds hitId) to turkSubmitTo, as the task page's form would.
    None when nothing is left."""
    session.post(f"{site}/login", data={"worker_id": worker})
    listing = session.get(f"{site}/")
    groups = [a for t, a in tags(listing.text) if t == "a" and "hit-group" in a.get("class", "")]
    if not groups:
        return None
    preview = session.get(urljoin(listing.url, groups[0]["href"]))
    accept = [a for t, a in tags(preview.text) if t == "form" and a.get("id") == "accept-form"]
    if not accept:
        return None
    work = session.post(urljoin(preview.url, accept[0]["action"]))
    frame = [a for t, a in tags(work.text) if t == "iframe" and a.get("id") == "question-frame"]
    src = urljoin(work.url, frame[0]["src"])
    query = {k: v[0] for k, v in parse_qs(urlsplit(src).query).items()}
    page = session.get(src).text
    positions = sorted(int(a["data-position"]) for t, a in tags(page)
                       if t == "section" and "data-position" in a)
    fields = dict(answer(positions, query))
    fields["assignmentId"] = query["assignmentId"]
    resp = session.post(f"{query['turkSubmitTo'].rstrip('/')}/mturk/externalSubmit", data=fields)
    resp.raise_for_status()
    return {"assignment_id": query["assignmentId"], "hit_id": query.get("hitId"),
            "positions": positions, "page": page}


def photo_dataset_study(base: Path, ratings_per_item: int = 2, size=(64, 96)) -> Path:
    """A study made by `study init` (3 small images, 5 methods rendered), R ratings per item,
    a bonus, and workers blocked after one failure."""
    from conftest import CLI

    dataset = make_bokeh_dataset(base / "ebb", size=size)
    root = base / "study"
    CLI()("init", root, "--dataset", dataset)
    add_renders(root)
    set_config(root, f"[design]\nitems_per_hit = 10\nratings_per_item = {ratings_per_item}\n")
    set_config(root, "[quality]\nbonus_usd = 0.10\nbonus_reason = \"Thanks\"\n"
                     "block_after_failures = 1\n")
    return root


def copy_study(src: Path, dst: Path) -> Study:
    shutil.copytree(src, dst)
    return Study.open(dst)


def marketplace_hits(study, realm="sandbox"):
    with requester(study, realm) as api:
        return list(api.pages("list_hits", "HITs"))


def check_published_once(study):
    conn = study.connect()
    try:
        rows = conn.execute("SELECT * FROM hits").fetchall()
        designed = int(conn.execute("SELECT value FROM meta WHERE key = 'crowd.design_hits'")
                       .fetchone()[0])
    finally:
        conn.close()
    hits = marketplace_hits(study)
    assert len(hits) == designed == len(rows)
    assert sorted(h["HITId"] for h in hits) == sorted(r["hit_id"] for r in rows)
    assert len({h["RequesterAnnotation"] for h in hits}) == len(hits)
    assert all(r["state"] == "created" for r in rows)


def hit_rows(study_root, hit_id: str) -> dict:
    """The items of the HIT `hit_id`, by position: what an answer function needs to know of
    each (kind, method, method_b, swapped, ...)."""
    conn = Study.open(study_root).connect()
    try:
        return {r["position"]: r for r in conn.execute(
            "SELECT hi.position, hi.swapped, i.* FROM hits h JOIN hit_items hi ON "
            "hi.hit_index = h.hit_index JOIN items i USING (item_id) WHERE h.hit_id = ?",
            (hit_id,))}
    finally:
        conn.close()


def answers_for(study_root, style: str):
    """An answer function: 'careful' rates gold right and tests by method; 'spammer' gets the
    gold pairs wrong at once."""
    def answer(positions, query):
        by_pos = hit_rows(study_root, query["hitId"])
        order = ["reference", "depth-blend", "scatter", "gaussian", "input"]
        out = {}
        for p in positions:
            r = by_pos[p]
            if style == "careful":
                score = {"gold_reference": 0, "gold_control": 4}.get(
                    r["kind"], order.index(r["method"]) if r["method"] in order else 2)
                out[f"seconds_{p}"] = "6.5"
            else:
                score = {"gold_reference": 4, "gold_control": 0}.get(r["kind"], 4)
                out[f"seconds_{p}"] = "0.4"
            out[f"rating_{p}"] = str(score)
        return out
    return answer


def work_every_hit(root: Path, site: str, careful_workers: int = 2) -> None:
    """One spammer takes every HIT it can, then careful workers take the rest."""
    spam = requests.Session()
    while work_one_hit(spam, site, "SPAM1", answers_for(root, "spammer")):
        pass
    for w in range(careful_workers):
        s = requests.Session()
        while work_one_hit(s, site, f"GOOD{w}", answers_for(root, "careful")):
            pass


@pytest.fixture
def fresh_faults(monkeypatch):
    """Fast retries, and no fault left armed from another test."""
    from study.crowd import faults
    monkeypatch.setenv("STUDY_RETRY_BASE_S", "0.01")
    faults.reset()
    yield
    faults.reset()


@pytest.fixture(scope="module")
def ready_study(tmp_path_factory):
    """A study with renders, R = 2, and a bonus; nothing published."""
    return photo_dataset_study(tmp_path_factory.mktemp("ready"))
