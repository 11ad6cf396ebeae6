"""The qualification HIT in a real browser (Chromium): training pairs answered with feedback
after each answer, the test opening once the training is done, a submission that collect grades
into the study's qualification. Screenshots go to test-output/qualification/."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from browser_support import require_browser
from study.crowd.collect import collect
from study.crowd.publish import publish
from study.marketplace import worker_id_for
from study.studydir import Study
from test_crowd_page_browser import accepted_task_url, worker_page
from test_crowd_support import photo_dataset_study, set_config, study_service

require_browser()
pytestmark = pytest.mark.browser


@pytest.mark.parametrize("screen", ["laptop", "phone"])
def test_training_and_test_in_chromium(tmp_path, browser, screen):
    from conftest import OUTPUT_DIR

    out = OUTPUT_DIR / "qualification"
    out.mkdir(parents=True, exist_ok=True)
    root = photo_dataset_study(tmp_path, size=(256, 384))
    set_config(root, "[qualification]\nenabled = true\ntest_pairs = 4\npass_mark = 3\n")
    context = ({"viewport": {"width": 1366, "height": 768}} if screen == "laptop" else
               {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2,
                "is_mobile": True, "has_touch": True})
    with study_service(root) as (url, _market):
        study = Study.open(root)
        publish(study, "sandbox", echo=lambda _m: None)
        worker = requests.Session()
        # A new worker is offered the qualification HIT alone, so the first group is it.
        task_url = accepted_task_url(f"{url}/worker/sandbox", worker)
        aid = parse_qs(urlsplit(task_url).query)["assignmentId"][0]
        cookies = [{"name": c.name, "value": c.value, "url": url} for c in worker.cookies]
        conn = study.connect()
        lay = json.loads(conn.execute("SELECT value FROM meta WHERE key = "
                                      "'crowd.qualification.layout'").fetchone()[0])
        errors: list[str] = []
        page = worker_page(browser, cookies, errors, **context)

        page.goto(task_url.replace(aid, "ASSIGNMENT_ID_NOT_AVAILABLE"))
        assert page.locator("#preview-notice").is_visible()
        assert page.locator("input[name=training_101]").first.is_disabled()
        page.goto(task_url)
        page.wait_for_load_state("load")
        assert page.locator("#test").evaluate("e => e.classList.contains('locked')")
        page.screenshot(path=str(out / f"{screen}-1-start.png"), full_page=False)

        training = lay["training"]
        # The first pair answered wrongly, the others rightly: feedback after each.
        for k, t in enumerate(training):
            section = page.locator(f"section.training[data-pair='{t['position']}']")
            lo, hi = t["expected"]
            value = (4 if hi < 2 else 0) if k == 0 else t["answer"]
            section.locator(f"label:has(input[value='{value}'])").click()
            feedback = section.locator(".feedback")
            assert feedback.is_visible()
            text = feedback.inner_text()
            if k == 0:
                assert text.startswith("Not quite") and "looks like" in text
                assert feedback.evaluate("e => e.classList.contains('wrong')")
                section.scroll_into_view_if_needed()
                page.screenshot(path=str(out / f"{screen}-2-feedback-wrong.png"))
            else:
                assert text.startswith("Right.")
            if k == 1:
                section.scroll_into_view_if_needed()
                page.screenshot(path=str(out / f"{screen}-3-feedback-right.png"))
            if k < len(training) - 1:
                assert page.locator("#test").evaluate("e => e.classList.contains('locked')")
        assert not page.locator("#test").evaluate("e => e.classList.contains('locked')")
        assert page.locator("#submit").is_disabled()
        for t in lay["test"]:
            page.wait_for_timeout(150)
            section = page.locator(f"section.item[data-position='{t['position']}']")
            section.locator(f"label:has(input[value='{t['expected'][0]}'])").click()
        page.locator("#submit").scroll_into_view_if_needed()
        page.screenshot(path=str(out / f"{screen}-4-test-done.png"))
        assert page.locator("#submit").is_enabled()
        assert float(page.locator("input[name=seconds_1]").input_value()) > 0
        with page.expect_navigation():
            page.locator("#submit").click()
        page.context.close()
        assert errors == []

        collect(study, echo=lambda _m: None)
        row = conn.execute("SELECT * FROM qualification_assignments").fetchone()
        assert row["worker_id"] == worker_id_for("BROWSER1")
        assert (row["score"], row["passed"], row["granted"]) == (4, 1, 1)
        conn.close()
