"""Defensive answer parsing and the quality policy."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from study.config import default_settings
from study.crowd.answers import parse_answers
from study.crowd.quality import Policy, Rated, assess, decide, pearson, should_block

NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/" \
     "QuestionFormAnswers.xsd"


def xml(fields) -> str:
    from xml.sax.saxutils import escape
    body = "".join(f"<Answer><QuestionIdentifier>{escape(k)}</QuestionIdentifier>"
                   f"<FreeText>{escape(v)}</FreeText></Answer>" for k, v in fields)
    return f'<?xml version="1.0" encoding="UTF-8"?><QuestionFormAnswers xmlns="{NS}">' \
           f"{body}</QuestionFormAnswers>"

SCALE = default_settings().scale.scale()


def test_well_formed_answer():
    a = parse_answers(xml([("rating_1", "0"), ("seconds_1", "3.5"), ("rating_2", "4"),
                           ("seconds_2", "7"), ("comments", "fine")]), [1, 2], SCALE)
    assert [(i.score, i.seconds, i.valid) for i in a.items.values()] == [(0, 3.5, True),
                                                                         (4, 7.0, True)]
    assert a.comments == "fine" and a.problems == []


def test_each_kind_of_bad_field_is_invalid_with_a_reason():
    a = parse_answers(xml([("rating_1", "5"), ("rating_2", "two"), ("rating_3", "1"),
                           ("rating_3", "2"), ("rating_4", " 3 "), ("seconds_4", "nan"),
                           ("rating_9", "1"), ("<script>", "x"), ("rating_6", "2.0")]),
                      [1, 2, 3, 4, 5, 6], SCALE)
    it = a.items
    assert not it[1].valid and "outside" in it[1].reason
    assert not it[2].valid and "not a whole number" in it[2].reason
    assert not it[3].valid and "2 times" in it[3].reason
    assert it[4].valid and it[4].score == 3 and it[4].seconds is None
    assert not it[5].valid and "missing" in it[5].reason
    assert not it[6].valid
    assert any("rating_9" in p for p in a.problems)
    assert any("<script>" in p for p in a.problems)


def test_unreadable_answers_never_raise():
    for bad in (None, "", "   ", "<nope", "<a/>", "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY "
                "a 'aaaa'>]><QuestionFormAnswers>&a;</QuestionFormAnswers>",
                b"\xff\xfe\x00garbage", "x" * (2 << 20)):
        a = parse_answers(bad, [1, 2], SCALE)
        assert all(not i.valid and i.reason for i in a.items.values())
        assert a.problems


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12)), max_size=12))
def test_any_fields_parse_without_crashing(fields):
    a = parse_answers(xml(fields), [1, 2, 3], SCALE)
    assert set(a.items) == {1, 2, 3}
    for i in a.items.values():
        assert i.valid == (i.score is not None and 0 <= i.score <= 4)
        assert i.valid or i.reason


def test_bytes_fuzz_never_raise():
    import random
    rng = random.Random(1)
    base = xml([("rating_1", "2"), ("seconds_1", "4")]).encode()
    for _ in range(300):
        b = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        parse_answers(bytes(b), [1], SCALE)


def _rated(scores, seconds=5.0, gold=()):
    out = [Rated(i, s, seconds, True) for i, s in enumerate(scores)]
    for pos, (score, lo, hi) in gold:
        out.append(Rated(1000 + pos, score, seconds, True, (lo, hi)))
    return out


GOOD_GOLD = ((1, (0, 0, 1)), (2, (4, 3, 4)))
BAD_GOLD = ((1, (4, 0, 1)), (2, (0, 3, 4)))


def test_decisions():
    policy = Policy()
    consensus = {0: 0.5, 1: 1.5, 2: 2.5, 3: 3.5}
    careful = assess(_rated([0, 1, 3, 4], gold=GOOD_GOLD), consensus)
    assert decide(careful, policy) == ("approve", "")
    spammer = assess(_rated([4, 0, 1, 3], seconds=0.5, gold=BAD_GOLD), consensus)
    decision, reason = decide(spammer, policy)
    assert decision == "reject" and "check pairs" in reason
    straight = assess(_rated([2, 2, 2, 2], gold=((1, (1, 0, 1)), (2, (3, 3, 4)))), consensus)
    d, why = decide(straight, policy)
    assert d == "exclude" and "straight-lining" in why
    fast = assess(_rated([0, 1, 3, 4], seconds=0.3, gold=GOOD_GOLD), consensus)
    assert decide(fast, policy)[0] == "exclude"
    contrary = assess(_rated([4, 3, 1, 0], gold=GOOD_GOLD), consensus)
    assert contrary.consensus_corr < 0 and decide(contrary, policy)[0] == "exclude"
    one_gold_wrong = assess(_rated([0, 1, 3, 4], gold=((1, (0, 0, 1)), (2, (0, 3, 4)))),
                            consensus)
    assert decide(one_gold_wrong, policy)[0] == "approve"  # honest raters miss one now and then
    assert decide(one_gold_wrong, Policy(gold_min_accuracy=0.75))[0] == "exclude"
    empty = assess([Rated(1, None, None, False)], consensus)
    d, why = decide(empty, policy, ["answer is not well-formed XML"])
    assert d == "reject" and "well-formed" in why


def test_right_gold_and_consistent_ratings_are_never_excluded():
    """A worker whose gold answers are right and whose ratings follow the consensus is kept,
    even when a HIT's items happen to look alike (and so do the ratings)."""
    policy = Policy()
    consensus = {i: 3.0 + 0.1 * (i % 3) for i in range(9)}
    alike = assess(_rated([3, 3, 3, 3, 3, 3, 3, 3, 3], gold=GOOD_GOLD), consensus)
    assert alike.inconsistency is not None and alike.inconsistency <= policy.max_inconsistency
    assert decide(alike, policy) == ("approve", "")
    # The same pattern with a gold answer wrong is still a straight-liner ...
    wrong_gold = assess(_rated([3] * 9, gold=((1, (2, 0, 1)), (2, (4, 2, 4)))), consensus)
    assert decide(wrong_gold, policy)[0] == "exclude"
    # ... and rating faster than a person can look is still too fast.
    fast = assess(_rated([3] * 9, seconds=0.8, gold=GOOD_GOLD), consensus)
    assert decide(fast, policy)[0] == "exclude"


