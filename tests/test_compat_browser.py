"""HIT formats MTurk accepted, completed by a worker in Chromium and collected with boto3: a HIT
made from a layout holding MTurk's stock image-classification template (crowd-form), a classic
HTMLQuestion using MTurk's helper script and externalSubmit URL, and a QuestionForm HIT whose
qualification test the worker takes first (graded by its AnswerKey)."""

from __future__ import annotations

import json
import re

import pytest

from browser_support import require_browser

sync_api = require_browser()

from click.testing import CliRunner  # noqa: E402

from study.cli import cli as study_cli  # noqa: E402
from study.marketplace.testing import running_marketplace  # noqa: E402
from tests.test_compat_operations import ANSWER_KEY, QF_NS, TEST  # noqa: E402
from tests.test_marketplace_support import HTML_NS  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
         "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

# MTurk's stock "Image Classification" template (the requester website's), as requesters
# pasted it: ${image_url} is filled per HIT.
IMAGE_CLASSIFICATION = """<!-- You must include this JavaScript file -->
<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<!-- You must include crowd-form so that your task submits answers to MTurk -->
<crowd-form answer-format="flatten-objects">
    <crowd-image-classifier
        src="${image_url}"
        categories="['Yes', 'No', 'Cannot Determine']"
        header="Does this image show a bird?"
        name="category">
        <short-instructions>Read the task carefully and inspect the image.</short-instructions>
        <full-instructions header="Classification Instructions">
            <p>Choose the category that fits best.</p>
        </full-instructions>
    </crowd-image-classifier>
</crowd-form>
"""

# A rating page with crowd elements in the default answer format (nested objects).
CROWD_RATING = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <img src="${image_url}" alt="photo">
  <p>How good is this photo?</p>
  <crowd-radio-group>
    <crowd-radio-button name="good" value="good">Good</crowd-radio-button>
    <crowd-radio-button name="bad" value="bad">Bad</crowd-radio-button>
  </crowd-radio-group>
  <crowd-slider name="score" min="1" max="5" step="1"></crowd-slider>
  <crowd-input name="comment" label="Anything else?"></crowd-input>
