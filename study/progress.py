"""Progress of long steps: a bar on a terminal, plain lines in a log.

A bar redrawn with carriage returns is noise in a log file or a CI transcript, and nothing at
all (tqdm's choice when stderr is not a terminal) looks like a hang. Off a terminal, a line is
written when the step starts, every INTERVAL_S seconds, and when it ends."""

from __future__ import annotations

import sys
import time

INTERVAL_S = 10.0


class LineProgress:
    def __init__(self, total: int | None, desc: str, unit: str, interval: float = INTERVAL_S):
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.n = 0
        self.started = self.last = time.monotonic()
        self._line("started")

    def _line(self, what: str) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        print(f"{self.desc}: {self.n}{of} {self.unit} {what} "
              f"({time.monotonic() - self.started:.0f} s)", file=sys.stderr, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._line("so far")

    def write(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        self._line("done")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Silent(LineProgress):
    def __init__(self) -> None:  # noqa: D107 - nothing to show
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int | None, desc: str, unit: str, enabled: bool | None = None):
    """A progress reporter with update(n), write(msg) and close(): a tqdm bar on a terminal,
    lines elsewhere, nothing when `enabled` is False."""
    if enabled is False:
        return _Silent()
    if sys.stderr.isatty():
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=True,
                    dynamic_ncols=True)
    return LineProgress(total, desc, unit)
