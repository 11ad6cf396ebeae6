"""Training and qualification over real HTTP with real boto3: the qualification HIT is made once
even across crashes, a worker without the study's qualification cannot reach a rating HIT (the
marketplace refuses), collect grades the test, pays every taker once and qualifies the passers,
who then can."""

from __future__ import annotations

import json

import pytest
import requests

from study.crowd import qualify
from study.crowd.client import requester
from study.crowd.faults import InjectedFault
from study.crowd.publish import publish
from study.marketplace import worker_id_for
from study.studydir import Study
from test_crowd_support import (answers_for, copy_study, fresh_faults,  # noqa: F401
                                photo_dataset_study, set_config, study_service, tags,
                                work_one_hit)

QUIET = lambda _m: None  # noqa: E731
QUALIFY = "[qualification]\nenabled = true\ntest_pairs = 4\npass_mark = 3\nmax_workers = 10\n"


@pytest.fixture(scope="module")
def qualified_study(tmp_path_factory):
    root = photo_dataset_study(tmp_path_factory.mktemp("qual"))
    set_config(root, QUALIFY)
    return root


def layout(root) -> dict:
    conn = Study.open(root).connect()
    try:
        return json.loads(conn.execute("SELECT value FROM meta WHERE key = "
                                       "'crowd.qualification.layout'").fetchone()[0])
    finally:
        conn.close()


def qualification_answers(root, right: int):
    """Answers to the qualification HIT with the first `right` test pairs right."""
    def answer(positions, query):
        tests = {p["position"]: p for p in layout(root)["test"]}
        out = {}
        for k, p in enumerate(positions):
            lo, hi = tests[p]["expected"]
            out[f"rating_{p}"] = str(lo if k < right else (4 if hi < 2 else 0))
            out[f"seconds_{p}"] = "5"
        return out
    return answer


def qualification_hits(study):
    with requester(study, "sandbox") as api:
        return [h for h in api.pages("list_hits", "HITs")
                if h.get("RequesterAnnotation", "").endswith("-qualification")]


@pytest.mark.parametrize("step", ["publish:qualification_type:sent",
                                  "publish:qualification_type:done",
                                  "publish:qualification_hit:sent",
                                  "publish:qualification_hit:done"])
def test_qualification_published_once_across_crashes(qualified_study, tmp_path, monkeypatch,
                                                     step, fresh_faults):
    root = copy_study(qualified_study, tmp_path / "s").root
    with study_service(root):
        study = Study.open(root)
        monkeypatch.setenv("STUDY_FAULT", step)
        with pytest.raises(InjectedFault):
            publish(study, "sandbox", echo=QUIET)
        monkeypatch.delenv("STUDY_FAULT")
        publish(study, "sandbox", echo=QUIET)
        publish(study, "sandbox", echo=QUIET)
        assert len(qualification_hits(study)) == 1
        with requester(study, "sandbox") as api:
            types = [t for t in api.pages("list_qualification_types", "QualificationTypes",
                                          MustBeRequestable=False, MustBeOwnedByCaller=True)
                     if t["Name"].endswith("qualified raters")]
        assert len(types) == 1


