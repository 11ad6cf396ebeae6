"""MTurk-looking identifiers: 30 upper-case letters and digits, worker ids starting with 'A'."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import secrets

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
WORKER_ID_RE = re.compile(r"^A[A-Z0-9]{1,63}$")


def new_id(first: str = "3", length: int = 30) -> str:
    """A random id from the system's secure source: one read for the whole id (a read per
    character cost a third of a CreateHIT). Bytes past the largest multiple of 36 are dropped,
    so every character stays equally likely."""
    need = length - 1
    chars: list[str] = []
    while len(chars) < need:
        chars += [_ALPHABET[b % 36] for b in secrets.token_bytes(need + 8) if b < 252]
    return first + "".join(chars[:need])


@functools.lru_cache(maxsize=4096)
def group_id_for(realm: str, hit_type_id: str) -> str:
    """The HITGroupId of a HIT type: an id of its own (MTurk's differed from the HITTypeId),
    the same every time, so it needs no storage."""
    digest = int.from_bytes(hashlib.sha256(f"group/{realm}/{hit_type_id}".encode()).digest(),
                            "big")
    chars = []
    for _ in range(29):
        digest, i = divmod(digest, len(_ALPHABET))
        chars.append(_ALPHABET[i])
    return "3" + "".join(chars)


def worker_id_for(name: str) -> str:
    """The WorkerId for a name typed at the sandbox sign-in (or an outside participant id).

    An id already in MTurk's form (A followed by upper-case letters and digits) is kept as is;
    anything else maps deterministically to one: 'A' + its letters and digits in upper case +
    8 characters of a hash, so different names never share a WorkerId.
    """
    name = (name or "").strip()
    if not name:
        raise ValueError("empty worker id")
    if WORKER_ID_RE.match(name):
        return name
    cleaned = re.sub(r"[^A-Z0-9]", "", name.upper())[:40]
    digest = base64.b32encode(hashlib.sha256(name.encode("utf-8")).digest()).decode()[:8]
    return "A" + cleaned + digest


class SeededIds:
    """New ids from a seeded stream, for a simulation that must give the same ids (and so the
    same choice of HIT for each worker) every time it runs. Thread-safe."""

    def __init__(self, seed: int | str):
        import random
        import threading

        self._rng = random.Random(f"marketplace-ids:{seed}")
        self._lock = threading.Lock()

    def __call__(self, first: str = "3", length: int = 30) -> str:
        with self._lock:
            return first + "".join(self._rng.choice(_ALPHABET) for _ in range(length - 1))
