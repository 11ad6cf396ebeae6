"""When each simulated worker acts: a discrete-event schedule in simulated time.

A crowd's outcome must be a function of its seed alone, not of which thread the machine happened
to run first or how long a request took. So workers do not race in threads: one loop takes the
next event in simulated time (a worker starting a HIT, or submitting the one it holds), carries
it out over HTTP, and schedules what that worker does next. Times come from the workers' seeded
paces; ties are broken by the order events were scheduled in. When the marketplace's clock is a
`SimulatedClock`, the loop moves it to each event's time, so assignment deadlines, expiry of
abandoned work and submit times all happen in simulated time too.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from study.simulate.workers import stream

# Seconds between a session ending and the next worker arriving (drawn uniformly).
ARRIVAL_GAP_S = 30.0


class SimulatedClock:
    """Epoch seconds that move only when the simulation moves them (never backwards). Pass it
    as the marketplace's `clock`; the simulated crowd sets it to each event's time."""

    def __init__(self, start: float | None = None):
        self._t = float(time.time() if start is None else start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._t += max(0.0, float(seconds))
            return self._t

    def advance_to(self, t: float) -> float:
        with self._lock:
            self._t = max(self._t, float(t))
            return self._t


class Actor(Protocol):
    def begin(self) -> tuple[str, float] | None: ...

    def finish(self) -> tuple[str, float] | None: ...


def run_schedule(actors: list[Actor], *, seed: int, concurrency: int, deadline: float,
                 clock: SimulatedClock | None = None,
                 wall_clock: Callable[[], float] = time.monotonic) -> tuple[bool, float]:
    """Run `actors` until none wants to act again, at most `concurrency` in session at once
    (the next in line arrives when one leaves). An actor's step ("begin" or "finish") returns
    its next step and the simulated seconds until it, or None when it leaves.

    Returns (stopped at the wall-clock `deadline`, simulated seconds elapsed)."""
    start = clock() if clock is not None else 0.0
    arrivals = stream(seed, "arrivals")
    order = itertools.count()
    events: list[tuple[float, int, int, str]] = []
    waiting = deque(range(len(actors)))

    def arrive(t: float) -> None:
        if waiting:
            heapq.heappush(events, (t + float(arrivals.uniform(0.0, ARRIVAL_GAP_S)), next(order),
                                    waiting.popleft(), "begin"))

    for _ in range(min(concurrency, len(actors))):
        arrive(start)
    now = start
    while events:
        if wall_clock() >= deadline:
            return True, now - start
        now, _, i, step = heapq.heappop(events)
        if clock is not None:
            clock.advance_to(now)
        actor = actors[i]
        following = actor.begin() if step == "begin" else actor.finish()
        if following is None:
            arrive(now)
        else:
            next_step, after_s = following
            heapq.heappush(events, (now + max(0.0, after_s), next(order), i, next_step))
    return False, now - start
