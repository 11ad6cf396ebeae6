"""Rating scales: range and direction (which end is better)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scale:
    low: float
    high: float
    higher_is_better: bool
    # The words of each level, from low to high (empty when only the range is known).
    labels: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.high > self.low:
            raise ValueError(f"scale high ({self.high}) must be greater than low ({self.low})")
        if self.labels and len(self.labels) != self.high - self.low + 1:
            raise ValueError(f"a {self.low}..{self.high} scale needs {self.high - self.low + 1} "
                             f"labels, got {len(self.labels)}")

    @classmethod
    def similarity(cls) -> "Scale":
        """0 almost identical .. 4 mostly different: lower is better (this project's studies)."""
        return cls(0, 4, False)

    @classmethod
    def acr(cls) -> "Scale":
        """Absolute category rating 1 bad .. 5 excellent: higher is better."""
        return cls(1, 5, True)

    @classmethod
    def parse(cls, text: str, higher_is_better: bool | None = None) -> "Scale":
        """'0..4' or '1..5' (also '0-4', '1:5'). Direction defaults to the usual one for the
        range: 0..4 similarity is lower-better, anything else higher-better."""
        m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(?:\.\.|-|:|–)\s*(-?\d+(?:\.\d+)?)\s*", text or "")
        if not m:
            raise ValueError(f"cannot read scale {text!r}; write it as LOW..HIGH, e.g. 0..4 or 1..5")
        low, high = float(m.group(1)), float(m.group(2))
        low = int(low) if low.is_integer() else low
        high = int(high) if high.is_integer() else high
        if higher_is_better is None:
            higher_is_better = not (low == 0 and high == 4)
        return cls(low, high, bool(higher_is_better))

    @property
    def best(self) -> float:
        return self.high if self.higher_is_better else self.low

    @property
    def worst(self) -> float:
        return self.low if self.higher_is_better else self.high

    @property
    def sign(self) -> int:
        """+1 when higher is better, -1 otherwise: sign * score grows with quality."""
        return 1 if self.higher_is_better else -1

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def label(self) -> str:
        direction = "higher is better" if self.higher_is_better else "lower is better"
        return f"{self.low}..{self.high}, {direction}"

    @property
    def spec(self) -> str:
        return f"{self.low}..{self.high}"

    @property
    def levels(self) -> list[int]:
        """Every level's value, low to high (integer scales)."""
        return list(range(int(self.low), int(self.high) + 1))

    def best_levels(self, n: int = 2) -> tuple[int, int]:
        """The range of the n levels at the better end, as (min, max)."""
        return (int(self.high) - n + 1, int(self.high)) if self.higher_is_better \
            else (int(self.low), int(self.low) + n - 1)

    def worst_levels(self, n: int = 2) -> tuple[int, int]:
        """The range of the n levels at the worse end, as (min, max)."""
        return (int(self.low), int(self.low) + n - 1) if self.higher_is_better \
            else (int(self.high) - n + 1, int(self.high))

    @classmethod
    def from_dict(cls, d: dict) -> "Scale":
        return cls(d["low"], d["high"], bool(d["higher_is_better"]),
                   tuple(d.get("labels") or ()))

    def mirrored(self, value: int) -> int:
        """The level at the same distance from the other end: the answer to a question asked
        the other way round (CCR with the output shown first, pairwise with A and B swapped)."""
        return int(self.low + self.high - value)

    def contains(self, values) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        return (v >= self.low) & (v <= self.high)

    def goodness(self, values) -> np.ndarray:
        """Values oriented so that larger is better (for ranking)."""
        return self.sign * np.asarray(values, dtype=float)

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "higher_is_better": self.higher_is_better,
                "labels": list(self.labels)}
