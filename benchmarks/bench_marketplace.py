"""Marketplace throughput: CreateHIT calls per second through boto3, and accepted+submitted
assignments per second with 50 concurrent workers on the worker site, with p50/p99 latencies.

    python benchmarks/bench_marketplace.py [--quick]

References measured in the same run: GetAccountBalance (the cost of an authenticated boto3
round trip that does no work) for CreateHIT, in alternating blocks with it, and one worker alone
for the 50-worker figure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study.marketplace.testing import (  # noqa: E402
    RunningMarketplace, WorkerClient, serve_process)

HTML_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
QUESTION = (f'<HTMLQuestion xmlns="{HTML_NS}"><HTMLContent><![CDATA[<!DOCTYPE html><html><body>'
            + "<section class='item'>item</section>" * 20 +
            "</body></html>]]></HTMLContent><FrameHeight>800</FrameHeight></HTMLQuestion>")
ANSWER = [(f"rating_{i}", str(i % 5)) for i in range(1, 13)] + \
         [(f"seconds_{i}", "3.5") for i in range(1, 13)]


@contextmanager
def served_marketplace(tmp: Path):
    """`study marketplace serve` (waitress) in its own process, as in production: the workers'
    threads here then do not compete with the server for this process's interpreter lock."""
    key_id, secret = "AKIDBENCH", "bench-secret-value"
    db = tmp / "bench.db"
    with serve_process(db, {key_id: secret}) as base:
        yield RunningMarketplace(base, key_id, secret, db, None, None, stop=lambda: None)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def hit_kwargs(i: int, max_assignments: int) -> dict:
    return dict(Title="Rate image pairs", Description="Compare each result with the reference",
                Reward="0.50", LifetimeInSeconds=86400, AssignmentDurationInSeconds=1800,
                MaxAssignments=max_assignments, Question=QUESTION, UniqueRequestToken=f"bench-{i}")


def paired_calls(ref_fn, fn, n: int, block: int = 25) -> tuple:
    """The reference and the measured call in alternating blocks of `block` calls, so that
    both meet the same moments of a shared machine (one after the other, a burst of someone
    else's work could land on either). Returns (reference rate, its latencies, rate,
    latencies); each function gets the call's index."""
    ref_lat: list[float] = []
    lat: list[float] = []
    ref_s = s = 0.0
    for start in range(0, n, block):
        for f, out in ((ref_fn, ref_lat), (fn, lat)):
            t0 = time.perf_counter()
            for i in range(start, min(n, start + block)):
                t = time.perf_counter()
                f(i)
                out.append(time.perf_counter() - t)
            if f is ref_fn:
                ref_s += time.perf_counter() - t0
            else:
                s += time.perf_counter() - t0
    return n / ref_s, ref_lat, n / s, lat


def run_workers(mk, n_workers: int, n_assignments: int, tag: str) -> dict:
    """n_workers threads accept and submit until n_assignments are done."""
    lock = threading.Lock()
    state = {"left": n_assignments}
    accept_lat: list[float] = []
    submit_lat: list[float] = []
    errors: list[str] = []
    clients = []
    for i in range(n_workers):
        w = WorkerClient(mk.base_url)
        w.login(f"{tag}-worker-{i}")
        clients.append(w)

    def take() -> bool:
        with lock:
            if state["left"] <= 0:
                return False
            state["left"] -= 1
            return True

    def work(w: WorkerClient) -> None:
        while take():
            groups = w.groups()
            if not groups:
                with lock:
                    state["left"] += 1
                return
            preview = w.http.get(mk.base_url + groups[0]["href"])
            hit_id = preview.url.rstrip("/").rsplit("/", 1)[1]
            t = time.perf_counter()
            try:
                aid = w.accept(hit_id)
            except RuntimeError:
                with lock:
                    state["left"] += 1
                continue  # another worker took the last slot first
            t1 = time.perf_counter()
            r = w.submit(aid, ANSWER)
            t2 = time.perf_counter()
            if r.status_code != 200:
                errors.append(f"submit {r.status_code}")
            with lock:
                accept_lat.append(t1 - t)
                submit_lat.append(t2 - t1)

    threads = [threading.Thread(target=work, args=(w,)) for w in clients]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"rate": len(submit_lat) / elapsed, "accept": accept_lat, "submit": submit_lat,
            "errors": errors, "done": len(submit_lat)}


