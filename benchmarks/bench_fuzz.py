"""The Requester API fuzz (tests/test_marketplace_fuzz.py) with a long budget: inputs from
botocore's model plus hostile values, over real HTTP; the figure is the number of server errors
and refusals that changed stored data (both must be 0), with the examples tried."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(quick: bool = False) -> list[dict]:
    examples = 25 if quick else 400
    env = dict(os.environ, STUDY_FUZZ_EXAMPLES=str(examples), PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "test_marketplace_fuzz.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    passed = int((re.search(r"(\d+) passed", proc.stdout) or [0, 0])[1])
    failed = int((re.search(r"(\d+) failed", proc.stdout) or [0, 0])[1])
    return [
        {"benchmark": "fuzz", "figure": f"Requester API fuzz: operations without a 5xx or a "
                                        f"changing refusal ({examples} inputs each)",
         "value": passed, "unit": "operations", "reference": passed + failed,
         "ratio": passed / max(1, passed + failed)},
        {"benchmark": "fuzz", "figure": "Requester API fuzz: operations that failed",
         "value": failed, "unit": "operations"},
        {"benchmark": "fuzz", "figure": "Requester API fuzz: seconds", "value": seconds,
         "unit": "s"},
    ]
