"""Which (method, image) pairs this run renders.

Work is the list of (method, image) pairs, methods in study.toml order and images in study
order; `--shard K/N` takes every N-th pair starting at the K-th, so N processes (or torchrun
ranks) cover the list exactly once. Done pairs (a 'done' row in `renders` and its file) are
skipped unless --force.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from study import store
from study.errors import StudyError
from study.render.plugins import method_specs
from study.studydir import Study


@dataclass(frozen=True)
class Work:
    method: str
    image_id: str


def choose_methods(study: Study, methods: list[str] | None) -> tuple[list[str], dict]:
    """The methods to render (the given ones, or every configured one) and every method's spec."""
    specs = method_specs(study)
    names = list(specs) if not methods else list(dict.fromkeys(methods))
    unknown = [m for m in names if m not in specs]
    if unknown:
        raise StudyError(f"unknown method(s): {', '.join(unknown)}", where="--methods",
                         hint=f"configured in study.toml: {', '.join(specs) or 'none'}")
    if not names:
        raise StudyError("study.toml declares no methods", where=str(study.root / "study.toml"),
                         hint="add a [methods.NAME] table")
    return names, specs


def work_list(methods: list[str], image_ids: list[str]) -> list[Work]:
    return [Work(m, i) for m in methods for i in image_ids]


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise StudyError(f"--shard {text!r} is not of the form K/N", where="--shard",
                         hint="for example --shard 1/4 ... --shard 4/4") from None
    if n < 1 or not 1 <= k <= n:
        raise StudyError(f"--shard {text}: K must be between 1 and N", where="--shard",
                         hint="shards are numbered from 1: --shard 1/2 and --shard 2/2")
    return k, n


def shard_from_env(env: dict[str, str] | None = None) -> tuple[int, int] | None:
    """The shard torchrun's RANK and WORLD_SIZE pick (1-based), or None outside torchrun."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    except ValueError:
        return None
    if world < 1 or not 0 <= rank < world:
        return None
    return rank + 1, world


def take_shard(items: list[Work], k: int, n: int) -> list[Work]:
    # Round robin, so an expensive method is spread over every shard.
    return items[k - 1::n]


def done_pairs(conn, study: Study) -> set[tuple[str, str]]:
    """(method, image_id) of every output recorded as done whose file is still there."""
    return {(r["method"], r["image_id"]) for r in store.done_renders(conn)
            if r["path"] and study.resolve(r["path"]).is_file()}


def left_to_do(mine: list[Work], done: set[tuple[str, str]]) -> list[Work]:
    return [w for w in mine if (w.method, w.image_id) not in done]