def main(quick: bool = False) -> list[dict]:
    n_calls = 60 if quick else 300
    n_assign = 150 if quick else 1000
    n_single = 20 if quick else 60
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, served_marketplace(Path(tmp)) as mk:
        c = mk.client()
        c.get_account_balance()  # warm-up
        ref_rate, ref_lat, rate, lat = paired_calls(
            lambda i: c.get_account_balance(), lambda i: c.create_hit(**hit_kwargs(i, 5)),
            n_calls)
        rows += [
            {"benchmark": "marketplace", "figure": "CreateHIT calls/s (boto3, 1 client)",
             "value": round(rate, 1), "unit": "calls/s",
             "reference": round(ref_rate, 1), "ratio": round(rate / ref_rate, 2)},
            {"benchmark": "marketplace", "figure": "CreateHIT latency p50", "value":
             round(1000 * pct(lat, 0.5), 2), "unit": "ms",
             "reference": round(1000 * pct(ref_lat, 0.5), 2), "ratio": None},
            {"benchmark": "marketplace", "figure": "CreateHIT latency p99", "value":
             round(1000 * pct(lat, 0.99), 2), "unit": "ms",
             "reference": round(1000 * pct(ref_lat, 0.99), 2), "ratio": None},
        ]
        # Enough open slots for both worker runs: 5 assignments per HIT.
        need = (n_assign + n_single) // 5 + 20 - n_calls
        for i in range(max(0, need)):
            c.create_hit(**hit_kwargs(n_calls + i, 5))
        single = run_workers(mk, 1, n_single, "solo")
        many = run_workers(mk, 50, n_assign, "crowd")
        assert not many["errors"] and not single["errors"], many["errors"] or single["errors"]
        rows += [
            {"benchmark": "marketplace", "figure": "assignments accepted+submitted/s (50 workers)",
             "value": round(many["rate"], 1), "unit": "assignments/s",
             "reference": round(single["rate"], 1),
             "ratio": round(many["rate"] / single["rate"], 2)},
            {"benchmark": "marketplace", "figure": "accept latency p50 (50 workers)",
             "value": round(1000 * pct(many["accept"], 0.5), 1), "unit": "ms",
             "reference": round(1000 * pct(single["accept"], 0.5), 1), "ratio": None},
            {"benchmark": "marketplace", "figure": "accept latency p99 (50 workers)",
             "value": round(1000 * pct(many["accept"], 0.99), 1), "unit": "ms",
             "reference": round(1000 * pct(single["accept"], 0.99), 1), "ratio": None},
            {"benchmark": "marketplace", "figure": "submit latency p50 (50 workers)",
             "value": round(1000 * pct(many["submit"], 0.5), 1), "unit": "ms",
             "reference": round(1000 * pct(single["submit"], 0.5), 1), "ratio": None},
            {"benchmark": "marketplace", "figure": "submit latency p99 (50 workers)",
             "value": round(1000 * pct(many["submit"], 0.99), 1), "unit": "ms",
             "reference": round(1000 * pct(single["submit"], 0.99), 1), "ratio": None},
        ]
        total = c.list_hits(MaxResults=1)  # the marketplace is still consistent after the run
        assert total["NumResults"] == 1
    return rows


def _print(rows: list[dict]) -> None:
    w = max(len(r["figure"]) for r in rows)
    print(f"{'figure':<{w}}  {'value':>10}  {'unit':<14} {'reference':>10}  {'ratio':>6}")
    for r in rows:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        print(f"{r['figure']:<{w}}  {r['value']:>10}  {r['unit']:<14} {r['reference']:>10}  "
              f"{ratio:>6}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls (about 10 s)")
    _print(main(ap.parse_args().quick))
