"""A short property-based fuzz of the Requester API over real HTTP: operations driven with
inputs drawn from botocore's own model of each operation plus hostile values (huge, malformed,
out of range, wrongly typed, another's ids). Whatever comes in: never a 5xx, refusals in AWS's
error shape, and a refused request leaves the database exactly as it was."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3

import botocore.session
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from study.marketplace.testing import ManualClock, running_marketplace
from test_marketplace_support import HTML_Q, assert_aws_refusal, send, signed, submitted_assignment

MODEL = botocore.session.get_session().get_service_model("mturk")
OPERATIONS = ["CreateHIT", "CreateHITWithHITType", "GetHIT", "ListHITs", "UpdateExpirationForHIT",
              "DeleteHIT", "ListAssignmentsForHIT", "ApproveAssignment", "RejectAssignment",
              "SendBonus", "ListBonusPayments", "CreateAdditionalAssignmentsForHIT",
              "CreateQualificationType", "AssociateQualificationWithWorker",
              "ListQualificationTypes", "CreateWorkerBlock", "ListWorkerBlocks",
              "NotifyWorkers", "GetAccountBalance", "ListHITsForQualificationType",
              "ListQualificationRequests", "AcceptQualificationRequest",
              "RejectQualificationRequest", "ListReviewPolicyResultsForHIT", "GetFileUploadURL",
              "UpdateNotificationSettings"]
HOSTILE_TEXT = st.sampled_from(["", " ", "\x00", "\ud800", "<!ENTITY x>", "${jndi:x}",
                                "'; DROP TABLE hits; --", "\u202e" * 50, "é" * 70_000,
                                "x" * 300, "NaN", "-1", "1e999", "0.001", "99999999.99"])
HOSTILE_NUMBER = st.sampled_from([-1, 0, 1, 2 ** 31, 2 ** 63, 2 ** 64, -2 ** 63, 10 ** 30])
# Examples per operation: a short run in the suite; benchmarks/bench_fuzz.py runs a long one.
EXAMPLES = int(os.environ.get("STUDY_FUZZ_EXAMPLES", "25"))
JUNK = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.text(max_size=5), inner, max_size=3), max_leaves=8)


def value_for(shape, ids: dict, depth: int = 0):
    """A strategy for one member of the model: usually well-typed, sometimes hostile."""
    name, kind = shape.name, shape.type_name
    if kind == "structure":
        if depth >= 3:
            return st.just({})
        members = {k: value_for(s, ids, depth + 1) for k, s in shape.members.items()}
        required = {k: v for k, v in members.items() if k in shape.required_members}
        optional = {k: v for k, v in members.items() if k not in required}
        whole = st.fixed_dictionaries(required, optional=optional)
        return whole | JUNK if depth else whole
    if kind == "list":
        return st.lists(value_for(shape.member, ids, depth + 1), max_size=3)
    if kind in ("integer", "long"):
        return st.integers(1, 100) | st.integers(-5, 10 ** 6) | HOSTILE_NUMBER
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10, 2 ** 40)
    if kind == "string":
        good = st.sampled_from(shape.enum) if shape.enum else st.text(max_size=30)
        known = st.sampled_from(ids.get(name, ["A1"]))
        if name == "CurrencyAmount":
            good = st.sampled_from(["0.01", "0.50", "1", "100000.00"])
        return good | known | HOSTILE_TEXT
    return JUNK


def snapshot(db) -> str:
    """A digest of every row of every table."""
    conn = sqlite3.connect(str(db))
    try:
        h = hashlib.sha256()
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                     "ORDER BY name"):
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2"):
                h.update(repr(row).encode())
        return h.hexdigest()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with running_marketplace(tmp_path_factory.mktemp("fuzz"), clock=ManualClock()) as mk:
        c = mk.client()
        hit, aid, w = submitted_assignment(mk, c, "fuzz-worker")
        qt = c.create_qualification_type(Name="fuzz", Description="d",
                                         QualificationTypeStatus="Active")
        ids = {"EntityId": [hit["HITId"], hit["HITTypeId"], aid, w.worker_id,
                            qt["QualificationType"]["QualificationTypeId"]],
               "CustomerId": [w.worker_id, "AUNKNOWN1"]}
        yield mk, ids


@pytest.mark.parametrize("operation", OPERATIONS)
def test_no_input_gives_a_5xx_or_changes_anything_when_refused(world, operation):
    mk, ids = world
    op = MODEL.operation_model(operation)
    params = value_for(op.input_shape, ids) if op.input_shape is not None else st.just({})
    if operation in ("CreateHIT", "CreateHITWithHITType"):
        params = params.map(lambda p: {**p, "Question": p.get("Question", HTML_Q)}
                            if isinstance(p, dict) else p)

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(params)
    def check(p):
        try:
            body = json.dumps(p)
        except (ValueError, TypeError):
            return
        before = snapshot(mk.db_path)
        r = send(signed(mk.endpoint("sandbox") + "/", operation, {}, mk.key_id, mk.secret,
                        raw=body.encode("utf-8", "surrogatepass")))
        assert r.status_code < 500, (operation, p, r.text[:300])
        if r.status_code != 200:
            assert_aws_refusal(r)
            assert snapshot(mk.db_path) == before, (operation, p, r.text[:300])

    check()
