"""Values made safe for JSON: NaN and infinity become null, numpy scalars plain Python."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def clean(value):
    """JSON-safe value: NaN/inf -> None, numpy -> Python, recursing into dicts and lists."""
    if value is None:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    return value
