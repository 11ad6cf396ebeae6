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


def accepted_task_url(site: str) -> tuple[str, list[dict]]:
    """The task page of a HIT that worker BROWSER1 accepted, and that worker's session cookies
    (the page of an accepted assignment opens for its worker only)."""
    s = requests.Session()
    s.post(f"{site}/login", data={"worker_id": "BROWSER1"})
    listing = s.get(f"{site}/")
    group = [a for t, a in tags(listing.text) if t == "a" and "hit-group" in a.get("class", "")]
    preview = s.get(urljoin(listing.url, group[0]["href"]))
    form = [a for t, a in tags(preview.text) if t == "form" and a.get("id") == "accept-form"]
    work = s.post(urljoin(preview.url, form[0]["action"]))
    frame = [a for t, a in tags(work.text) if t == "iframe" and a.get("id") == "question-frame"]
    cookies = [{"name": c.name, "value": c.value, "url": site} for c in s.cookies]
    return urljoin(work.url, frame[0]["src"]), cookies


@pytest.mark.parametrize("question", ["html", "external"])
def test_rating_page_in_chromium(tmp_path, question):
    from playwright.sync_api import sync_playwright

    root = photo_dataset_study(tmp_path)
    set_config(root, f'[hit]\nquestion = "{question}"\n')
    with study_service(root) as (url, _market):
        study = Study.open(root)
        publish(study, "sandbox", echo=lambda _m: None)
        task_url, cookies = accepted_task_url(f"{url}/worker/sandbox")
        query = {k: v[0] for k, v in parse_qs(urlsplit(task_url).query).items()}
        preview_url = task_url.replace(query["assignmentId"], "ASSIGNMENT_ID_NOT_AVAILABLE")
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            context.add_cookies(cookies)
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            # Preview: submit stays disabled even with every item rated.
            page.goto(preview_url)
            n = page.locator("section.item").count()
            for pos in range(1, n + 1):
                page.locator(f"input[name=rating_{pos}][value='2']").check()
            assert page.locator("#submit").is_disabled()
            # Accepted: disabled until the last item is rated.
            page.goto(task_url)
            action = page.eval_on_selector("#rating-form", "f => f.action")
            assert action == query["turkSubmitTo"].rstrip("/") + "/mturk/externalSubmit"
            first = page.locator("section.item").first
            first.hover()
            page.wait_for_timeout(1200)
            view = first.locator(".view").first
            box = view.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.wheel(0, -300)
            page.wait_for_timeout(100)
            t_ref = first.locator("img.reference").evaluate("i => i.style.transform")
            t_res = first.locator("img.result").evaluate("i => i.style.transform")
            assert t_ref == t_res and "scale(" in t_ref
            first.locator("button.flip").click()
            assert first.locator(".views").evaluate("v => v.classList.contains('single')")
            hidden = first.locator(".view.hidden img").get_attribute("class")
            first.locator("button.flip").click()
            assert first.locator(".view.hidden img").get_attribute("class") != hidden
            for pos in range(1, n + 1):
                assert page.locator("#submit").is_disabled()
                page.locator(f"input[name=rating_{pos}][value='{pos % 5}']").check()
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
