"""One HIT of each ITU-T rating method (ACR, DCR, CCR) completed in a real browser (Chromium):
the page shows what the method shows, the keys rate on the method's scale, and collect stores
each answer in the study's orientation. Screenshots go to test-output/methods/."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from browser_support import require_browser
from conftest import OUTPUT_DIR
from study.crowd.collect import collect
from study.crowd.publish import publish
from study.studydir import Study
from test_crowd_page_browser import accepted_task
from test_crowd_support import photo_dataset_study, set_config, study_service

require_browser()
pytestmark = pytest.mark.browser

# The page's labels of the two panes (left, right); ACR has one pane.
PANES = {"acr": ["photo"], "dcr": ["original", "processed"],
         "ccr": ["first photo", "second photo"]}


def key_and_value(method: str, position: int) -> tuple[str, int]:
    """The key pressed on an item, and the level it means on the page."""
    if method == "ccr":
        k = 1 + position % 7
        return str(k), k - 4          # keys 1..7 are -3..+3
    k = 1 + position % 5
    return str(k), k


@pytest.mark.parametrize("method", ["acr", "dcr", "ccr"])
def test_one_hit_of_each_method_in_chromium(tmp_path, browser, method):
    out = OUTPUT_DIR / "methods"
    out.mkdir(parents=True, exist_ok=True)
    root = photo_dataset_study(tmp_path, size=(512, 768))
    set_config(root, f'[design]\nmethod = "{method}"\nitems_per_hit = 10\nratings_per_item = 2\n')
    with study_service(root) as (url, _market):
        study = Study.open(root)
        publish(study, "sandbox", echo=lambda _m: None)
        task_url, _preview, cookies = accepted_task(url)
        errors: list[str] = []
        ctx = browser.new_context(viewport={"width": 1366, "height": 768})
        ctx.add_cookies(cookies)
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(task_url)
        page.wait_for_function("[...document.querySelectorAll('section.item.current img')]"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        first = page.locator("section.item.current")
        assert [first.locator(".label").nth(i).inner_text()
                for i in range(first.locator(".label").count())] == PANES[method]
        assert first.locator(".view").count() == len(PANES[method])
        page.locator("#help summary").click()
        page.screenshot(path=str(out / f"{method}-1-help.png"))
        page.locator("#help summary").click()
        if method == "acr":
            assert first.locator("button.hold").count() == 0
            page.keyboard.press(" ")                    # nothing to flip to: no error
            page.keyboard.press("f")
            assert first.locator(".label").inner_text() == "photo"
        else:
            page.keyboard.down(" ")
            held = first.locator(".right .label").inner_text()
            assert held == f"{PANES[method][0]} (flipped)"
            page.screenshot(path=str(out / f"{method}-2-held.png"))
            page.keyboard.up(" ")
            assert first.locator(".right .label").inner_text() == PANES[method][1]
        page.screenshot(path=str(out / f"{method}-3-first-item.png"))
        n = page.locator("section.item").count()
        positions = [int(page.locator("section.item").nth(i).get_attribute("data-position"))
                     for i in range(n)]
        for k, pos in enumerate(positions):
            item = page.locator(f"section.item[data-position='{pos}']")
            assert "current" in item.get_attribute("class")
            page.wait_for_timeout(250)
            key, value = key_and_value(method, pos)
            page.keyboard.press(key)
            assert item.locator("input:checked").get_attribute("value") == str(value)
            if k == 0:
                page.screenshot(path=str(out / f"{method}-4-rated.png"))
            page.wait_for_timeout(450)
        assert page.locator("#progress-text").inner_text() == f"{n} / {n} rated"
        with page.expect_navigation():
            page.keyboard.press("Enter")
        ctx.close()
        assert errors == []
        aid = parse_qs(urlsplit(task_url).query)["assignmentId"][0]
        collect(study, echo=lambda _m: None)
        conn = study.connect()
        rows = conn.execute(
            "SELECT r.position, r.score, hi.swapped FROM ratings r "
            "JOIN assignments a USING (assignment_id) JOIN hits h ON h.hit_id = a.hit_id "
            "JOIN hit_items hi ON hi.hit_index = h.hit_index AND hi.position = r.position "
            "WHERE a.assignment_id = ? ORDER BY r.position", (aid,)).fetchall()
        assert [r["position"] for r in rows] == sorted(positions)
        for r in rows:
            value = key_and_value(method, r["position"])[1]
            # CCR asked "the second against the first": where the output came first the
            # stored score is the answer mirrored.
            assert r["score"] == (-value if r["swapped"] else value)
        if method == "ccr":
            assert {r["swapped"] for r in rows} == {0, 1}
