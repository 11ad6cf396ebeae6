"""Compact letter display by Piepho's insert-absorb algorithm (Piepho 2004, J. Comput. Graph.
Stat. 13(2)): methods sharing a letter are not significantly different."""

from __future__ import annotations

import string

import numpy as np


ALPHABET = string.ascii_lowercase + string.ascii_uppercase
# Beyond 52 groups a label has more than one character; labels are then joined with this, so
# that "ab" can never be read as "a" and "b".
SEPARATOR = "."


def _letter(k: int) -> str:
    if k < len(ALPHABET):
        return ALPHABET[k]
    return ALPHABET[k % len(ALPHABET)] + str(k // len(ALPHABET) + 1)


def letter_set(group: str) -> set[str]:
    """The letters in one method's group label, e.g. "ab" -> {"a", "b"}, "a.b2" -> {"a", "b2"}."""
    if SEPARATOR in group or any(ch.isdigit() for ch in group):
        return {g for g in group.split(SEPARATOR) if g}
    return set(group)


def share_letter(a: str, b: str) -> bool:
    """Whether two group labels share a letter (the methods are not significantly different)."""
    return bool(letter_set(a) & letter_set(b))


def letters(order: list, significant: np.ndarray) -> dict:
    """`order`: methods best first; `significant[a, b]` True when methods order[a] and order[b]
    differ. Returns {method: letters}; letters are assigned in the order of the best method
    of each group, so the best group is 'a'."""
    k = len(order)
    sig = np.asarray(significant, dtype=bool)
    cols: list[np.ndarray] = [np.ones(k, dtype=bool)]
    for a in range(k):
        for b in range(a + 1, k):
            if not (sig[a, b] or sig[b, a]):
                continue
            new: list[np.ndarray] = []
            for col in cols:
                if col[a] and col[b]:
                    c1 = col.copy(); c1[b] = False
                    c2 = col.copy(); c2[a] = False
                    new.extend([c1, c2])
                else:
                    new.append(col)
            cols = _absorb(new)
    # Letters follow the best member of each column, so the top group reads 'a'.
    cols.sort(key=lambda c: (int(np.argmax(c)), -int(c.sum())))
    labels: dict = {m: [] for m in order}
    for j, col in enumerate(cols):
        for i in np.flatnonzero(col):
            labels[order[i]].append(_letter(j))
    sep = SEPARATOR if len(cols) > len(ALPHABET) else ""
    return {m: sep.join(v) for m, v in labels.items()}


def _absorb(cols: list[np.ndarray]) -> list[np.ndarray]:
    """Drop columns contained in another column (and duplicates)."""
    keep: list[np.ndarray] = []
    cols = sorted(cols, key=lambda c: -int(c.sum()))
    for c in cols:
        if not c.any():
            continue
        if any(np.all(c <= other) for other in keep):
            continue
        keep.append(c)
    return keep
