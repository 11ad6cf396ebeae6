"""Bonuses for agreeing with the consensus, over real HTTP with real boto3: workers close to the
others' item means get one, a worker off by levels does not, each bonus is paid once across
re-runs and a crash between the payment and its record, beside the flat bonus of the same
assignment."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from study.crowd.client import requester
from study.crowd.collect import collect
from study.crowd.faults import InjectedFault
from study.crowd.status import crowd_status
from study.marketplace import worker_id_for
from study.studydir import Study
from test_crowd_support import (fresh_faults, hit_rows, photo_dataset_study,  # noqa: F401
                                set_config, study_service, work_one_hit)

QUIET = lambda _m: None  # noqa: E731
ORDER = ["reference", "depth-blend", "scatter", "gaussian", "input"]


def answers(root, shift: int):
    def answer(positions, query):
        rows = hit_rows(root, query["hitId"])
        out = {}
        for p in positions:
            r = rows[p]
            score = {"gold_reference": 0, "gold_control": 4}.get(
                r["kind"], min(4, ORDER.index(r["method"]) + shift))
            out[f"rating_{p}"] = str(score)
            out[f"seconds_{p}"] = "6"
        return out
    return answer


@pytest.mark.usefixtures("fresh_faults")
def test_agreement_bonus_paid_once(tmp_path, run_cli, monkeypatch):
    root = photo_dataset_study(tmp_path, ratings_per_item=3)
    set_config(root, "[quality]\nbonus_usd = 0.10\nbonus_reason = \"Thanks\"\n"
                     "agreement_bonus_usd = 0.25\nagreement_max_deviation = 1.0\n"
                     "agreement_min_others = 2\n")
    with study_service(root) as (url, _market):
        run_cli("publish", cwd=root)
        site = f"{url}/worker/sandbox"
        for name, shift in (("GOOD0", 0), ("GOOD1", 0), ("SHIFT", 2)):
            s = requests.Session()
            while work_one_hit(s, site, name, answers(root, shift)):
                pass
        study = Study.open(root)
        monkeypatch.setenv("STUDY_FAULT", "collect:agreement_bonus:done")
        with pytest.raises(InjectedFault):
            collect(study, echo=QUIET)
        monkeypatch.delenv("STUDY_FAULT")
        out = run_cli("collect", cwd=root).output
        assert "agreement bonuses" in out
        run_cli("collect", cwd=root)
        conn = study.connect()
        decided = dict(conn.execute("SELECT decision, COUNT(*) FROM assignments GROUP BY 1"))
        assert decided == {"approve": 6}
        paid = conn.execute("SELECT worker_id, state, reason, unique_token FROM payments WHERE "
                            "kind = 'agreement_bonus'").fetchall()
        assert sorted(r["worker_id"] for r in paid) == sorted(
            [worker_id_for("GOOD0")] * 2 + [worker_id_for("GOOD1")] * 2)
        assert all(r["state"] == "done" and r["reason"].startswith("Agreement bonus: ")
                   for r in paid)
        judged = conn.execute("SELECT worker_id, quality_json FROM assignments").fetchall()
        assert all('"agreement"' in r["quality_json"] for r in judged)
        with requester(study, "sandbox") as api:
            for a in conn.execute("SELECT assignment_id, worker_id FROM assignments"):
                bonuses = list(api.pages("list_bonus_payments", "BonusPayments",
                                         AssignmentId=a["assignment_id"]))
                kinds = sorted(b["Reason"].split(":")[0] for b in bonuses)
                if a["worker_id"] == worker_id_for("SHIFT"):
                    assert kinds == ["Thanks"]
                else:
                    assert kinds == ["Agreement bonus", "Thanks"]
        # The money the status reports includes the agreement bonuses and their fees.
        spent = Decimal(crowd_status(study)["collect"]["spent_usd"])
        # (reward 0.50 + fee 0.10, flat bonus 0.10 + fee 0.02; agreement 0.25 + fee 0.05)
        assert spent == 6 * (Decimal("0.60") + Decimal("0.12")) + 4 * Decimal("0.30")
        conn.close()
