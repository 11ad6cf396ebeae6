"""The worker's path and the requester dashboard in a real browser (headless Chromium) against
the whole `study serve` application: sign in, preview, accept, zoom, flip, rate, submit, then
`study collect` holds exactly the clicked ratings; the dashboard with and without its token."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest

from browser_support import require_browser

sync_api = require_browser()

import requests  # noqa: E402

from conftest import CLI, OUTPUT_DIR  # noqa: E402
from study.service import announce_service  # noqa: E402
from study.studydir import Study  # noqa: E402
from study.web import create_app  # noqa: E402
from study.marketplace.server import serve_in_thread  # noqa: E402
from test_crowd_support import (photo_dataset_study, set_config, use_service_url,  # noqa: E402
                                work_one_hit)

pytestmark = pytest.mark.browser

HOSTILE = "<script>alert(1)</script>"
STUDY_NAME = "Bokeh rendering e2e"
# Ratings for test items, varied so the assignment is not taken for straight-lining.
PATTERN = (1, 3, 0, 4, 2)
ANSWER_NS = "{http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/" \
            "QuestionFormAnswers.xsd}"


@dataclass
class Service:
    root: Path
    url: str
    token: str
    cli: CLI

    def study(self) -> Study:
        return Study.open(self.root)


class _LateApp:
    """A WSGI app filled in after the server is listening: the app reads hosting.base_url at
    creation, and the URL is known only once the server has its port."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """`study serve`'s app on a real HTTP server for a study with 3 small images and 5 methods
    rendered, announced in .serve.json and published to the sandbox by the CLI."""
    root = photo_dataset_study(tmp_path_factory.mktemp("e2e"))
    toml = root / "study.toml"
    toml.write_text(toml.read_text().replace('name = "study"', f'name = "{STUDY_NAME}"', 1))
    # A browser clicks faster than a person reads; the time check is not what is tested here.
    set_config(root, "[quality]\nbonus_usd = 0.10\nbonus_reason = \"Thanks\"\n"
                     "block_after_failures = 1\nmin_seconds_per_item = 0.1\n")
    late = _LateApp()
    url, stop = serve_in_thread(late, "127.0.0.1", 0)
    app = None
    try:
        use_service_url(root, url)
        app = create_app(Study.open(root))
        late.app = app
        announce_service(Study.open(root), url)
        cli = CLI()
        cli("--study", root, "publish", "--sandbox", "--yes")
        yield Service(root, url, app.config["DASHBOARD_TOKEN"], cli)
    finally:
        (root / ".serve.json").unlink(missing_ok=True)
        stop()
        market = app.extensions.get("marketplace") if app is not None else None
        if market is not None and hasattr(market, "pool"):
            market.pool.close_all()


@pytest.fixture
def page(browser):
    """A fresh browser profile (no cookies) whose script errors and dialogs are recorded."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.errors, pg.dialogs = [], []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))

    def on_dialog(d):
        pg.dialogs.append(d.message)
        d.dismiss()

    pg.on("dialog", on_dialog)
    try:
        yield pg
    finally:
        ctx.close()


def planned_values(root: Path, hit_id: str, positions: list[int]) -> dict[int, int]:
    """The rating to give at each position: a gold item's expected answer (so the assignment
    passes quality control and its ratings count), a fixed pattern for test items."""
    conn = Study.open(root).connect()
    try:
        rows = {r["position"]: r for r in conn.execute(
            "SELECT hi.position, i.kind, i.expected_min FROM hits h "
            "JOIN hit_items hi ON hi.hit_index = h.hit_index "
            "JOIN items i ON i.item_id = hi.item_id WHERE h.hit_id = ?", (hit_id,))}
    finally:
        conn.close()
    assert sorted(rows) == sorted(positions)
    return {p: (rows[p]["expected_min"] if rows[p]["kind"] != "test" and
                rows[p]["expected_min"] is not None else PATTERN[k % len(PATTERN)])
            for k, p in enumerate(sorted(positions))}


def answer_fields(root: Path, assignment_id: str) -> dict[str, str]:
    conn = Study.open(root).connect()
    try:
        xml = conn.execute("SELECT answer_xml FROM assignments WHERE assignment_id = ?",
                           (assignment_id,)).fetchone()[0]
    finally:
        conn.close()
    return {a.findtext(f"{ANSWER_NS}QuestionIdentifier"): a.findtext(f"{ANSWER_NS}FreeText")
            for a in ET.fromstring(xml).iter(f"{ANSWER_NS}Answer")}


