"""The rating page in a real browser (Chromium): preview, rating, zoom, flip, time per item,
and a submission the marketplace records and collect reads back."""

from __future__ import annotations

import shutil
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from study.crowd.collect import collect
from study.crowd.publish import publish
from study.studydir import Study
from test_crowd_support import photo_dataset_study, set_config, study_service, tags

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium")]


def accepted_task_url(site: str, s: requests.Session | None = None) -> str:
    s = s or requests.Session()
    s.post(f"{site}/login", data={"worker_id": "BROWSER1"})
    listing = s.get(f"{site}/")
    group = [a for t, a in tags(listing.text) if t == "a" and "hit-group" in a.get("class", "")]
    preview = s.get(urljoin(listing.url, group[0]["href"]))
    form = [a for t, a in tags(preview.text) if t == "form" and a.get("id") == "accept-form"]
    work = s.post(urljoin(preview.url, form[0]["action"]))
    frame = [a for t, a in tags(work.text) if t == "iframe" and a.get("id") == "question-frame"]
    return urljoin(work.url, frame[0]["src"])


def accepted_task(url: str) -> tuple[str, str, list[dict]]:
    """A HIT accepted by a worker: its task page URL, the URL of its preview, and the worker's
    sign-in cookies (the worker site shows an assignment's page only to the worker who
    accepted it)."""
    worker = requests.Session()
    task_url = accepted_task_url(f"{url}/worker/sandbox", worker)
    aid = parse_qs(urlsplit(task_url).query)["assignmentId"][0]
    return (task_url, task_url.replace(aid, "ASSIGNMENT_ID_NOT_AVAILABLE"),
            [{"name": c.name, "value": c.value, "url": url} for c in worker.cookies])


def worker_page(browser, cookies: list[dict], errors: list[str], **context):
    ctx = browser.new_context(**context)
    ctx.add_cookies(cookies)
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


@pytest.mark.parametrize("question", ["html", "external"])
def test_rating_page_in_chromium(tmp_path, question):
    from playwright.sync_api import sync_playwright

    root = photo_dataset_study(tmp_path)
    set_config(root, f'[hit]\nquestion = "{question}"\n')
    with study_service(root) as (url, _market):
        study = Study.open(root)
        publish(study, "sandbox", echo=lambda _m: None)
        task_url, preview_url, cookies = accepted_task(url)
        query = {k: v[0] for k, v in parse_qs(urlsplit(task_url).query).items()}
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = worker_page(browser, cookies, errors, viewport={"width": 1200, "height": 900})
            # Preview: read-only, submit disabled.
            page.goto(preview_url)
            n = page.locator("section.item").count()
            assert all(page.locator(f"input[name=rating_{pos}][value='2']").is_disabled()
                       for pos in range(1, n + 1))
            assert page.locator("#submit").is_disabled()
            # Accepted: disabled until the last item is rated.
            page.goto(task_url)
            action = page.eval_on_selector("#rating-form", "f => f.action")
            assert action == query["turkSubmitTo"].rstrip("/") + "/mturk/externalSubmit"
            first = page.locator("section.item.current")
            page.wait_for_timeout(1200)
            view = first.locator(".view").first
            box = view.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            t0 = first.locator("img.result").evaluate("i => i.style.transform")
            page.mouse.wheel(0, -300)              # a plain wheel does not zoom
            page.wait_for_timeout(100)
            assert first.locator("img.result").evaluate("i => i.style.transform") == t0
            page.keyboard.down("Control")
            page.mouse.wheel(0, -300)
            page.keyboard.up("Control")
            page.wait_for_timeout(100)
            t_ref = first.locator("img.reference").evaluate("i => i.style.transform")
            t_res = first.locator("img.result").evaluate("i => i.style.transform")
            assert t_ref == t_res and "scale(" in t_ref and t_res != t0
            first.locator("button.mode").click()
            assert first.locator(".views").evaluate("v => v.classList.contains('flicker')")
            first.locator("button.flip").click()
            assert not first.locator("img.result").is_visible()
            first.locator("button.flip").click()
            assert first.locator("img.result").is_visible()
            first.locator("button.mode").click()
            for pos in range(1, n + 1):
                assert page.locator("#submit").is_disabled()
                item = page.locator(f"section.item.current[data-position='{pos}']")
                item.wait_for()
                item.locator(f"label:has(input[value='{pos % 5}'])").click()
            page.wait_for_timeout(500)
            assert page.locator("#submit").is_enabled()
            seconds = float(page.locator("input[name=seconds_1]").input_value())
            assert seconds >= 1.0
            with page.expect_navigation():
                page.locator("#submit").click()
            browser.close()
        assert errors == []
        collect(study, echo=lambda _m: None)
        conn = study.connect()
        rows = conn.execute("SELECT position, score, seconds, valid FROM ratings "
                            "ORDER BY position").fetchall()
        assert [r["score"] for r in rows] == [p % 5 for p in range(1, n + 1)]
        assert all(r["seconds"] is not None for r in rows) and rows[0]["seconds"] >= 1.0


