"""One pairwise HIT completed in a real browser (Chromium): the original and outputs A and B
move together at 1:1, Space shows the original in place of both, the A and B keys choose, and
collect stores each choice in the study's orientation (a swapped position mirrored).
Screenshots go to test-output/pairwise/."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from browser_support import CHROMIUM, LAUNCH_ARGS, require_browser
from study.crowd.collect import collect
from study.crowd.publish import publish
from study.studydir import Study
from test_crowd_page_browser import accepted_task, worker_page
from test_crowd_support import photo_dataset_study, set_config, study_service

pytestmark = pytest.mark.browser
require_browser()


@pytest.mark.parametrize("screen", [{"width": 1600, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_one_pairwise_hit_in_chromium(tmp_path, screen):
    from playwright.sync_api import sync_playwright

    from conftest import OUTPUT_DIR

    out = OUTPUT_DIR / "pairwise"
    out.mkdir(parents=True, exist_ok=True)
    name = "desktop" if screen["width"] > 1000 else "phone"
    root = photo_dataset_study(tmp_path, size=(512, 768))
    set_config(root, '[design]\nmethod = "pairwise"\nitems_per_hit = 10\nratings_per_item = 1\n')
    with study_service(root) as (url, _market):
        study = Study.open(root)
        publish(study, "sandbox", echo=lambda _m: None)
        task_url, preview_url, cookies = accepted_task(url)
        aid = parse_qs(urlsplit(task_url).query)["assignmentId"][0]
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            page = worker_page(browser, cookies, errors, viewport=screen)
            page.goto(preview_url)
            assert page.locator("#preview-notice").is_visible()
            assert page.locator("input[name=rating_1]").first.is_disabled()
            page.screenshot(path=str(out / f"{name}-1-preview.png"))

            page.goto(task_url)
            page.wait_for_function("[...document.querySelectorAll('section.item.current img')]"
                                   ".every(i => i.complete && i.naturalWidth > 0)")
            first = page.locator("section.item.current")
            assert first.locator(".zoom").inner_text() == "1:1"
            assert first.locator(".view").count() == 3
            page.screenshot(path=str(out / f"{name}-2-native.png"))
            # Zoom and pan move the original, A and B together.
            page.keyboard.press("+")
            box = first.locator(".view.output").first.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 2 - 40, box["y"] + box["height"] / 2 - 30)
            page.mouse.up()
            transforms = [first.locator(sel).evaluate("i => i.style.transform")
                          for sel in ("img.reference", "img.result-a", "img.result-b")]
            assert len(set(transforms)) == 1 and "scale(2)" in transforms[0], transforms
            # Holding Space shows the original in place of A and B.
            page.keyboard.down(" ")
            assert not first.locator("img.result-a").is_visible()
            assert not first.locator("img.result-b").is_visible()
            labels = first.locator(".view.output .label").all_inner_texts()
            page.screenshot(path=str(out / f"{name}-3-held.png"))
            page.keyboard.up(" ")
            assert labels == ["original (flipped)"] * 2
            assert first.locator("img.result-a").is_visible()
            page.keyboard.press("n")

            n = page.locator("section.item").count()
            positions, keys = [], []
            for k in range(n):
                item = page.locator("section.item.current")
                item.wait_for()
                positions.append(int(item.get_attribute("data-position")))
                keys.append("a" if k % 3 else "b")
                page.keyboard.press(keys[-1])
                if k == 0:
                    page.screenshot(path=str(out / f"{name}-4-chosen.png"))
                page.wait_for_timeout(450)
            assert page.locator("#submit").is_enabled()
            view = page.locator(f"input[name=view_{positions[0]}]").input_value()
            # Space down and up: the original shown, then the outputs again.
            assert '"z":2' in view and '"f":2' in view
            with page.expect_navigation():
                page.locator("#submit").click()
            browser.close()
        assert errors == []
        collect(study, echo=lambda _m: None)
        conn = study.connect()
        try:
            rows = {r["position"]: r for r in conn.execute(
                "SELECT r.position, r.score, hi.swapped FROM ratings r JOIN assignments a "
                "USING (assignment_id) JOIN hit_items hi ON hi.hit_index = a.hit_index AND "
                "hi.position = r.position WHERE r.assignment_id = ?", (aid,))}
        finally:
            conn.close()
        assert sorted(rows) == sorted(positions)
        for pos, key in zip(positions, keys):
            chose_a = key == "a"
            # A is the item's method unless the position is swapped.
            assert rows[pos]["score"] == int(chose_a != bool(rows[pos]["swapped"])), pos
