"""Loading and validating ratings as a tidy table.

The tidy table has one row per rating with columns ``image, method, worker, score`` and the
optional flags ``valid`` (False = excluded by quality control upstream) and ``gold`` (a gold item
with a known answer; kept out of the MOS). For gold rows, ``gold_correct`` (bool), ``expected``
(the known answer) or ``expected_min``/``expected_max`` (the accepted range) may be given;
without any, the scale's best value is taken as the answer.

Any CSV whose columns can be mapped onto these works, including an MTurk batch-results file
(``WorkerId``, ``Input.image``, ``Answer.rating``..., or the wide form ``Input.image_1``,
``Input.method_1``, ``Answer.rating_1``, ... with one row per assignment).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.scale import Scale

REQUIRED = ("image", "method", "worker", "score")
OPTIONAL = ("valid", "gold", "gold_correct", "expected", "expected_min", "expected_max")

# Names seen in the wild for each column, tried in order (case-insensitive).
ALIASES: dict[str, tuple[str, ...]] = {
    "image": ("image", "image_id", "content", "src", "source", "stimulus", "Input.image",
              "Input.image_id", "Input.content"),
    "method": ("method", "condition", "hrc", "system", "algorithm", "Input.method",
               "Input.condition"),
    "worker": ("worker", "worker_id", "WorkerId", "subject", "rater", "participant"),
    "score": ("score", "rating", "opinion", "vote", "Answer.rating", "Answer.score"),
    "valid": ("valid",),
    "gold": ("gold", "is_gold", "Input.gold"),
    "gold_correct": ("gold_correct",),
    "expected": ("expected", "gold_expected", "Input.expected"),
    "expected_min": ("expected_min",),
    "expected_max": ("expected_max",),
}


class RatingsError(ValueError):
    """A problem with the ratings a user supplied: what is wrong, where, and what to do."""

    def __init__(self, message: str, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        parts = [self.message]
        if self.where:
            parts.append(f"where: {self.where}")
        if self.hint:
            parts.append(f"fix: {self.hint}")
        return "; ".join(parts)


def parse_column_map(text: str | None) -> dict[str, str]:
    """'image=Input.img,score=Answer.q' -> {'image': 'Input.img', 'score': 'Answer.q'}."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise RatingsError(f"cannot read column mapping {part!r}", where="--columns",
                               hint="write NAME=CSV_COLUMN pairs, e.g. image=Input.img,score=Answer.q")
        key, col = (s.strip() for s in part.split("=", 1))
        if key not in REQUIRED + OPTIONAL:
            raise RatingsError(f"unknown column name {key!r} in the mapping", where="--columns",
                               hint="names are: " + ", ".join(REQUIRED + OPTIONAL))
        out[key] = col
    return out


def read_ratings(path: str | Path, columns: dict[str, str] | None = None,
                 scale: Scale | None = None) -> pd.DataFrame:
    """Read a ratings CSV and return the validated tidy table."""
    path = Path(path)
    if not path.is_file():
        raise RatingsError(f"ratings file not found: {path}", where=str(path),
                           hint="give the path of a CSV file with one rating per row")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RatingsError(f"cannot read {path.name} as CSV: {exc}", where=str(path),
                           hint="save the ratings as a comma-separated file with a header row")
    return tidy(raw, columns=columns, scale=scale, source=str(path))


def _find(raw_cols: list[str], name: str, columns: dict[str, str]) -> str | None:
    if name in columns:
        return columns[name]
    lower = {c.lower(): c for c in raw_cols}
    for alias in ALIASES[name]:
        if alias.lower() in lower:
            return lower[alias.lower()]
    return None


_WIDE = re.compile(r"^(?:input\.|answer\.)?(image|image_id|method|rating|score|gold|expected)_(\d+)$",
                   re.IGNORECASE)


def _melt_wide(raw: pd.DataFrame) -> pd.DataFrame | None:
    """MTurk batch results with several items per assignment: Input.image_1, Input.method_1,
    Answer.rating_1, ... -> one row per rating. None when the table is not in that form."""
    groups: dict[str, dict[str, str]] = {}
    for col in raw.columns:
        m = _WIDE.match(col)
        if m:
            kind = m.group(1).lower()
            kind = {"image_id": "image", "rating": "score"}.get(kind, kind)
            groups.setdefault(m.group(2), {})[kind] = col
    positions = [p for p, g in groups.items() if {"image", "method", "score"} <= set(g)]
    if not positions:
        return None
    worker = _find(list(raw.columns), "worker", {})
    if worker is None:
        return None
    status = next((c for c in raw.columns if c.lower() == "assignmentstatus"), None)
    frames = []
    for p in sorted(positions, key=int):
        g = groups[p]
        part = pd.DataFrame({"image": raw[g["image"]], "method": raw[g["method"]],
                             "worker": raw[worker], "score": raw[g["score"]]})
        for flag in ("gold", "expected"):
            if flag in g:
                part[flag] = raw[g[flag]]
        if status is not None:
            part["valid"] = raw[status].str.lower().ne("rejected")
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n", ""}