def test_inconsistent_ratings_and_repeats_rated_apart_are_excluded():
    policy = Policy()
    consensus = {i: float(i % 5) for i in range(10)}
    scattered = assess(_rated([4, 0, 4, 0, 4, 1, 3, 0, 4, 0], gold=GOOD_GOLD), consensus)
    assert scattered.inconsistency > policy.max_inconsistency
    d, why = decide(scattered, policy)
    assert d == "exclude" and "stray" in why
    # Item 1 shown twice: rated 1 and then 4.
    rated = _rated([0, 1, 2, 3, 4, 0, 1, 2], gold=GOOD_GOLD) + [Rated(1, 4, 5.0, True)]
    repeat = assess(rated, consensus)
    assert repeat.repeat_difference == 3
    d, why = decide(repeat, policy)
    assert d == "exclude" and "repeated pair" in why
    again = assess(_rated([0, 1, 2, 3, 4, 0, 1, 2], gold=GOOD_GOLD) + [Rated(1, 2, 5.0, True)],
                   consensus)
    assert again.repeat_difference == 1 and decide(again, policy)[0] == "approve"


def test_helpers():
    assert pearson([1, 2, 3], [2, 4, 6]) == 1.0
    assert pearson([1, 1, 1], [1, 2, 3]) is None
    assert not should_block(1, Policy()) and should_block(2, Policy())
    assert not should_block(9, Policy(block_after_failures=0))


def test_viewing_record_is_read_defensively():
    """view_P carries how the item was looked at; a bad or oversized record is dropped (None),
    an out-of-range number only loses that number, and the rating stands either way."""
    good = '{"s":12.5,"z":2,"f":4,"w":1366,"h":768,"r":1}'
    a = parse_answers(xml([("rating_1", "2"), ("view_1", good), ("rating_2", "1"),
                           ("view_2", '{"s":-1,"z":1e9,"f":"x","w":390,"h":844,"r":3}'),
                           ("rating_3", "0"), ("view_3", "[" * 5000),
                           ("rating_4", "3"), ("view_4", "not json"),
                           ("rating_5", "4")]), [1, 2, 3, 4, 5], SCALE)
    assert a.problems == []
    assert a.items[1].view == {"seconds": 12.5, "max_zoom": 2.0, "flips": 4,
                               "viewport": [1366, 768], "pixel_ratio": 1.0}
    assert a.items[2].view == {"seconds": None, "max_zoom": None, "flips": None,
                               "viewport": [390, 844], "pixel_ratio": 3.0}
    assert [a.items[p].view for p in (3, 4, 5)] == [None, None, None]
    assert all(a.items[p].valid for p in range(1, 6))


def test_pairs_never_seen_at_one_to_one_are_flagged_when_required():
    consensus = {0: 0.5, 1: 1.5, 2: 2.5, 3: 3.5}
    rated = _rated([0, 1, 3, 4], gold=GOOD_GOLD)
    for r in rated:
        r.max_zoom = 1.0
    rated[0].max_zoom = 0.4              # looked at the whole photo only
    checks = assess(rated, consensus)
    assert checks.unseen_native == 1
    assert decide(checks, Policy(require_native_view=False)) == ("approve", "")
    decision, why = decide(checks, Policy())           # required by default
    assert decision == "exclude" and "1:1" in why
    # A page that recorded nothing (an older page) is not held against the worker.
    for r in rated:
        r.max_zoom = None
    assert decide(assess(rated, consensus), Policy(require_native_view=True))[0] == "approve"
