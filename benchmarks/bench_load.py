"""Load on `study serve` (a real subprocess, on 127.0.0.1) from simulated workers over HTTP.

    python benchmarks/bench_load.py [--quick]

open loop: workers at a realistic pace. Each signs in (keeping its connection, as a browser
does), then at a random moment of a period (60 s; 6 s in --quick, with a tenth of the workers,
so the arrival rate is the same) accepts a HIT, works on it for a quarter to three quarters of
the period and submits it. Accept and submit p50/p99 latency and the error count; the driver's
own lag (how late it sent a request it had scheduled) is shown so a late driver is not mistaken
for a fast server. The reference is one worker alone on the idle service.

saturation: 50, 200 and 500 closed-loop keep-alive workers, each taking and submitting HITs as
fast as it is answered, until a fixed number of assignments is done. Assignments per second
(against one worker alone), accept p99, and the slowest sign-in (a stall shows there: past a
connection limit, a new connection waits for an idle one to time out).

CreateHIT: calls per second through boto3 as a ratio to GetAccountBalance, which does no work,
on the same client and server, the two in alternating blocks of calls.

Every count and every wait is bounded: the run ends by itself.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(HERE)]

from bench_marketplace import ANSWER, QUESTION, paired_calls, pct  # noqa: E402

DEADLINE_S = 300  # no phase of this benchmark may run longer
SLOTS_PER_HIT = 50


@contextmanager
def served_study(tmp: Path):
    """A small study served by `study serve` in its own process; yields (base_url, key_id,
    secret)."""
    import requests
    from conftest import CLI
    from test_crowd_support import make_bokeh_dataset, use_service_url
    from study.marketplace.testing import stop
    from study.service import free_port
    from study.studydir import Study

    dataset = make_bokeh_dataset(tmp / "data", ids=(1, 2, 3))
    root = tmp / "study"
    CLI()("init", root, "--dataset", dataset, "--images", "3")
    url = f"http://127.0.0.1:{free_port()}"
    use_service_url(root, url)
    keys = Study.open(root).secrets()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log_path = tmp / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "study", "serve"], cwd=root, env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"study serve did not start: {log_path.read_text()[-2000:]}")
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        yield url, keys["aws_access_key_id"], keys["aws_secret_access_key"]
    finally:
        stop(proc)


def load_hit(i: int) -> dict:
    return dict(Title="Rate image pairs", Description="Compare each result with the reference",
                Reward="0.01", LifetimeInSeconds=86400, AssignmentDurationInSeconds=1800,
                MaxAssignments=SLOTS_PER_HIT, Question=QUESTION, UniqueRequestToken=f"load-{i}")


class Tally:
    """Latencies and errors of one run, from many threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.signin: list[float] = []
        self.accept: list[float] = []
        self.submit: list[float] = []
        self.lag: list[float] = []
        self.errors: list[str] = []
        self.done = 0
        self.resent = 0

    def add(self, name: str, value: float) -> None:
        with self.lock:
            getattr(self, name).append(value)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)


def as_a_browser(call, tally: Tally):
    """Make a request as a browser does. A worker's connection is kept alive between requests,
    and the service closes one idle for longer than its channel_timeout (30 s): a request sent
    on it just as it closes fails before any answer, and browsers resend such a request once on
    a new connection. So does the driver, and counts it; a second failure is an error."""
    import requests

    try:
        return call()
    except requests.ConnectionError:
        with tally.lock:
            tally.resent += 1
        return call()


def sign_in(base: str, worker_id: str, tally: Tally):
    from study.marketplace.testing import WorkerClient

    w = WorkerClient(base)
    t = time.perf_counter()
    try:
        w.login(worker_id)
    except Exception as exc:  # noqa: BLE001 - counted, the run goes on
        tally.error(f"sign-in: {type(exc).__name__}")
        return None
    tally.add("signin", time.perf_counter() - t)
    return w


def take(w, base: str, tally: Tally) -> str | None:
    """Find an open HIT and accept it (a few tries: others may fill its last slot first);
    returns the assignment id."""
    for _ in range(5):
        try:
            groups = as_a_browser(w.groups, tally)
            if not groups:
                tally.error("no HIT left")
                return None
            preview = as_a_browser(lambda: w.http.get(base + groups[0]["href"], timeout=60),
                                   tally)
            hit_id = preview.url.rstrip("/").rsplit("/", 1)[1]
            t = time.perf_counter()
            aid = as_a_browser(lambda: w.accept(hit_id), tally)
            tally.add("accept", time.perf_counter() - t)
            return aid
        except RuntimeError:
            continue  # the slot went to another worker
        except Exception as exc:  # noqa: BLE001 - counted, the run goes on
            tally.error(f"accept: {type(exc).__name__}")
            return None
    tally.error("accept refused five times")
    return None