def images_loaded(frame) -> bool:
    """The pair on screen is loaded (the page loads the rest as the worker moves on)."""
    return frame.locator("body").evaluate(
        "b => [...b.querySelectorAll('section.item.current img')]"
        ".every(i => i.complete && i.naturalWidth > 0)")


# Run inside the HIT's frame (sandboxed in an opaque origin: the page cannot reach into it).
CURRENT_LOADED = ("() => [...document.querySelectorAll('section.item.current img')]"
                  ".every(i => i.complete)")


def rendered_width(img) -> float:
    return img.evaluate("i => i.getBoundingClientRect().width")


def test_dashboard_needs_its_token(service, page):
    resp = page.goto(f"{service.url}/dashboard/")
    assert resp.status == 401
    assert "Token needed" in page.content()
    assert page.locator("#progress, #mos, #workers, #spend").count() == 0
    assert STUDY_NAME not in page.content()
    assert page.goto(f"{service.url}/dashboard/data.json").status == 401

    resp = page.goto(f"{service.url}/dashboard/?token=not-the-token")
    assert resp.status == 403
    assert page.locator("#progress").count() == 0
    assert STUDY_NAME not in page.content()

    # The right token is taken once and leaves the address bar at once.
    resp = page.goto(f"{service.url}/dashboard/?token={service.token}")
    assert resp.request.redirected_from is not None
    assert resp.request.redirected_from.response().status in (302, 303)
    assert urlsplit(page.url).path == "/dashboard/" and urlsplit(page.url).query == ""
    assert service.token not in page.content()
    assert page.dialogs == []


def test_dashboard_opens_with_its_token(service, page):
    page.goto(f"{service.url}/dashboard/?token={service.token}")
    assert service.token not in page.url
    # The session cookie keeps the dashboard open without the token.
    resp = page.goto(f"{service.url}/dashboard/")
    assert resp.status == 200
    assert STUDY_NAME in page.locator("header").inner_text()
    for section in ("#progress", "#spend", "#mos", "#workers", "#reports"):
        assert page.locator(section).count() == 1, section
    assert page.locator("#progress .stage").count() == 5
    assert service.token not in page.content()
    assert page.errors == [] and page.dialogs == []