</crowd-form>
"""

CLASSIC = """<!DOCTYPE html><html><head>
<script type='text/javascript' src='https://s3.amazonaws.com/mturk-public/externalHIT_v1.js'></script>
</head><body>
<form name='mturk_form' method='post' id='mturk_form' action='https://www.mturk.com/mturk/externalSubmit'>
<input type='hidden' value='' name='assignmentId' id='assignmentId'/>
<p>How sharp is it? <label><input type='radio' name='sharpness' value='4'> 4</label>
<label><input type='radio' name='sharpness' value='5'> 5</label></p>
<p><input type='submit' id='submitButton' value='Submit' /></p></form>
<script language='Javascript'>turkSetAssignmentID();</script>
</body></html>"""

FORM_HIT = (f'<QuestionForm xmlns="{QF_NS}"><Overview><Title>Describe the photo</Title>'
            f'</Overview><Question><QuestionIdentifier>colour</QuestionIdentifier><IsRequired>'
            f'true</IsRequired><QuestionContent><Text>Main colour?</Text></QuestionContent>'
            f'<AnswerSpecification><SelectionAnswer><StyleSuggestion>radiobutton'
            f'</StyleSuggestion><Selections><Selection><SelectionIdentifier>red'
            f'</SelectionIdentifier><Text>Red</Text></Selection><Selection><SelectionIdentifier>'
            f'blue</SelectionIdentifier><Text>Blue</Text></Selection></Selections>'
            f'</SelectionAnswer></AnswerSpecification></Question><Question><QuestionIdentifier>'
            f'note</QuestionIdentifier><QuestionContent><Text>Anything else?</Text>'
            f'</QuestionContent><AnswerSpecification><FreeTextAnswer/></AnswerSpecification>'
            f'</Question></QuestionForm>')


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = ctx.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    try:
        yield pg
    finally:
        ctx.close()


def sign_in(page, mk, name: str) -> None:
    page.goto(mk.base_url + "/worker/sandbox/login")
    page.fill("input[name=worker_id]", name)
    page.click("#login")


def accept(page, mk, hit_id: str):
    page.goto(mk.base_url + f"/worker/sandbox/hits/{hit_id}")
    page.click("#accept")
    page.wait_for_selector("#assignment-id")
    return page.inner_text("#assignment-id"), page.frame_locator("#question-frame")


def submitted(page) -> None:
    # The task reports its submission to the work page, which shows its own confirmation.
    page.wait_for_url("**/assignments/*/submitted", timeout=15000)
    assert "submitted" in page.inner_text("#confirmed").lower()


def answers(client, aid: str) -> dict[str, str]:
    xml = client.get_assignment(AssignmentId=aid)["Assignment"]["Answer"]
    return dict(re.findall(r"<QuestionIdentifier>([^<]+)</QuestionIdentifier><FreeText>([^<]*)"
                           r"</FreeText>", xml))


def test_stock_templates_and_a_layout_hit_are_completed_in_chromium(tmp_path, page):
    with running_marketplace(tmp_path) as mk:
        c = mk.client()
        template = tmp_path / "image-classification.html"
        template.write_text(IMAGE_CLASSIFICATION)
        result = CliRunner().invoke(study_cli, ["marketplace", "layout", "add", "birds",
                                                str(template), "--db", str(mk.db_path)])
        assert result.exit_code == 0, result.output
        layout_id = result.output.strip().splitlines()[-1]
        crowd = c.create_hit(Title="Birds", Description="Is it a bird?", Reward="0.05",
                             LifetimeInSeconds=3600, AssignmentDurationInSeconds=600,
                             HITLayoutId=layout_id,
                             HITLayoutParameters=[{"Name": "image_url", "Value": PIXEL}])["HIT"]
        assert PIXEL in crowd["Question"]
        classic = c.create_hit(
            Title="Sharpness", Description="Rate it", Reward="0.05", LifetimeInSeconds=3600,
            AssignmentDurationInSeconds=600,
            Question=f'<HTMLQuestion xmlns="{HTML_NS}"><HTMLContent><![CDATA[{CLASSIC}]]>'
                     f'</HTMLContent><FrameHeight>500</FrameHeight></HTMLQuestion>')["HIT"]

        sign_in(page, mk, "browser-worker")
        aid, frame = accept(page, mk, crowd["HITId"])
        frame.locator("input[type=radio][value='Yes']").check()
        frame.locator("#submitButton").click()
        submitted(page)
        task = json.loads(answers(c, aid)["taskAnswers"])
        assert task == [{"category.label": "Yes"}]

        rating = c.create_hit(
            Title="Rate", Description="Rate it", Reward="0.05", LifetimeInSeconds=3600,
            AssignmentDurationInSeconds=600,
            Question=f'<HTMLQuestion xmlns="{HTML_NS}"><HTMLContent><![CDATA['
                     f'{CROWD_RATING.replace("${image_url}", PIXEL)}]]></HTMLContent>'
                     f'<FrameHeight>600</FrameHeight></HTMLQuestion>')["HIT"]
        aid, frame = accept(page, mk, rating["HITId"])
        frame.locator("crowd-radio-button[name=good] input").check()
        frame.locator("crowd-slider input").evaluate("i => { i.value = '4'; }")
        frame.locator("crowd-input input").fill("nice light")
        frame.locator("#submitButton").click()
        submitted(page)
        assert json.loads(answers(c, aid)["taskAnswers"]) == [
            {"good": {"good": True}, "bad": {"bad": False}, "score": 4, "comment": "nice light"}]

        aid, frame = accept(page, mk, classic["HITId"])
        frame.locator("input[name=sharpness][value='5']").check()
        frame.locator("#submitButton").click()
        submitted(page)
        assert answers(c, aid) == {"sharpness": "5"}
        assert page.errors == []


def test_question_form_hit_behind_a_qualification_test_in_chromium(tmp_path, page):
    with running_marketplace(tmp_path) as mk:
        c = mk.client()
        qid = c.create_qualification_type(
            Name="colour test", Description="two questions", QualificationTypeStatus="Active",
            Test=TEST, AnswerKey=ANSWER_KEY, TestDurationInSeconds=600
        )["QualificationType"]["QualificationTypeId"]
        hit = c.create_hit(Title="Colours", Description="Name the colour", Reward="0.05",
                           LifetimeInSeconds=3600, AssignmentDurationInSeconds=600,
                           Question=FORM_HIT, QualificationRequirements=[{
                               "QualificationTypeId": qid, "Comparator": "GreaterThanOrEqualTo",
                               "IntegerValues": [100]}])["HIT"]
        sign_in(page, mk, "qualified-worker")
        page.goto(mk.base_url + "/worker/sandbox/qualifications")
        page.click(".take-test")
        page.check("input[name=q1][value=a]")
        page.check("input[name=q2][value=b]")
        page.click("#submitButton")
        assert "granted" in page.inner_text("h1").lower()
        assert c.get_qualification_score(QualificationTypeId=qid, WorkerId=c.list_workers_with_qualification_type(
            QualificationTypeId=qid)["Qualifications"][0]["WorkerId"])["Qualification"][
            "IntegerValue"] == 100

        aid, frame = accept(page, mk, hit["HITId"])
        frame.locator("input[name=colour][value=blue]").check()
        frame.locator("textarea[name=note]").fill("a clear sky")
        frame.locator("#submitButton").click()
        submitted(page)
        xml = c.get_assignment(AssignmentId=aid)["Assignment"]["Answer"]
        assert "<QuestionIdentifier>colour</QuestionIdentifier><SelectionIdentifier>blue" \
               "</SelectionIdentifier>" in xml
        assert "<QuestionIdentifier>note</QuestionIdentifier><FreeText>a clear sky</FreeText>" \
            in xml
        assert page.errors == []
