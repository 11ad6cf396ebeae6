"""Fault injection at named journal steps, so tests can crash publish and collect anywhere.

`STUDY_FAULT=<step>[:<n>]` makes the n-th time (default the first) the process reaches `<step>`
fail: by raising InjectedFault, or with `STUDY_FAULT_MODE=exit` by ending the process at once
(exit status 137, as if killed). Steps are the journal steps, e.g. `publish:create_hit:sent`.
"""

from __future__ import annotations

import os

_counts: dict[str, int] = {}
_spec_seen: str | None = None


class InjectedFault(BaseException):
    """A simulated crash. BaseException, so no `except Exception` on the way swallows it."""


def parse(spec: str) -> tuple[str, int]:
    head, _, tail = spec.rpartition(":")
    if head and tail.isdigit():
        return head, int(tail)
    return spec, 1


def reset() -> None:
    global _spec_seen
    _counts.clear()
    _spec_seen = None


def fault_point(step: str) -> None:
    global _spec_seen
    spec = os.environ.get("STUDY_FAULT", "")
    if not spec:
        return
    if spec != _spec_seen:
        _counts.clear()
        _spec_seen = spec
    target, n = parse(spec)
    if step != target:
        return
    _counts[step] = _counts.get(step, 0) + 1
    if _counts[step] == n:
        if os.environ.get("STUDY_FAULT_MODE") == "exit":
            os._exit(137)
        raise InjectedFault(f"injected fault at {step} (#{n})")