def test_only_qualified_workers_reach_rating_hits(qualified_study, tmp_path, run_cli):
    root = copy_study(qualified_study, tmp_path / "s").root
    with study_service(root) as (url, _market):
        out = run_cli("publish", cwd=root).output
        assert "qualification" in out and "pass mark 3 of 4" in out
        study = Study.open(root)
        site = f"{url}/worker/sandbox"
        conn = study.connect()
        rating_hit = conn.execute("SELECT hit_id FROM hits").fetchone()[0]

        # Without the qualification a worker is offered the qualification HIT alone, and the
        # marketplace refuses a rating HIT's preview and accept.
        newcomer = requests.Session()
        newcomer.post(f"{site}/login", data={"worker_id": "NEW1"})
        groups = [a for t, a in tags(newcomer.get(f"{site}/").text)
                  if t == "a" and "hit-group" in a.get("class", "")]
        assert len(groups) == 1
        assert newcomer.get(f"{site}/hits/{rating_hit}").status_code == 403
        assert newcomer.post(f"{site}/hits/{rating_hit}/accept").status_code == 403

        good, bad = requests.Session(), requests.Session()
        done = work_one_hit(good, site, "GOOD1", qualification_answers(root, right=4))
        assert "section class=\"training\"" in done["page"]
        # The test's answers are not in the page; the training's are.
        test_part = done["page"].split('id="test"')[1].split("<script>")[0]
        assert "data-expected" not in test_part and "data-answer" not in test_part
        assert work_one_hit(bad, site, "BAD1", qualification_answers(root, right=1))
        out = run_cli("collect", cwd=root).output
        assert "2 new test(s) graded, 1 worker(s) qualified" in out
        rows = {r["worker_id"]: r for r in conn.execute(
            "SELECT * FROM qualification_assignments")}
        good_id, bad_id = worker_id_for("GOOD1"), worker_id_for("BAD1")
        assert rows[good_id]["score"] == 4 and rows[good_id]["passed"] == 1
        assert rows[bad_id]["score"] == 1 and rows[bad_id]["passed"] == 0
        assert all(r["approved"] for r in rows.values())

        with requester(study, "sandbox") as api:
            frozen = json.loads(conn.execute("SELECT value FROM meta WHERE key = "
                                             "'crowd.sandbox.qualification'").fetchone()[0])
            got = api.call("get_qualification_score", QualificationTypeId=frozen["type_id"],
                           WorkerId=good_id)["Qualification"]
            assert got["IntegerValue"] == 4
            for r in rows.values():
                assert api.call("get_assignment", AssignmentId=r["assignment_id"])[
                    "Assignment"]["AssignmentStatus"] == "Approved"
            hit = api.call("get_hit", HITId=rating_hit)["HIT"]
            req = [r for r in hit["QualificationRequirements"]
                   if r["QualificationTypeId"] == frozen["type_id"]]
            assert req == [{"QualificationTypeId": frozen["type_id"],
                            "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [3],
                            "RequiredToPreview": True,
                            "ActionsGuarded": "DiscoverPreviewAndAccept"}] or \
                [{k: v for k, v in r.items() if k != "RequiredToPreview"} for r in req] == [
                    {"QualificationTypeId": frozen["type_id"],
                     "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [3],
                     "ActionsGuarded": "DiscoverPreviewAndAccept"}]

        # The passer now rates; the one who failed still cannot, and the passer is not
        # offered the qualification HIT again.
        assert work_one_hit(good, site, "GOOD1", answers_for(root, "careful"))
        assert bad.get(f"{site}/hits/{rating_hit}").status_code == 403
        listing = good.get(f"{site}/").text
        assert "Training and qualification" not in listing

        again = run_cli("collect", cwd=root).output
        assert "0 new test(s) graded, 0 worker(s) qualified; 1 of 2 passed" in again
        status = run_cli("status", "--json", cwd=root).output
        assert '"taken": 2' in status and '"passed": 1' in status
        steps = [r[0] for r in conn.execute("SELECT step FROM journal")]
        assert steps.count("collect:qualification:grant:sent") == 1
        assert steps.count("collect:qualification:approve:sent") == 2
        conn.close()


def test_pass_mark_above_the_test_is_refused(qualified_study, tmp_path, run_cli):
    root = copy_study(qualified_study, tmp_path / "s").root
    set_config(root, "[qualification]\nenabled = true\ntest_pairs = 4\npass_mark = 5\n")
    out = run_cli("publish", "--dry-run", cwd=root, expect=2).output
    assert "qualification.pass_mark" in out and "nobody could pass" in out