def test_worker_rates_a_hit_in_chromium(service, page):
    site = f"{service.url}/worker/sandbox"
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)

    # Sign in: the worker site sends a stranger to the sandbox sign-in form.
    page.goto(f"{site}/")
    assert urlsplit(page.url).path == "/worker/sandbox/login"
    page.fill("input[name=worker_id]", "browser worker 1")
    with page.expect_navigation():
        page.click("#login")
    assert urlsplit(page.url).path == "/worker/sandbox/"

    # Preview: the task is shown, but the HIT cannot be submitted.
    with page.expect_navigation():
        page.locator("a.hit-group").first.click()
    assert re.fullmatch(r"/worker/sandbox/hits/\w+", urlsplit(page.url).path)
    src = page.get_attribute("#question-frame", "src")
    assert "assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE" in src
    frame = page.frame_locator("#question-frame")
    sections = frame.locator("section.item")
    sections.first.wait_for()
    n = sections.count()
    assert n >= 5
    page.query_selector("#question-frame").content_frame().wait_for_function(CURRENT_LOADED)
    assert images_loaded(frame)
    page.screenshot(path=str(OUTPUT_DIR / "worker-preview.png"), full_page=True)
    assert frame.locator("#submit").is_disabled()
    assert "Preview" in frame.locator("#status").inner_text()
    # Preview is read-only: nothing can be rated, and the notice says so at the top.
    assert frame.locator("#preview-notice").is_visible()
    for pos in range(1, n + 1):
        assert frame.locator(f"input[name=rating_{pos}][value='2']").is_disabled()
    assert frame.locator("#submit").is_disabled()
    frame.locator("#rating-form").evaluate("f => f.requestSubmit()")
    page.wait_for_timeout(300)
    assert frame.locator("section.item").count() == n  # still the task, nothing was sent

    # Accept: the work page holds the assignment's task page.
    with page.expect_navigation():
        page.click("#accept")
    assert re.fullmatch(r"/worker/sandbox/assignments/\w+", urlsplit(page.url).path)
    assignment_id = page.inner_text("#assignment-id").strip()
    query = {k: v[0] for k, v in
             parse_qs(urlsplit(page.get_attribute("#question-frame", "src")).query).items()}
    assert query["assignmentId"] == assignment_id
    frame = page.frame_locator("#question-frame")
    sections = frame.locator("section.item")
    sections.first.wait_for()
    assert sections.count() == n
    page.query_selector("#question-frame").content_frame().wait_for_function(CURRENT_LOADED)
    assert images_loaded(frame)
    assert frame.locator("#submit").is_disabled()

    # Zoom: the pair opens at 1:1 (one image pixel per screen pixel at this device pixel
    # ratio of 1), "Whole photo" fits it to the view; both sides always share one transform.
    first = sections.first
    ref, res = first.locator("img.reference"), first.locator("img.result")
    natural = res.evaluate("i => i.naturalWidth")
    assert rendered_width(res) == pytest.approx(natural, abs=0.5)
    first.locator("button.fit").click()
    fitted = rendered_width(res)
    assert fitted != pytest.approx(natural, abs=0.5)
    assert ref.evaluate("i => i.style.transform") == res.evaluate("i => i.style.transform")
    first.locator("button.native").click()
    assert rendered_width(res) == pytest.approx(natural, abs=0.5)

    # Flip: the processed photo's place shows the original, switching at each press.
    assert ref.is_visible() and res.is_visible()
    first.locator("button.flip").click()
    assert not res.is_visible() and "original" in first.locator(".right .label").inner_text()
    first.locator("button.flip").click()
    assert res.is_visible() and first.locator(".right .label").inner_text() == "processed"

    # Rate every item; submit unlocks only with the last one.
    positions = sorted(int(sections.nth(k).get_attribute("data-position")) for k in range(n))
    assert positions == list(range(1, n + 1))
    values = planned_values(service.root, query["hitId"], positions)
    for pos in positions:
        assert frame.locator("#submit").is_disabled()
        # One pair per screen: each comes up after the previous is rated.
        item = frame.locator(f"section.item.current[data-position='{pos}']")
        item.wait_for()
        page.wait_for_timeout(250)  # time on the item, recorded by the page
        item.locator(f"label:has(input[value='{values[pos]}'])").click()
    assert frame.locator("#submit").is_enabled()
    frame.locator("nav details summary").click()
    frame.locator("textarea[name=comments]").fill(HOSTILE)
    page.screenshot(path=str(OUTPUT_DIR / "worker-task.png"), full_page=True)
    # The whole task page as one picture (the work page shows it through a scrolling frame).
    whole = page.context.new_page()
    whole.goto(urljoin(page.url, page.get_attribute("#question-frame", "src")))
    whole.wait_for_function("() => [...document.querySelectorAll('section.item.current img')]"
                            ".every(i => i.complete)")
    whole.screenshot(path=str(OUTPUT_DIR / "worker-task-page.png"), full_page=True)
    whole.close()

    with page.expect_request(lambda r: r.method == "POST"
                             and r.url.endswith("/mturk/externalSubmit")) as submit:
        frame.locator("#submit").click()
    # Submitted through the capability in turkSubmitTo (the sandboxed page sends no cookie).
    assert re.fullmatch(r"/worker/sandbox/s/[^/]+/mturk/externalSubmit",
                        urlsplit(submit.value.url).path)
    # The work page then shows its own full-page confirmation: what happens next, and nothing
    # left to return.
    page.wait_for_url("**/assignments/*/submitted")
    assert page.inner_text("#assignment-id") == assignment_id
    assert page.locator("#auto-approval").is_visible() and page.locator("#return").count() == 0
    page.screenshot(path=str(OUTPUT_DIR / "worker-submitted.png"), full_page=True)
    assert page.errors == [] and page.dialogs == []

    # `study collect` holds exactly the clicked ratings, position by position.
    service.cli("--study", service.root, "collect", "--no-approve")
    fields = answer_fields(service.root, assignment_id)
    assert {p: int(fields[f"rating_{p}"]) for p in positions} == values
    assert fields["comments"] == HOSTILE
    conn = service.study().connect()
    try:
        rows = conn.execute("SELECT position, score, seconds, worker_id FROM ratings "
                            "WHERE assignment_id = ? ORDER BY position",
                            (assignment_id,)).fetchall()
    finally:
        conn.close()
    assert [(r["position"], r["score"]) for r in rows] == sorted(values.items())
    assert all(r["seconds"] is not None and r["seconds"] > 0 for r in rows)
    assert {p: float(fields[f"seconds_{p}"]) for p in positions} == \
        {r["position"]: r["seconds"] for r in rows}
    assert {r["worker_id"] for r in rows} == {query["workerId"]}


