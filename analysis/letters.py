"""Compact letter display by Piepho's insert-absorb algorithm (Piepho 2004, J. Comput. Graph.
Stat. 13(2)): methods sharing a letter are not significantly different."""

from __future__ import annotations

import string

import numpy as np


def _letter(k: int) -> str:
    alphabet = string.ascii_lowercase
    if k < 26:
        return alphabet[k]
    out = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        out = alphabet[r] + out
    return out


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
    out = {m: "" for m in order}
    for j, col in enumerate(cols):
        for i in np.flatnonzero(col):
            out[order[i]] += _letter(j)
    return out


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