VIEWPORTS = {
    "laptop": {"viewport": {"width": 1366, "height": 768}, "device_scale_factor": 1},
    "phone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3,
              "is_mobile": True, "has_touch": True},
}


def _transform(item) -> str:
    return item.locator("img.result").evaluate("i => i.style.transform")


@pytest.mark.parametrize("screen", ["laptop", "phone"])
def test_rating_with_keyboard_and_flicker(tmp_path, screen):
    """Preview is read-only with its notice at the top; a worker rates the whole HIT with number
    keys alone (auto-advance, Enter submits), flickers at 2x zoom without losing zoom or pan,
    and goes back to side by side; every item's answer carries its viewing record."""
    from playwright.sync_api import sync_playwright

    from conftest import OUTPUT_DIR
    from study.crowd.answers import parse_answers
    from study.crowd import design

    out = OUTPUT_DIR / "rating-page"
    out.mkdir(parents=True, exist_ok=True)
    root = photo_dataset_study(tmp_path, size=(512, 768))
    with study_service(root) as (url, _market):
        study = Study.open(root)
        publish(study, "sandbox", echo=lambda _m: None)
        task_url, preview_url, cookies = accepted_task(url)
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = worker_page(browser, cookies, errors, **VIEWPORTS[screen])
            page.goto(preview_url)
            notice = page.locator("#preview-notice")
            assert notice.is_visible() and notice.bounding_box()["y"] < 50
            assert page.locator("input[name=rating_1]").first.is_disabled()
            page.screenshot(path=str(out / f"{screen}-1-preview.png"))
            small = page.viewport_size
            page.set_viewport_size({"width": 300, "height": 480})
            page.wait_for_function("document.getElementById('screen-notice').textContent"
                                   ".includes('needs at least 360')")
            page.screenshot(path=str(out / f"{screen}-2-too-small.png"))
            page.set_viewport_size(small)

            page.goto(task_url)
            assert errors == []
            page.wait_for_function("[...document.querySelectorAll('section.item.current img')]"
                                   ".every(i => i.complete && i.naturalWidth > 0)")
            n = page.locator("section.item").count()
            first = page.locator("section.item.current")
            assert first.locator(".zoom").inner_text() == "1:1"
            # The pair on screen and the next one load first; the last waits its turn.
            page.wait_for_timeout(500)
            assert not page.locator("section.item").last.locator("img.result").evaluate(
                "i => i.complete && i.naturalWidth > 0")
            page.screenshot(path=str(out / f"{screen}-3-native.png"))
            if screen == "phone":
                # Two fingers spread on the photo zoom it, not the page.
                box = first.locator(".view.right").bounding_box()
                cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
                cdp = page.context.new_cdp_session(page)

                def touch(kind, spread):
                    points = [] if kind == "touchEnd" else [
                        {"x": cx - spread, "y": cy, "id": 0}, {"x": cx + spread, "y": cy, "id": 1}]
                    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

                touch("touchStart", 20)
                for spread in (30, 40, 50, 60):
                    touch("touchMove", spread)
                touch("touchEnd", 0)
                zoom = first.locator(".zoom").inner_text()
                assert zoom.endswith(":1") and float(zoom[:-2]) >= 2, zoom
                assert page.evaluate("[window.scrollY, window.visualViewport.scale]") == [0, 1]
                page.screenshot(path=str(out / f"{screen}-3b-pinched.png"))
                page.keyboard.press("n")
            positions = [int(page.locator("section.item").nth(i).get_attribute("data-position"))
                         for i in range(n)]
            for k, pos in enumerate(positions):
                item = page.locator(f"section.item[data-position='{pos}']")
                assert "current" in item.get_attribute("class")
                page.wait_for_function(
                    f"[...document.querySelectorAll('section.item[data-position=\"{pos}\"] img')]"
                    ".every(i => i.complete && i.naturalWidth > 0)")
                if k == 1:
                    page.keyboard.press("v")              # one view, for flicker
                    page.keyboard.press("+")              # 2:1
                    assert item.locator(".zoom").inner_text() == "2:1"
                    page.keyboard.press("Shift+ArrowLeft")
                    before = _transform(item)
                    page.screenshot(path=str(out / f"{screen}-4-flicker-2x.png"))
                    page.keyboard.down(" ")
                    assert "original" in item.locator(".right .label").inner_text()
                    assert _transform(item) == before
                    page.screenshot(path=str(out / f"{screen}-5-flicker-held.png"))
                    page.keyboard.up(" ")
                    assert item.locator(".right .label").inner_text() == "processed"
                    # The same with the mouse: pressing the hold button shows the original
                    # until it is let go, and the zoom and pan stay.
                    item.locator(".hold").hover()
                    page.mouse.down()
                    assert "original" in item.locator(".right .label").inner_text()
                    assert _transform(item) == before
                    page.mouse.up()
                    assert item.locator(".right .label").inner_text() == "processed"
                    assert _transform(item) == before
                    page.keyboard.press("f")
                    assert "original" in item.locator(".right .label").inner_text()
                    page.keyboard.press("f")
                    assert item.locator(".right .label").inner_text() == "processed"
                    assert _transform(item) == before and \
                        item.locator(".zoom").inner_text() == "2:1"
                    page.keyboard.press("v")              # back to side by side
                    assert item.locator(".view.left").is_visible()
                    page.screenshot(path=str(out / f"{screen}-6-side-by-side-2x.png"))
                    page.keyboard.press("n")
                page.wait_for_timeout(300)
                page.keyboard.press(str(pos % 5))
                if k == 0:
                    page.screenshot(path=str(out / f"{screen}-7-rated.png"))
                page.wait_for_timeout(500)
            assert page.locator("#progress-text").inner_text() == f"{n} / {n} rated"
            assert page.evaluate("document.activeElement.id") == "submit"
            page.screenshot(path=str(out / f"{screen}-8-all-rated.png"))
            with page.expect_navigation():
                page.keyboard.press("Enter")
            browser.close()
        assert errors == []
        collect(study, echo=lambda _m: None)
        conn = study.connect()
        rows = conn.execute("SELECT position, score, seconds FROM ratings "
                            "ORDER BY position").fetchall()
        assert [r["score"] for r in rows] == [p % 5 for p in sorted(positions)]
        answer = conn.execute("SELECT answer_xml, hit_index, quality_json "
                              "FROM assignments").fetchone()
        parsed = parse_answers(answer["answer_xml"], sorted(positions),
                               design.stored_scale(conn))
        views = {p: parsed.items[p].view for p in positions}
        assert all(v is not None and v["seconds"] > 0.2 for v in views.values()), views
        flickered = views[positions[1]]
        assert flickered["max_zoom"] >= 2 and flickered["flips"] >= 3
        width = VIEWPORTS[screen]["viewport"]["width"]
        assert flickered["viewport"][0] == width
        assert flickered["pixel_ratio"] == VIEWPORTS[screen]["device_scale_factor"]
        assert all(v["max_zoom"] >= 1 for v in views.values())
        # collect keeps each item's viewing record beside the assignment's checks.
        import json
        stored = json.loads(answer["quality_json"])["views"]
        assert stored[str(positions[1])]["flips"] == flickered["flips"]