def test_dashboard_shows_the_study_and_escapes_worker_text(service, page):
    # A worker whose typed id and comment are markup submits a HIT, and collect takes it in.
    site = f"{service.url}/worker/sandbox"

    def answer(positions, query):
        values = planned_values(service.root, query["hitId"], positions)
        fields = {f"rating_{p}": str(v) for p, v in values.items()}
        fields.update({f"seconds_{p}": "3.0" for p in positions})
        fields["comments"] = HOSTILE
        return fields

    with requests.Session() as s:
        done = work_one_hit(s, site, HOSTILE, answer)
    assert done is not None
    service.cli("--study", service.root, "collect")

    page.goto(f"{service.url}/dashboard/?token={service.token}")
    page.screenshot(path=str(OUTPUT_DIR / "dashboard.png"), full_page=True)
    resp = page.goto(f"{service.url}/dashboard/")
    assert resp.status == 200, page.content()[:2000]
    html = page.content()
    assert HOSTILE not in html and "<script>alert" not in html
    assert page.dialogs == [] and page.errors == []
    assert page.locator("#progress .stage").count() == 5
    # The hostile worker appears under the id the marketplace derived from what was typed.
    assert re.search(r"\bASCRIPTALERT1SCRIPT\w+", page.locator("#workers").inner_text())
    methods = page.locator("#mos tr").all_inner_texts()[1:]
    assert {t.split("\t")[1] for t in methods} >= {"depth-blend", "scatter", "gaussian"}
    spend = {c.locator("xpath=preceding-sibling::th[1]").inner_text().strip(): c.inner_text()
             for c in page.locator("#spend td").all()}
    assert int(spend["Assignments submitted"]) >= 1
    assert spend["Approved (paid)"].strip() != "0"
    published, planned = (int(x) for x in spend["HITs published"].split("/"))
    assert published == planned >= 1
    assert float(spend["Spent"].lstrip("$")) > 0
    assert float(spend["Committed"].split()[0].lstrip("$")) > 0


def test_report_and_dashboard_as_a_reader_sees_them(service, page):
    """`study report` on the partly collected study: the dashboard links the HTML report and
    does not show the report card as done; both pages are kept as screenshots."""
    # This study's renders were copied in without fidelity metrics; give them the demo data's
    # (study.render.builtins), the reference being identical to itself.
    conn = service.study().connect()
    try:
        for method, psnr, ssim in (("scatter", 30.8, 0.970), ("depth-blend", 28.3, 0.952),
                                   ("gaussian", 24.5, 0.811), ("input", 23.7, 0.788),
                                   ("reference", float("inf"), 1.0)):
            conn.execute("UPDATE renders SET psnr = ?, ssim = ? WHERE method = ?",
                         (psnr, ssim, method))
        conn.commit()
    finally:
        conn.close()
    service.cli("--study", service.root, "report")
    page.goto(f"{service.url}/dashboard/?token={service.token}")
    card = page.locator("#stage-report")
    assert "done" not in (card.get_attribute("class") or "").split()
    assert re.search(r"collection incomplete: \d+ of \d+ items have all their ratings",
                     card.inner_text())
    assert "The same analysis as study report" in page.locator("#mos").inner_text()
    page.screenshot(path=str(OUTPUT_DIR / "dashboard-with-report.png"), full_page=True)
    with page.expect_navigation():
        page.click("#reports a[href$='report.html']")
    assert page.locator("h1").inner_text() == "MOS ranking report"
    for figure in ("#mos-plot svg", "#heatmap svg", "#psnr-mos svg", "#ssim-mos svg"):
        assert page.locator(figure).count() == 1, figure
    assert "reference (PSNR undefined: identical images)" in page.locator("#psnr-mos").inner_text()
    ranking = page.locator("#ranking").inner_text()
    assert "inf" not in ranking.lower() and "—" in ranking
    assert page.errors == [] and page.dialogs == []
    page.screenshot(path=str(OUTPUT_DIR / "report.png"), full_page=True)
