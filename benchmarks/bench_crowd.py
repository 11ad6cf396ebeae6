"""Publish and collect throughput against the bundled marketplace over real HTTP, each as a
ratio to the raw boto3 calls it makes.

    python benchmarks/bench_crowd.py [--quick]

publish: HITs per second with the design, page rendering and the journal, from the command's
start to its end: once as `study publish` first runs (encoding every image into hosted/, each
flushed to disk), and once on a copy of the study whose images were hosted beforehand (timed on
their own), with --skip-preflight: what exactly-once itself costs, as when a study published in
one realm goes to the other.

The first run's preflight (every image fetched through hosting.base_url before any money is
committed) is timed apart and left out of that run's ratio, on its own row: it is a check of the
network path workers will use, which the bare calls cannot stand in for, it grows with the
images and not with the HITs, and where it runs it is the same with or without exactly-once.
collect: assignments per second fetched, parsed, checked, decided, approved and bonused exactly
once, from the command's start to its end.

The reference of each is the same boto3 calls, made bare, in the same order and number
(counted while the command ran and checked to match), on a new client from the same
`requester()`, against the same server in the same run: the qualification and HIT type, then
one CreateHITWithHITType per HIT with the same Question for publish; ListAssignmentsForHIT
(paged until its empty page, as every client pages) and GetHIT per HIT and one
ApproveAssignment, ListBonusPayments and SendBonus per assignment for collect (on HITs the
reference itself created and the same workers did). Both sides make a new boto3 client
(`requester()`), as a script would, and that fixed cost is a large part of the reference at
this size. Three rounds on fresh copies of the study (one in --quick); the
ratio is of the medians.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

QUIET = lambda _m: None  # noqa: E731


def _study(base: Path, n_images: int) -> Path:
    from conftest import CLI
    from test_crowd_support import add_renders, make_bokeh_dataset, set_config

    dataset = make_bokeh_dataset(base / "data", ids=tuple(range(1, n_images + 1)))
    root = base / "study"
    CLI()("init", root, "--dataset", dataset, "--images", str(n_images))
    add_renders(root)
    set_config(root, "[design]\nitems_per_hit = 10\nratings_per_item = 3\n")
    set_config(root, "[quality]\nbonus_usd = 0.05\nbonus_reason = \"Thanks\"\n")
    set_config(root, "[budget]\nmax_usd = 10000.0\n")
    return root


@contextmanager
def timed_preflight():
    """Times the preflight inside `study publish`: (URLs checked, seconds) in the yielded list."""
    import study.crowd.preflight as module

    spent: list[tuple[int, float]] = []
    original = module.preflight

    def preflight(*args, **kwargs):
        t = time.perf_counter()
        n = original(*args, **kwargs)
        spent.append((n, time.perf_counter() - t))
        return n

    module.preflight = preflight
    try:
        yield spent
    finally:
        module.preflight = original


@contextmanager
def counted_calls():
    """Counts the marketplace operations the study's code makes (Requester.call, which
    pages() goes through too)."""
    from study.crowd.client import Requester

    counts: Counter = Counter()
    original = Requester.call

    def call(self, operation, **params):
        counts[operation] += 1
        return original(self, operation, **params)

    Requester.call = call
    try:
        yield counts
    finally:
        Requester.call = original


def _raw_publish(study, questions: list[str], type_params: dict, tag: str) -> tuple:
    """The calls publish makes, bare: find the qualification, make it, make the HIT type,
    then one HIT per question. Returns (seconds, calls, HIT ids, qualification id)."""
    from study.crowd.client import requester

    calls: Counter = Counter()
    t = time.perf_counter()
    with requester(study, "sandbox") as api:
        c = api.client
        name = f"bench {tag} qualification"
        c.list_qualification_types(Query=name, MustBeRequestable=False, MustBeOwnedByCaller=True,
                                   MaxResults=100)
        qid = c.create_qualification_type(
            Name=name, Keywords="study,excluded", Description="bench",
            QualificationTypeStatus="Active")["QualificationType"]["QualificationTypeId"]
        type_id = c.create_hit_type(**dict(type_params, QualificationRequirements=[
            {"QualificationTypeId": qid, "Comparator": "DoesNotExist",
             "ActionsGuarded": "DiscoverPreviewAndAccept"}]))["HITTypeId"]
        ids = [c.create_hit_with_hit_type(
            HITTypeId=type_id, MaxAssignments=3, LifetimeInSeconds=3600, Question=q,
            RequesterAnnotation=f"bench-{tag}-{i}", UniqueRequestToken=f"bench-{tag}-{i}",
        )["HIT"]["HITId"] for i, q in enumerate(questions)]
    seconds = time.perf_counter() - t
    calls.update({"list_qualification_types": 1, "create_qualification_type": 1,
                  "create_hit_type": 1, "create_hit_with_hit_type": len(questions)})
    return seconds, calls, ids, qid


def _raw_collect(study, hit_ids: list[str], qid: str, cap: int) -> tuple[float, Counter, int]:
    """The calls collect makes, bare, on the reference's own HITs (including the exclusion
    of workers at the HIT cap). Returns (seconds, calls, assignments)."""
    from study.crowd.client import requester

    calls: Counter = Counter()
    n = 0
    t = time.perf_counter()
    with requester(study, "sandbox") as api:
        c = api.client
        found = []
        for h in hit_ids:
            # As any client pages a List operation: until an empty page or no NextToken
            # (MTurk gave a NextToken with its last non-empty page too).
            kwargs = dict(HITId=h, AssignmentStatuses=["Submitted", "Approved", "Rejected"],
                          MaxResults=100)
            while True:
                page = c.list_assignments_for_hit(**kwargs)
                calls["list_assignments_for_hit"] += 1
                found += page["Assignments"]
                if not page["Assignments"] or not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
        for a in sorted(found, key=lambda a: a["AssignmentId"]):
            c.approve_assignment(AssignmentId=a["AssignmentId"])
        for a in sorted(found, key=lambda a: a["AssignmentId"]):
            c.list_bonus_payments(AssignmentId=a["AssignmentId"], MaxResults=100)
            c.send_bonus(WorkerId=a["WorkerId"], BonusAmount="0.05",
                         AssignmentId=a["AssignmentId"], Reason="Thanks",
                         UniqueRequestToken=f"bench-bonus-{a['AssignmentId']}"[:64])
        per_worker = Counter(a["WorkerId"] for a in found)
        capped = [w for w, k in sorted(per_worker.items()) if cap > 0 and k >= cap]
        for w in capped:
            c.associate_qualification_with_worker(QualificationTypeId=qid, WorkerId=w,
                                                  IntegerValue=1, SendNotification=False)
        for h in hit_ids:
            c.get_hit(HITId=h)
        n = len(found)
    calls.update({"approve_assignment": n, "list_bonus_payments": n, "send_bonus": n,
                  "get_hit": len(hit_ids), "associate_qualification_with_worker": len(capped)})
    return time.perf_counter() - t, calls, n


def _same_calls(what: str, made: Counter, bare: Counter) -> None:
    if +made != +bare:
        raise AssertionError(f"the reference for {what} does not make the calls it makes: "
                             f"{dict(made)} vs {dict(bare)}")


def _round(template: Path, root: Path, check: bool, tag: str) -> dict:
    """One copy of the study published (hosting and preflight included when `check`; else
    with its images hosted beforehand, then worked and collected), each step followed by its
    bare calls. Returns {figure: (count, seconds, reference seconds)} and the hosting time."""
    import requests

    from hit_templates import environment
    from study.crowd import design
    from study.crowd.client import requester
    from study.crowd.collect import collect
    from study.crowd.hosting import Hosting
    from study.crowd.pages import question_xml
    from study.crowd.publish import publish
    from study.studydir import Study
    from test_crowd_support import answers_for, study_service, work_one_hit

    shutil.copytree(template, root)
    out: dict = {}
    with study_service(root) as (url, _market):
        study = Study.open(root)
        environment().get_template("task.html.j2")  # imports, template compilation
        with requester(study, "sandbox") as api:  # boto3's imports, for both sides
            api.client.get_account_balance()
        conn = study.connect()
        try:
            if not check:
                d = design.ensure_design(study, conn)
                paths = [p for h in range(len(d.hits)) for r in design.hit_items(conn, h)
                         for p in (r["reference_path"], r["result_path"])]
                t = time.perf_counter()
                Hosting(study, conn).host_all(paths)
                n_images = conn.execute("SELECT COUNT(*) FROM hosted_images").fetchone()[0]
                out["host"] = (n_images, time.perf_counter() - t)
            with counted_calls() as made, timed_preflight() as checked:
                t = time.perf_counter()
                publish(study, "sandbox", echo=QUIET, preflight=check)
                publish_s = time.perf_counter() - t - sum(s for _, s in checked)
            if check:
                assert len(checked) == 1, checked
                out[f"preflight of the first run: {checked[0][0]} image URLs fetched through "
                    f"hosting.base_url"] = checked[0]
            n_hits = conn.execute("SELECT COUNT(*) FROM hits").fetchone()[0]
            hosting = Hosting(study, conn)
            questions = [question_xml(study, conn, hosting, h) for h in range(n_hits)]
            hit = study.settings.hit
            raw_s, bare, raw_hits, raw_qid = _raw_publish(study, questions, dict(
                AutoApprovalDelayInSeconds=hit.auto_approval_delay_s,
                AssignmentDurationInSeconds=hit.assignment_duration_s,
                Reward=str(hit.reward), Title=hit.title, Keywords=hit.keywords,
                Description=hit.description), tag)
            _same_calls("publish", made, bare)
            label = "as first run: hosting; the preflight apart" if check else \
                "images hosted before, --skip-preflight"
            out[f"publish {n_hits} HITs exactly once ({label})"] = (n_hits, publish_s, raw_s)
            if check:
                return out
            # The same workers do the study's HITs and the reference's (whose HIT i shows the
            # study's HIT i, and is answered as that one is).
            site = f"{url}/worker/sandbox"
            study_hit = dict(zip(raw_hits, (r[0] for r in conn.execute(
                "SELECT hit_id FROM hits ORDER BY hit_index"))))
            careful = answers_for(root, "careful")

            def answer(positions, query):
                hit_id = study_hit.get(query["hitId"], query["hitId"])
                return careful(positions, dict(query, hitId=hit_id))

            for w in range(3):
                s = requests.Session()
                while work_one_hit(s, site, f"BENCH{w}", answer):
                    pass
            with counted_calls() as made:
                t = time.perf_counter()
                collect(study, echo=QUIET)
                collect_s = time.perf_counter() - t
            n_assign = conn.execute("SELECT COUNT(*) FROM assignments").fetchone()[0]
            assert n_assign == n_hits * 3
            assert conn.execute("SELECT COUNT(*) FROM payments WHERE state != 'done'"
                                ).fetchone()[0] == 0
            ref_s, bare, raw_n = _raw_collect(study, raw_hits, raw_qid, hit.max_hits_per_worker)
            assert raw_n == n_assign, (raw_n, n_assign)
            _same_calls("collect", made, bare)
            out[f"collect {n_assign} assignments exactly once (check, approve, bonus)"] = (
                n_assign, collect_s, ref_s)
            return out
        finally:
            conn.close()


def main(quick: bool = False) -> list[dict]:
    import tqdm  # noqa: F401 - imported before timing, as in a long-running process

    n_images = 6 if quick else 60
    # Rounds on fresh copies of one study; the median of each figure and of its reference,
    # and their ratio (a shared machine makes any single round noisy).
    rounds = 1 if quick else 3
    found: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        template = _study(base / "template", n_images)
        for k in range(rounds):
            for check in (False, True):
                tag = f"{k}-{'pre' if check else 'plain'}"
                for figure, m in _round(template, base / tag, check, tag).items():
                    found.setdefault(figure, []).append(m)
    rows = []
    for figure, ms in found.items():
        if figure.startswith("preflight"):
            rows.append({"benchmark": "crowd", "figure": figure,
                         "value": round(statistics.median(n / s for n, s in ms), 1),
                         "unit": "URLs/s", "reference": None, "ratio": None})
            continue
        if figure == "host":
            n = ms[0][0]
            rows.append({"benchmark": "crowd", "figure": f"host {n} images (encoded into "
                         "hosted/, each flushed to disk)",
                         "value": round(statistics.median(n / s for n, s in ms), 1),
                         "unit": "images/s", "reference": None, "ratio": None})
            continue
        unit = "HITs/s" if figure.startswith("publish") else "assignments/s"
        value = statistics.median(n / s for n, s, _ in ms)
        reference = statistics.median(n / r for n, _, r in ms)
        print(f"{figure}: ratio by round {[round(r / s, 2) for _, s, r in ms]}",
              file=sys.stderr)
        rows.append({"benchmark": "crowd", "figure": figure, "unit": unit,
                     "value": round(value, 1), "reference": round(reference, 1),
                     "ratio": round(value / reference, 2)})
    order = ("publish", "preflight", "host", "collect")
    rows.sort(key=lambda r: order.index(r["figure"].split()[0]))
    return rows


def _print(rows: list[dict]) -> None:
    print(f"{'figure':<64} {'value':>9} {'unit':<14} {'reference':>9} {'ratio':>6}")
    for r in rows:
        print(f"{r['figure']:<64} {r['value']:>9} {r['unit']:<14} {r['reference'] or '-':>9} "
              f"{r['ratio'] or '-':>6}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smaller study (about 10 s)")
    _print(main(ap.parse_args().quick))