def test_grading_counts_answers_in_range():
    lay = {"scale": {"low": 0, "high": 4, "higher_is_better": False,
                     "labels": ["a", "b", "c", "d", "e"]},
           "test": [{"position": 1, "kind": "identical", "expected": [0, 1]},
                    {"position": 2, "kind": "control", "expected": [2, 4]}]}
    xml = ("<QuestionFormAnswers xmlns='http://mechanicalturk.amazonaws.com/"
           "AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd'>"
           "<Answer><QuestionIdentifier>rating_1</QuestionIdentifier><FreeText>1</FreeText>"
           "</Answer><Answer><QuestionIdentifier>rating_2</QuestionIdentifier>"
           "<FreeText>1</FreeText></Answer></QuestionFormAnswers>")
    score, misses = qualify.grade(xml, lay)
    assert score == 1 and misses == ["pair 2 (control) expecting 2-4 was rated 1"]


@pytest.mark.parametrize("step", ["collect:qualification:graded",
                                  "collect:qualification:approve:sent",
                                  "collect:qualification:approve:done",
                                  "collect:qualification:grant:sent",
                                  "collect:qualification:grant:done"])
def test_grading_survives_a_crash_at_every_step(qualified_study, tmp_path, monkeypatch, step,
                                                fresh_faults):
    from study.crowd.collect import collect

    root = copy_study(qualified_study, tmp_path / "s").root
    with study_service(root) as (url, _market):
        study = Study.open(root)
        publish(study, "sandbox", echo=QUIET)
        assert work_one_hit(requests.Session(), f"{url}/worker/sandbox", "GOOD1",
                            qualification_answers(root, right=4))
        monkeypatch.setenv("STUDY_FAULT", step)
        with pytest.raises(InjectedFault):
            collect(study, echo=QUIET)
        monkeypatch.delenv("STUDY_FAULT")
        collect(study, echo=QUIET)
        collect(study, echo=QUIET)
        conn = study.connect()
        rows = conn.execute("SELECT * FROM qualification_assignments").fetchall()
        assert [(r["score"], r["passed"], r["approved"], r["granted"]) for r in rows] == [
            (4, 1, 1, 1)]
        with requester(study, "sandbox") as api:
            a = api.call("get_assignment", AssignmentId=rows[0]["assignment_id"])["Assignment"]
            assert a["AssignmentStatus"] == "Approved"
            frozen = json.loads(conn.execute("SELECT value FROM meta WHERE key = "
                                             "'crowd.sandbox.qualification'").fetchone()[0])
            quals = list(api.pages("list_workers_with_qualification_type", "Qualifications",
                                   QualificationTypeId=frozen["type_id"]))
            assert [(q["WorkerId"], q["IntegerValue"]) for q in quals] == [
                (worker_id_for("GOOD1"), 4)]
        conn.close()


def test_methods_without_a_reference_scale_cannot_qualify():
    from study.config import parse_settings
    from study.errors import StudyError

    for method in ("acr", "pairwise"):
        with pytest.raises(StudyError, match="qualification HIT trains both ends"):
            parse_settings({"design": {"method": method}, "qualification": {"enabled": True}},
                           "study.toml")
    parse_settings({"design": {"method": "dcr"}, "qualification": {"enabled": True}},
                   "study.toml")


@pytest.mark.parametrize("method, identical, control", [
    ("similarity-0-4", 0, 4), ("dcr", 5, 1), ("ccr", 0, -3)])
def test_training_teaches_each_method_its_own_anchors(qualified_study, tmp_path, method,
                                                      identical, control):
    root = copy_study(qualified_study, tmp_path / "s").root
    set_config(root, f'[design]\nmethod = "{method}"\nitems_per_hit = 10\n'
                     'ratings_per_item = 2\n')
    study = Study.open(root)
    conn = study.connect()
    lay = qualify.layout(study, conn)
    conn.close()
    answers = {(t["kind"], t["answer"]) for t in lay["training"]}
    assert answers == {("identical", identical), ("control", control)}
    assert all(t["expected"][0] <= t["answer"] <= t["expected"][1] for t in lay["training"])