def _to_bool(series: pd.Series, name: str, source: str) -> pd.Series:
    if series.dtype == bool:
        return series
    s = series.astype(str).str.strip().str.lower()
    bad = ~s.isin(_TRUE | _FALSE)
    if bad.any():
        rows = _rows(bad)
        raise RatingsError(f"column {name!r} must be true/false, found {series[bad].iloc[0]!r}",
                           where=f"{source}, rows {rows}", hint="use true/false or 1/0")
    return s.isin(_TRUE)


def _rows(mask: pd.Series, limit: int = 5) -> str:
    # Data rows as a spreadsheet shows them: header is line 1.
    idx = np.flatnonzero(np.asarray(mask))
    shown = ", ".join(str(i + 2) for i in idx[:limit])
    return shown + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def tidy(raw: pd.DataFrame, columns: dict[str, str] | None = None, scale: Scale | None = None,
         source: str = "ratings") -> pd.DataFrame:
    """Map column names, check every rating and return the tidy table.

    Raises RatingsError naming the problem, the rows, and the fix: missing columns, empty
    identifiers, non-numeric scores, scores outside the scale."""
    columns = dict(columns or {})
    raw_cols = [str(c) for c in raw.columns]
    missing_mapped = [f"{k}={v}" for k, v in columns.items() if v not in raw_cols]
    if missing_mapped:
        raise RatingsError(f"mapped column(s) not in the file: {', '.join(missing_mapped)}",
                           where=source, hint="columns in the file: " + ", ".join(raw_cols[:30]))
    found = {name: _find(raw_cols, name, columns) for name in REQUIRED + OPTIONAL}
    if any(found[n] is None for n in REQUIRED) and not columns:
        wide = _melt_wide(raw)
        if wide is not None:
            raw, raw_cols = wide, list(wide.columns)
            found = {name: _find(raw_cols, name, {}) for name in REQUIRED + OPTIONAL}
    missing = [n for n in REQUIRED if found[n] is None]
    if missing:
        raise RatingsError(
            f"missing column(s): {', '.join(missing)}", where=source,
            hint="columns in the file: " + ", ".join(raw_cols[:30])
                 + "; map them with --columns " + ",".join(f"{n}=COLUMN" for n in missing))

    out = pd.DataFrame({n: raw[found[n]] for n in REQUIRED})
    for n in ("image", "method", "worker"):
        out[n] = out[n].astype(str).str.strip()
        empty = out[n].eq("") | out[n].str.lower().isin({"nan", "none"})
        if empty.any():
            raise RatingsError(f"empty {n} in {int(empty.sum())} row(s)", where=f"{source}, rows {_rows(empty)}",
                               hint=f"every rating needs its {n}; remove or fill those rows")
    if len(out) == 0:
        raise RatingsError("no ratings in the table", where=source, hint="the file has a header but no rows")

    score_raw = out["score"]
    score = pd.to_numeric(score_raw, errors="coerce")
    bad = score.isna() | ~np.isfinite(score.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        example = score_raw[bad].iloc[0]
        raise RatingsError(f"score is not a number in {int(bad.sum())} row(s), e.g. {example!r}",
                           where=f"{source}, column {found['score']!r}, rows {_rows(bad)}",
                           hint="scores must be numbers on the rating scale; fix or remove those rows")
    out["score"] = score.astype(float)
    if scale is not None:
        outside = ~scale.contains(out["score"].to_numpy())
        if outside.any():
            example = out["score"][outside].iloc[0]
            raise RatingsError(
                f"{int(outside.sum())} score(s) outside the scale {scale.spec}, e.g. {example:g}",
                where=f"{source}, column {found['score']!r}, rows {_rows(pd.Series(outside))}",
                hint="give the right scale, e.g. --scale 1..5 for ACR data or --scale 0..4")

    for flag in ("valid", "gold", "gold_correct"):
        if found[flag] is not None:
            out[flag] = _to_bool(raw[found[flag]].reset_index(drop=True), flag, source).to_numpy()
    for name in ("expected", "expected_min", "expected_max"):
        if found[name] is not None:
            out[name] = pd.to_numeric(raw[found[name]], errors="coerce").to_numpy()
    if "valid" not in out:
        out["valid"] = True
    if "gold" not in out:
        out["gold"] = False
    return out.reset_index(drop=True)


def validate(df: pd.DataFrame, scale: Scale | None = None) -> pd.DataFrame:
    """Check a tidy table built in code (columns already named) and fill default flags."""
    missing = [n for n in REQUIRED if n not in df.columns]
    if missing:
        raise RatingsError(f"missing column(s): {', '.join(missing)}", where="ratings table",
                           hint="the table needs columns image, method, worker, score")
    if (df["valid"].dtype == bool if "valid" in df else True) and \
            (df["gold"].dtype == bool if "gold" in df else True) and \
            pd.api.types.is_float_dtype(df["score"]) and \
            all(df[c].dtype == object or pd.api.types.is_string_dtype(df[c]) for c in ("image", "method", "worker")):
        out = df.copy()
        if "valid" not in out:
            out["valid"] = True
        if "gold" not in out:
            out["gold"] = False
        if len(out) == 0:
            raise RatingsError("no ratings in the table", where="ratings table")
        if out["score"].isna().any():
            raise RatingsError("score is missing in some rows", where="ratings table")
        if scale is not None and not scale.contains(out["score"].to_numpy()).all():
            return tidy(df, scale=scale)  # for the detailed message
        return out
    return tidy(df, scale=scale)