def hand_in(w, aid: str, tally: Tally) -> None:
    t = time.perf_counter()
    try:
        r = as_a_browser(lambda: w.submit(aid, ANSWER), tally)
    except Exception as exc:  # noqa: BLE001 - counted, the run goes on
        tally.error(f"submit: {type(exc).__name__}")
        return
    if r.status_code != 200:
        tally.error(f"submit HTTP {r.status_code}")
        return
    tally.add("submit", time.perf_counter() - t)
    with tally.lock:
        tally.done += 1


def open_loop(base: str, n_workers: int, period_s: float, tag: str, seed: int = 7) -> Tally:
    """Each worker accepts one HIT at a random moment of the period and submits it after a
    quarter to three quarters of the period; requests go out on schedule, answered or not."""
    tally = Tally()
    rng = random.Random(seed)
    with ThreadPoolExecutor(max_workers=32) as pool:
        workers = list(pool.map(lambda i: sign_in(base, f"{tag}-{i}", tally), range(n_workers)))
    events: list[tuple[float, int, str, object]] = []
    start = time.perf_counter() + 0.5
    for i, w in enumerate(workers):
        if w is not None:
            events.append((start + rng.uniform(0, period_s), i, "accept", None))
    heapq.heapify(events)
    cond = threading.Condition()
    pending = [len(events)]  # submits still to come count too

    def schedule(at: float, i: int, kind: str, aid) -> None:
        with cond:
            heapq.heappush(events, (at, i, kind, aid))
            cond.notify()

    def run(at: float, i: int, kind: str, aid) -> None:
        tally.add("lag", time.perf_counter() - at)
        w = workers[i]
        try:
            if kind == "accept":
                aid = take(w, base, tally)
                if aid is not None:
                    schedule(time.perf_counter() + rng.uniform(0.25, 0.75) * period_s, i,
                             "submit", aid)
                    return
            else:
                hand_in(w, aid, tally)
        finally:
            if kind == "submit" or aid is None:
                with cond:
                    pending[0] -= 1
                    cond.notify()

    deadline = time.perf_counter() + min(DEADLINE_S, 3 * period_s + 60)
    with ThreadPoolExecutor(max_workers=128) as pool:
        while True:
            with cond:
                if pending[0] == 0:
                    break
                now = time.perf_counter()
                if now > deadline:
                    tally.error(f"{pending[0]} workers unfinished at the deadline")
                    break
                if not events or events[0][0] > now:
                    wait = events[0][0] - now if events else 0.5
                    cond.wait(timeout=min(wait, 0.5))
                    continue
                event = heapq.heappop(events)
            pool.submit(run, *event)
    for w in workers:
        if w is not None:
            w.http.close()
    return tally


def closed_loop(base: str, n_workers: int, n_assignments: int, tag: str) -> tuple[Tally, float]:
    """n_workers keep-alive workers sign in at once, then take and submit HITs as fast as they
    are answered until n_assignments are done; returns the tally and the assignments/s."""
    tally = Tally()
    lock = threading.Lock()
    left = [n_assignments]
    deadline = time.perf_counter() + DEADLINE_S

    def claim() -> bool:
        with lock:
            if left[0] <= 0 or time.perf_counter() > deadline:
                return False
            left[0] -= 1
            return True

    def worker(i: int) -> None:
        w = sign_in(base, f"{tag}-{i}", tally)
        if w is None:
            return
        ready.wait()
        while claim():
            aid = take(w, base, tally)
            if aid is None:
                return
            hand_in(w, aid, tally)
        w.http.close()

    ready = threading.Event()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n_workers)]
    for t in threads:
        t.start()
    while len(tally.signin) + len(tally.errors) < n_workers and time.perf_counter() < deadline:
        time.sleep(0.05)
    t0 = time.perf_counter()
    ready.set()
    for t in threads:
        t.join(timeout=max(1.0, deadline - time.perf_counter()))
    elapsed = time.perf_counter() - t0
    if left[0] > 0:
        tally.error(f"{left[0]} assignments not done at the deadline")
    return tally, tally.done / elapsed


def ms(values: list[float], q: float) -> float | None:
    return round(1000 * pct(values, q), 1) if values else None


