"""What a simulated crowd did: each submission, each worker's outcome, and the run as a whole
(tables, JSON, latency)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from study.simulate.workers import KINDS, LOW_QUALITY, SPAMMER, STRAIGHTLINER


@dataclass
class Submission:
    worker_id: str
    kind: str
    hit_id: str
    assignment_id: str
    hit_key: str
    ratings: dict[int, int]
    seconds: dict[int, float]
    true_scores: dict[int, float]
    items: dict[int, tuple[str, str]]     # position -> (reference URL, result URL)
    comments: str = ""


@dataclass
class WorkerOutcome:
    worker_id: str
    kind: str
    accepted: int = 0
    submitted: int = 0
    returned: int = 0
    abandoned: int = 0
    errors: list[str] = field(default_factory=list)
    stopped: str = ""
    submissions: list[Submission] = field(default_factory=list)
    returned_hits: list[str] = field(default_factory=list)
    abandoned_assignments: list[str] = field(default_factory=list)


@dataclass
class SimulationResult:
    worker_site_url: str
    seed: int
    workers: list[WorkerOutcome]
    elapsed_s: float
    requests: int
    deadline_reached: bool = False
    # Seconds per successful request, by step: login, list, preview, accept (with the
    # redirect to the work page), task, image, return, submit.
    latencies: dict[str, list[float]] = field(default_factory=dict, repr=False)
    simulated_s: float = 0.0     # simulated time from the first arrival to the last event

    @property
    def submissions(self) -> list[Submission]:
        return [s for w in self.workers for s in w.submissions]

    def ids_of(self, *kinds: str) -> list[str]:
        return [w.worker_id for w in self.workers if w.kind in kinds]

    @property
    def spammers(self) -> list[str]:
        return self.ids_of(SPAMMER)

    @property
    def straightliners(self) -> list[str]:
        return self.ids_of(STRAIGHTLINER)

    # Both spellings are in use.
    straight_liners = straightliners

    @property
    def low_quality_workers(self) -> list[str]:
        """Satisficers, spammers and straight-liners: the workers quality control should flag."""
        return self.ids_of(*LOW_QUALITY)

    def by_kind(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for kind in KINDS:
            ws = [w for w in self.workers if w.kind == kind]
            if not ws:
                continue
            out[kind] = {"workers": len(ws),
                         "accepted": sum(w.accepted for w in ws),
                         "submitted": sum(w.submitted for w in ws),
                         "returned": sum(w.returned for w in ws),
                         "abandoned": sum(w.abandoned for w in ws),
                         "errors": sum(len(w.errors) for w in ws)}
        return out

    def totals(self) -> dict[str, int]:
        rows = self.by_kind().values()
        keys = ("workers", "accepted", "submitted", "returned", "abandoned", "errors")
        return {k: sum(r[k] for r in rows) for k in keys}

    def latency_summary(self) -> dict[str, dict[str, float]]:
        """Per step: count, p50 and p99 latency in seconds."""
        out = {}
        for step, xs in sorted(self.latencies.items()):
            a = np.asarray(xs)
            out[step] = {"n": int(a.size), "p50_s": float(np.percentile(a, 50)),
                         "p99_s": float(np.percentile(a, 99))}
        return out

    def table(self) -> str:
        keys = ("workers", "accepted", "submitted", "returned", "abandoned", "errors")
        rows = [(k, *(str(v[c]) for c in keys)) for k, v in self.by_kind().items()]
        t = self.totals()
        rows.append(("total", *(str(t[c]) for c in keys)))
        head = ("kind", *keys)
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])  # noqa: E731
                                  for i, c in enumerate(r))
        return "\n".join([fmt(head), *map(fmt, rows)])

    def to_dict(self, with_answers: bool = False) -> dict:
        workers = []
        for w in self.workers:
            d = asdict(w)
            if not with_answers:
                d.pop("submissions")
            workers.append(d)
        return {"worker_site_url": self.worker_site_url, "seed": self.seed,
                "elapsed_s": round(self.elapsed_s, 3),
                "simulated_s": round(self.simulated_s, 3), "requests": self.requests,
                "deadline_reached": self.deadline_reached, "by_kind": self.by_kind(),
                "totals": self.totals(), "spammers": self.spammers,
                "straightliners": self.straightliners,
                "low_quality_workers": self.low_quality_workers,
                "latency": self.latency_summary(), "workers": workers}
