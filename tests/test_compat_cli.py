"""The AWS CLI as a second MTurk client (`aws mturk ... --endpoint-url`): a requester's whole
workflow against the real marketplace server, with the CLI's paging options (--max-items,
--starting-token, --page-size) and its table and text output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from study.marketplace.testing import WorkerClient, running_marketplace
from tests.test_marketplace_support import HTML_Q

pytestmark = pytest.mark.slow
pytest.importorskip("awscli", reason="the AWS CLI (awscli, in the test extra) is not installed")


class Cli:
    def __init__(self, mk, tmp_path):
        self.endpoint = mk.endpoint("sandbox")
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID=mk.key_id,
                        AWS_SECRET_ACCESS_KEY=mk.secret, AWS_DEFAULT_REGION="us-east-1",
                        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
                        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"),
                        AWS_PAGER="")
        self.env.pop("AWS_PROFILE", None)

    def run(self, *args: str, output: str = "json", ok: bool = True):
        proc = subprocess.run(
            [sys.executable, "-m", "awscli", "mturk", *args, "--endpoint-url", self.endpoint,
             "--output", output], env=self.env, capture_output=True, text=True, timeout=120)
        if ok:
            assert proc.returncode == 0, proc.stderr
        if output == "json" and ok and proc.stdout.strip():
            return json.loads(proc.stdout)
        return proc


def test_a_requester_workflow_through_the_aws_cli(tmp_path):
    with running_marketplace(tmp_path) as mk:
        aws = Cli(mk, tmp_path)
        assert aws.run("get-account-balance")["AvailableBalance"] == "10000.00"
        qid = aws.run("create-qualification-type", "--name", "cli qual", "--description", "d",
                      "--qualification-type-status", "Active"
                      )["QualificationType"]["QualificationTypeId"]
        type_id = aws.run("create-hit-type", "--title", "Rate photos", "--description",
                          "Compare two photos", "--reward", "0.25",
                          "--assignment-duration-in-seconds", "600",
                          "--qualification-requirements",
                          json.dumps([{"QualificationTypeId": qid,
                                       "Comparator": "DoesNotExist"}]))["HITTypeId"]
        question = tmp_path / "question.xml"
        question.write_text(HTML_Q)
        hits = [aws.run("create-hit-with-hit-type", "--hit-type-id", type_id,
                        "--max-assignments", "2", "--lifetime-in-seconds", "3600",
                        "--question", f"file://{question}")["HIT"]["HITId"] for _ in range(5)]

        # --max-items: the CLI's own NextToken, then --starting-token for the rest.
        first = aws.run("list-hits", "--max-items", "2", "--page-size", "2")
        assert len(first["HITs"]) == 2 and first["NextToken"]
        rest = aws.run("list-hits", "--starting-token", first["NextToken"], "--page-size", "2")
        assert "NextToken" not in rest
        # --page-size alone: the CLI walks every page, ending on MTurk's empty last page.
        every = aws.run("list-hits", "--page-size", "2")
        assert sorted(h["HITId"] for h in every["HITs"]) == sorted(hits)
        assert [h["HITId"] for h in first["HITs"] + rest["HITs"]] == \
            [h["HITId"] for h in every["HITs"]]

        workers = []
        for name in ("cli-a", "cli-b"):
            w = WorkerClient(mk.base_url)
            w.login(name)
            aid = w.accept(hits[0])
            assert w.submit(aid, {"rating": "4"}).status_code == 200
            workers.append((w.worker_id, aid))
        table = aws.run("list-assignments-for-hit", "--hit-id", hits[0], output="table").stdout
        assert "ListAssignmentsForHIT" in table and all(aid in table for _, aid in workers)
        assert "+--" in table and "|" in table

        (wa, aa), (wb, ab) = workers
        aws.run("approve-assignment", "--assignment-id", aa, "--requester-feedback", "thanks")
        aws.run("reject-assignment", "--assignment-id", ab, "--requester-feedback", "")
        status = aws.run("get-assignment", "--assignment-id", ab)["Assignment"]
        assert status["AssignmentStatus"] == "Rejected"
        aws.run("send-bonus", "--worker-id", wa, "--assignment-id", aa, "--bonus-amount",
                "0.10", "--reason", "good", "--unique-request-token", "cli-bonus")
        again = aws.run("send-bonus", "--worker-id", wa, "--assignment-id", aa,
                        "--bonus-amount", "0.10", "--reason", "good",
                        "--unique-request-token", "cli-bonus", ok=False)
        assert again.returncode != 0 and "RequestError" in again.stderr
        assert "has already been processed" in again.stderr
        bonuses = aws.run("list-bonus-payments", "--assignment-id", aa)
        assert [b["BonusAmount"] for b in bonuses["BonusPayments"]] == ["0.10"]

        aws.run("associate-qualification-with-worker", "--qualification-type-id", qid,
                "--worker-id", wb, "--integer-value", "3")
        text = aws.run("list-workers-with-qualification-type", "--qualification-type-id", qid,
                       output="text").stdout
        assert wb in text and "QUALIFICATIONS" in text
        aws.run("create-worker-block", "--worker-id", wb, "--reason", "spam")
        assert aws.run("list-worker-blocks")["WorkerBlocks"] == [{"WorkerId": wb,
                                                                   "Reason": "spam"}]

        aws.run("update-expiration-for-hit", "--hit-id", hits[1], "--expire-at", "0")
        reviewable = aws.run("list-reviewable-hits", "--hit-type-id", type_id)
        assert hits[1] in {h["HITId"] for h in reviewable["HITs"]}
        aws.run("delete-hit", "--hit-id", hits[1])
        gone = aws.run("get-hit", "--hit-id", "3NOSUCHHIT", ok=False)
        assert gone.returncode != 0
        assert "RequestError" in gone.stderr and "Hit 3NOSUCHHIT does not exist" in gone.stderr
        aws.run("delete-qualification-type", "--qualification-type-id", qid)