def main(quick: bool = False) -> list[dict]:
    from study.marketplace.testing import RunningMarketplace

    n_open = 100 if quick else 1000
    period = 6.0 if quick else 60.0
    levels = {50: 100, 200: 200, 500: 500} if quick else {50: 500, 200: 800, 500: 1500}
    n_calls = 60 if quick else 300
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, served_study(Path(tmp)) as (base, key, secret):
        mk = RunningMarketplace(base, key, secret, Path(tmp) / "unused", None, None,
                                stop=lambda: None)
        c = mk.client()
        c.get_account_balance()  # warm-up
        ref_rate, _, rate, _ = paired_calls(lambda i: c.get_account_balance(),
                                            lambda i: c.create_hit(**load_hit(i)), n_calls)
        rows.append({"benchmark": "load", "figure": "CreateHIT calls/s (boto3, 1 client)",
                     "value": round(rate, 1), "unit": "calls/s", "reference": round(ref_rate, 1),
                     "ratio": round(rate / ref_rate, 2)})
        need = 30 + n_open + sum(levels.values())
        for i in range(n_calls, n_calls + max(0, need // SLOTS_PER_HIT + 2 - n_calls)):
            c.create_hit(**load_hit(i))

        solo, solo_rate = closed_loop(base, 1, 30, "solo")
        assert not solo.errors, solo.errors
        t = open_loop(base, n_open, period, "paced")
        rows += [
            {"benchmark": "load", "figure": f"open loop, {n_open} workers, 1 HIT each per "
             f"{period:g} s: accept p50", "value": ms(t.accept, 0.5), "unit": "ms",
             "reference": ms(solo.accept, 0.5), "ratio": None},
            {"benchmark": "load", "figure": "open loop: accept p99", "value": ms(t.accept, 0.99),
             "unit": "ms", "reference": ms(solo.accept, 0.99), "ratio": None},
            {"benchmark": "load", "figure": "open loop: submit p50", "value": ms(t.submit, 0.5),
             "unit": "ms", "reference": ms(solo.submit, 0.5), "ratio": None},
            {"benchmark": "load", "figure": "open loop: submit p99", "value": ms(t.submit, 0.99),
             "unit": "ms", "reference": ms(solo.submit, 0.99), "ratio": None},
            {"benchmark": "load", "figure": "open loop: errors (assignments done)",
             "value": len(t.errors), "unit": f"of {n_open} ({t.done})", "reference": 0,
             "ratio": None},
            {"benchmark": "load", "figure": "open loop: resent after an idle close "
             "(as browsers do)", "value": t.resent,
             "unit": "requests", "reference": None, "ratio": None},
            {"benchmark": "load", "figure": "open loop: driver lag p99 (not the server)",
             "value": ms(t.lag, 0.99), "unit": "ms", "reference": None, "ratio": None},
            {"benchmark": "load", "figure": "open loop: slowest sign-in",
             "value": ms(t.signin, 1.0), "unit": "ms", "reference": ms(solo.signin, 1.0),
             "ratio": None},
        ]
        if t.errors:
            print(f"open loop errors: {sorted(set(t.errors))[:5]}", file=sys.stderr)
        for n, assignments in levels.items():
            t, r = closed_loop(base, n, assignments, f"sat{n}")
            rows += [
                {"benchmark": "load", "figure": f"saturation, {n} keep-alive workers",
                 "value": round(r, 1), "unit": "assignments/s",
                 "reference": round(solo_rate, 1), "ratio": round(r / solo_rate, 2)},
                {"benchmark": "load", "figure": f"saturation, {n}: accept p99",
                 "value": ms(t.accept, 0.99), "unit": "ms", "reference": ms(solo.accept, 0.99),
                 "ratio": None},
                {"benchmark": "load", "figure": f"saturation, {n}: slowest sign-in",
                 "value": ms(t.signin, 1.0), "unit": "ms", "reference": ms(solo.signin, 1.0),
                 "ratio": None},
                {"benchmark": "load", "figure": f"saturation, {n}: errors",
                 "value": len(t.errors), "unit": f"({t.done} done)", "reference": 0,
                 "ratio": None},
            ]
            if t.errors:
                print(f"saturation {n} errors: {sorted(set(t.errors))[:5]}", file=sys.stderr)
    return rows


def _print(rows: list[dict]) -> None:
    w = max(len(r["figure"]) for r in rows)
    print(f"{'figure':<{w}}  {'value':>10}  {'unit':<18} {'reference':>10}  {'ratio':>6}")
    for r in rows:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        ref = "-" if r["reference"] is None else r["reference"]
        print(f"{r['figure']:<{w}}  {r['value']!s:>10}  {r['unit']:<18} {ref!s:>10}  "
              f"{ratio:>6}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer workers, a compressed schedule")
    _print(main(ap.parse_args().quick))
