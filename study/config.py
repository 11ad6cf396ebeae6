"""`study.toml`: the commented template every study starts from, and the typed settings it is
read into, once.

The template is the single source of defaults: a setting documented there is exactly the setting the
code falls back to. Each section is read into a frozen dataclass whose fields are the template's
keys (a test keeps the two in step); unknown keys, wrong types and values out of range or outside
their choices are all reported at once, each naming the setting. Stages receive the sections they
use; no module but this one reads study.toml.

Over 500 lines on purpose: about 230 of them are the commented template, kept beside the typed
sections it must match.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from analysis.scale import Scale
from study import methods as test_methods
from study.errors import StudyError

# Placeholders in {{ }} are filled by `render_template`; everything else is literal TOML.
TEMPLATE = """\
# study.toml — every setting of every stage, with its default.
# Edit this file to change the study; `study status` shows what each stage has done.

[study]
name = {{name}}
# Seed for every random choice (image selection, HIT design, bootstrap): same seed, same study.
seed = {{seed}}

[dataset]
# The test set: an EBB!-style folder (<root>/<split>/original|bokeh|original_depth), the AIM 2020
# release, or a manifest CSV (image_id,input,reference[,depth]; paths relative to the CSV).
path = {{dataset_path}}
# "auto", "ebb", "aim2020" or "manifest".
layout = {{layout}}
# Sub-folder of an EBB!/AIM release that holds the pairs ("" when the root itself holds them).
split = {{split}}
# Image ids in the study (the paper used 10 full-resolution test images).
images = {{images}}
# Refuse images above this many pixels (decompression bombs).
max_pixels = 50000000

[render]
# "auto" uses CUDA when present and the CPU otherwise; "cpu" or "cuda" force one.
device = "auto"
# Half-precision autocast on the GPU (python-kind models only).
fp16 = false
# Tile size in pixels for models that run out of memory (0 = the whole image at once).
tile = 0
tile_overlap = 32
# A method call taking longer than this (seconds, per image) is marked failed.
timeout_s = 600
# Pixels cropped from every border before PSNR/SSIM (the AIM 2019 organisers cropped 32).
border_crop = 0

# Methods: one [methods.NAME] table each. kind = "builtin" | "python" | "command" | "folder".
#   builtin: builtin = "input" | "reference" | "gaussian" | "depth-blend" | "scatter",
#            params = { ... } (e.g. sigma for gaussian; K, gamma, max_radius for scatter)
#   python:  entry = "module:callable" (a factory called with params, or the image function
#            itself), weights = "path" (state dict, TorchScript or torch.export .pt2),
#            pythonpath = "folder to import from" (relative to the study), needs_depth = true|false
#   command: command = "prog {input_dir} {output_dir}"; placeholders {input_dir} {output_dir}
#            {depth_dir} {python} {study_dir} {device}; batch = true runs once over all images
#   folder:  path = "folder of <image_id>.png results"
#   Any kind may set timeout_s (seconds per image) to override render.timeout_s.
# The factsheet (team, author, framework, hardware, runtime_s) goes into the ranking table.
[methods.input]
kind = "builtin"
builtin = "input"
team = "f/16 input"
author = "-"
framework = "-"
hardware = "-"

[methods.gaussian]
kind = "builtin"
builtin = "gaussian"
team = "Gaussian blur"
author = "baseline"
framework = "PyTorch"
hardware = "CPU"

[methods.depth-blend]
kind = "builtin"
builtin = "depth-blend"
team = "Depth blend"
author = "baseline"
framework = "PyTorch"
hardware = "CPU"

[methods.scatter]
kind = "builtin"
builtin = "scatter"
team = "Scatter"
author = "baseline"
framework = "PyTorch"
hardware = "CPU"

[methods.reference]
kind = "builtin"
builtin = "reference"
team = "f/1.8 reference"
author = "-"
framework = "-"
hardware = "-"

[design]
# The test method: "similarity-0-4" (AIM 2019: each output against the reference, 0 almost
# identical .. 4 mostly different, on the [scale] below), "acr" (each output alone, 1 bad ..
# 5 excellent), "dcr" (the reference then the output, 1 very annoying .. 5 imperceptible),
# "ccr" (both in random order, -3 much worse .. +3 much better) or "pairwise" (the reference and
# two outputs: which is closer). The ITU-T methods use their standard's scale, and their own
# gold expectations (README "Test methods"); say what the method asks in [hit] title.
method = "similarity-0-4"
# Pairwise only: which pairs of methods each image is judged on. "all": every pair of the
# methods above. "neighbours": a follow-up round after a rating study, only the methods next to
# each other in its ranking that its verdict left undecided (read from pairs_from, the rating
# study's reports/report.json); docs/pairwise.md.
pairs = "all"
pairs_from = ""
# Items (image x method) per HIT, and valid ratings wanted per item.
items_per_hit = 10
ratings_per_item = 5
# How the ratings are spent. "uniform": every item gets ratings_per_item at once. "adaptive":
# publish asks for initial_ratings_per_item, and each `study collect` round adds ratings only to
# the items of method pairs whose verdict is still undecided, up to ratings_per_item; it stops
# when every pair is decided, target_se is met or the budget is spent (docs/allocation.md).
allocation = "uniform"
initial_ratings_per_item = 3
# Adaptive only: stop once every adjacent difference has at most this standard error (0 = none).
target_se = 0.0
# Gold items in every HIT: the reference against itself (expected 0 or 1; ACR and DCR 4 or 5,
# CCR -1 to +1; not in a pairwise study, whose two gold pairs show the reference against the
# control below) ...
gold_reference = true
# ... and this method's output against the reference (expected at the worse three levels,
# 2 to 4 on the default scale; DCR 1 to 3, CCR -3 to -1; ACR, without the reference, has no
# such check); "" for none.
gold_control_method = "input"
# Test items shown twice in each HIT, for test-retest consistency (0 = none). The second
# rating judges the worker and is left out of the analysis.
repeats_per_hit = 0
# Seed of the HIT design; leave it out to use study.seed.
# seed = 0

[scale]
# The rating scale: its lowest value, the words of each level (one per level, in order), and which
# end is better. The default is the AIM 2019 similarity scale (0 almost identical .. 4 mostly
# different, lower is better). It applies to design.method = "similarity-0-4"; the other
# methods use their standard's scale.
low = 0
labels = ["almost identical", "mostly similar", "similar", "somewhat similar", "mostly different"]
higher_is_better = false

[hit]
# The HIT's title and description; "" for the test method's own (design.method), e.g.
# "Rate how similar two photos look" for similarity-0-4 (README "Test methods").
title = ""
description = ""
keywords = "image, photo, rating, comparison, bokeh"
# Reward per assignment in USD, as MTurk writes it.
reward = "0.50"
assignment_duration_s = 1800
lifetime_s = 604800
auto_approval_delay_s = 259200
# Expected time a worker spends on one HIT: the plan shows the hourly pay it implies.
expected_seconds_per_hit = 180
# "html" (HTMLQuestion, images by URL) or "external" (pages served by `study serve`).
question = "html"
# At most this many HITs per worker (enforced with the study's qualification).
max_hits_per_worker = 20
# The smallest browser window (CSS pixels) the rating page accepts ratings in; a smaller one is
# told so at preview. 360 x 560 lets phones rate; raise it to refuse them.
min_screen_width = 360
min_screen_height = 560

[hit.requirements]
# Requirements for the live realm; the sandbox realm has no worker history, so they are not applied there.
min_approval_rate = 95
min_approved_hits = 100
# Worker locales allowed (ISO 3166 country codes); [] allows every locale.
locales = []

[marketplace]
# "embedded" is the bundled MTurk-compatible marketplace; "aws" is Amazon's endpoints (chosen by
# realm); any other value is the URL of an MTurk-compatible Requester API, where "{realm}" is
# replaced by "sandbox" or "live". Credentials for those come from the usual AWS configuration.
endpoint = "embedded"
region = "us-east-1"
aws_profile = ""

[hosting]
# "service": images served by `study serve` at base_url; "s3": uploaded to an S3 bucket.
mode = "service"
base_url = "http://127.0.0.1:{{port}}"
s3_bucket = ""
s3_prefix = "study-images/"
s3_endpoint_url = ""
# Lifetime of the presigned image links in seconds (at most 604800, 7 days); 0 hands out plain
# URLs, for a public bucket.
s3_presign_seconds = 604800
# The one format every image is shown in, the reference included: "jpeg" (no chroma
# subsampling, at image_quality: 90 sends 0.29 of the renders' PNG bytes at >= 45 dB PSNR, 95
# sends 0.40 at >= 49 dB), "webp" (lossless: 1.0) or "png" (lossless: 1.5).
image_format = "jpeg"
image_quality = 90

[budget]
# Publication refuses a plan whose cost (rewards + marketplace fees) exceeds this, in USD.
max_usd = 200.0

[quality]
# An assignment whose gold accuracy is below this is excluded from the analysis (one check pair
# of two missed is not enough: real subjects, biased by half a level, miss one now and then) ...
gold_min_accuracy = 0.5
# ... and rejected (with this written reason) only below this clear-failure threshold.
reject_below_gold_accuracy = 0.25
# Assignments faster than this per item are flagged as too fast.
min_seconds_per_item = 2.0
# Ratings whose variance across a HIT's items is below this are straight-lining (ITU-T P.808).
straightline_var = 0.1
# Minimum Pearson correlation with the consensus so far for an assignment to count.
consensus_min_corr = 0.0
# Most an assignment's ratings may stray from the consensus so far (RMS in scale levels, after
# the worker's own offset; measured once 5 of its items have a consensus). Real subjects stray
# about 0.6, up to 1.2 against an early consensus of a few ratings; uniform spammers about 1.8.
max_inconsistency = 1.5
# Most two ratings of a repeated pair (design.repeats_per_hit) may differ, in levels.
repeat_max_difference = 2
# Workers with this many failed assignments are blocked.
block_after_failures = 2
# Exclude (not reject) an assignment that rated a pair the page never showed at 1:1 (one image
# pixel per screen pixel) or closer: the page opens every pair at 1:1 and records its largest
# zoom, so such a pair was judged from a downscaled overview ("whole photo"), where the details
# that set methods apart are lost. Pages that send no viewing record are not judged by it.
require_native_view = true
# Bonus per approved assignment in USD (0 = none), and the reason the worker sees.
bonus_usd = 0.0
bonus_reason = "Thank you for careful ratings."
# Attention checks per HIT (0 = none): a pair whose processed photo carries a written
# instruction in its pixels ("Quality check: select '2 similar' for this pair"), at a level
# drawn per check from the method's scale. The page source cannot tell it from a test pair; an assignment that does not
# follow it is excluded from the analysis (paid: doubt is not proof).
traps_per_hit = 0
# A bonus in USD (0 = none) for each approved assignment whose test ratings agree with the
# other workers': mean absolute deviation from their item means at most
# agreement_max_deviation levels, judged once every rated item has agreement_min_others other
# ratings. Paid once per assignment, with this reason (after "Agreement bonus: ").
agreement_bonus_usd = 0.0
agreement_max_deviation = 0.75
agreement_min_others = 2
agreement_bonus_reason = "Your ratings agreed closely with the other raters'."

[qualification]
# A qualification HIT that the rating HITs require: training pairs that show what the two ends
# of the scale look like (the study's own reference against itself, and against the gold
# control method), with feedback after each answer, then test pairs graded by `study collect`.
# Workers who get at least pass_mark of them right receive the study's qualification
# (IntegerValue = their score) and may then take rating HITs. Off by default. It needs
# design.gold_control_method and a method that shows the reference (not acr or pairwise); turn it
# on before the first `study publish` (what is published stays).
enabled = false
test_pairs = 6
pass_mark = 5
# Reward of the qualification HIT (every worker who submits it is paid), and how many workers
# may take it.
reward = "0.10"
max_workers = 50
title = "Training and qualification: rate how similar two photos look"

[report]
formats = ["md", "html", "csv", "tex", "json"]
bootstrap = 2000
alpha = 0.05
# Multiple-comparison correction for pairwise tests: "holm" or "bh".
correction = "holm"

[serve]
host = "127.0.0.1"
# Each study gets its own free port at `study init`; hosting.base_url must match it.
port = {{port}}
# Token for the requester dashboard; "" makes a random one at every start. It is written to
# .dashboard-token (readable by you alone) and printed only on a terminal, never into a log.
dashboard_token = ""
# true when a TLS reverse proxy (README: "On the open internet") forwards to this service: its
# X-Forwarded-* headers are trusted and cookies are sent over HTTPS only.
behind_tls_proxy = false
"""


DEFAULT_PORT = 8765


def render_template(name: str, seed: int, dataset_path: str, layout: str, split: str,
                    images: list[str], port: int = DEFAULT_PORT) -> str:
    values = {
        "name": json.dumps(name),
        "seed": str(int(seed)),
        "dataset_path": json.dumps(dataset_path),
        "layout": json.dumps(layout),
        "split": json.dumps(split),
        "images": json.dumps([str(i) for i in images]),
        "port": str(int(port)),
    }
    text = TEMPLATE
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def defaults() -> dict[str, Any]:
    return tomllib.loads(render_template("study", 0, "", "auto", "", []))


# ---------------------------------------------------------------- typed settings

def _opt(*, choices: tuple = (), lo: float | None = None, hi: float | None = None,
         lo_open: bool = False, nonempty: bool = False, default: Any = dataclasses.MISSING):
    """A field with its allowed values: `choices`, a range [lo, hi] (lo excluded when
    `lo_open`), or non-empty text."""
    meta = {"choices": choices, "lo": lo, "hi": hi, "lo_open": lo_open, "nonempty": nonempty}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class StudySection:
    name: str = _opt(nonempty=True)
    seed: int = _opt(lo=0)


@dataclass(frozen=True)
class DatasetSection:
    path: str
    layout: str = _opt(choices=("auto", "ebb", "aim2020", "manifest"))
    split: str
    images: tuple[str, ...]
    max_pixels: int = _opt(lo=1)


@dataclass(frozen=True)
class RenderSection:
    device: str = _opt(choices=("auto", "cpu", "cuda"))
    fp16: bool
    tile: int = _opt(lo=0)
    tile_overlap: int = _opt(lo=0)
    timeout_s: float = _opt(lo=0, lo_open=True)
    border_crop: int = _opt(lo=0)


@dataclass(frozen=True)
class DesignSection:
    method: str = _opt(choices=test_methods.NAMES)
    pairs: str = _opt(choices=("all", "neighbours"))
    pairs_from: str
    items_per_hit: int = _opt(lo=1, hi=500)
    ratings_per_item: int = _opt(lo=1, hi=1000)
    allocation: str = _opt(choices=("uniform", "adaptive"))
    initial_ratings_per_item: int = _opt(lo=1, hi=1000)
    target_se: float = _opt(lo=0)
    gold_reference: bool
    gold_control_method: str
    repeats_per_hit: int = _opt(lo=0, hi=5)
    # Left out of the template on purpose: study.seed is used then.
    seed: int | None = _opt(lo=0, default=None)


@dataclass(frozen=True)
class ScaleSection:
    low: int
    labels: tuple[str, ...]
    higher_is_better: bool

    def scale(self) -> Scale:
        return Scale(self.low, self.low + len(self.labels) - 1, self.higher_is_better,
                     labels=self.labels)


@dataclass(frozen=True)
class Requirements:
    min_approval_rate: int = _opt(lo=0, hi=100)
    min_approved_hits: int = _opt(lo=0)
    locales: tuple[str, ...]


@dataclass(frozen=True)
class HitSection:
    # "" for the test method's own (study.methods.hit_text).
    title: str
    description: str
    keywords: str
    # MTurk's limits on these durations.
    reward: Decimal = _opt(lo=0, lo_open=True, hi=1000)
    assignment_duration_s: int = _opt(lo=30, hi=31536000)
    lifetime_s: int = _opt(lo=30, hi=31536000)
    auto_approval_delay_s: int = _opt(lo=0, hi=2592000)
    expected_seconds_per_hit: int = _opt(lo=1)
    question: str = _opt(choices=("html", "external"))
    max_hits_per_worker: int = _opt(lo=0)
    min_screen_width: int = _opt(lo=0, hi=10000)
    min_screen_height: int = _opt(lo=0, hi=10000)
    requirements: Requirements


@dataclass(frozen=True)
class MarketplaceSection:
    endpoint: str = _opt(nonempty=True)
    region: str = _opt(nonempty=True)
    aws_profile: str


@dataclass(frozen=True)
class HostingSection:
    mode: str = _opt(choices=("service", "s3"))
    base_url: str
    s3_bucket: str
    s3_prefix: str
    s3_endpoint_url: str
    s3_presign_seconds: int = _opt(lo=0, hi=604800)
    image_format: str = _opt(choices=("jpeg", "webp", "png"))
    image_quality: int = _opt(lo=50, hi=100)


@dataclass(frozen=True)
class BudgetSection:
    max_usd: Decimal = _opt(lo=0)


@dataclass(frozen=True)
class QualitySection:
    gold_min_accuracy: float = _opt(lo=0, hi=1)
    reject_below_gold_accuracy: float = _opt(lo=0, hi=1)
    min_seconds_per_item: float = _opt(lo=0)
    straightline_var: float = _opt(lo=0)
    consensus_min_corr: float = _opt(lo=-1, hi=1)
    max_inconsistency: float = _opt(lo=0, lo_open=True)
    repeat_max_difference: int = _opt(lo=0)
    block_after_failures: int = _opt(lo=0)
    require_native_view: bool
    bonus_usd: Decimal = _opt(lo=0, hi=1000)
    bonus_reason: str
    traps_per_hit: int = _opt(lo=0, hi=5)
    agreement_bonus_usd: Decimal = _opt(lo=0, hi=1000)
    agreement_max_deviation: float = _opt(lo=0, lo_open=True)
    agreement_min_others: int = _opt(lo=1)
    agreement_bonus_reason: str


@dataclass(frozen=True)
class QualificationSection:
    enabled: bool
    test_pairs: int = _opt(lo=1, hi=40)
    pass_mark: int = _opt(lo=0, hi=40)
    reward: Decimal = _opt(lo=0, lo_open=True, hi=1000)
    max_workers: int = _opt(lo=1, hi=1000000)
    title: str = _opt(nonempty=True)


REPORT_FORMATS = ("md", "html", "csv", "tex", "json")


@dataclass(frozen=True)
class ReportSection:
    formats: tuple[str, ...] = _opt(choices=REPORT_FORMATS)
    bootstrap: int = _opt(lo=0, hi=1_000_000)
    alpha: float = _opt(lo=0, lo_open=True, hi=0.5)
    correction: str = _opt(choices=("holm", "bh"))


@dataclass(frozen=True)
class ServeSection:
    host: str = _opt(nonempty=True)
    port: int = _opt(lo=1, hi=65535)
    dashboard_token: str
    behind_tls_proxy: bool


@dataclass(frozen=True)
class Settings:
    """Every setting of a study, typed and checked; read once from study.toml."""
    study: StudySection
    dataset: DatasetSection
    render: RenderSection
    design: DesignSection
    scale: ScaleSection
    hit: HitSection
    marketplace: MarketplaceSection
    hosting: HostingSection
    budget: BudgetSection
    quality: QualitySection
    qualification: QualificationSection
    report: ReportSection
    serve: ServeSection
    # One table per method; each kind's keys are checked by the renderer's plug-in loader.
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def design_seed(self) -> int:
        return self.study.seed if self.design.seed is None else self.design.seed


METHOD_KINDS = ("builtin", "python", "command", "folder")


def _describe(tp: Any) -> str:
    if tp is Decimal:
        return 'an amount like "0.50"'
    if typing.get_origin(tp) is tuple:
        return "a list of strings"
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return _describe(next(a for a in typing.get_args(tp) if a is not type(None)))
    return {bool: "true or false", int: "a whole number", float: "a number",
            str: "a string"}.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(tp: Any, value: Any) -> Any:
    """`value` as type `tp`, or raise ValueError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in typing.get_args(tp) if a is not type(None))
        return None if value is None else _convert(inner, value)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError
        return tuple(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise ValueError
        return float(value)
    if tp is Decimal:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError from None
        if not amount.is_finite():
            raise ValueError
        return amount
    if tp is str:
        if not isinstance(value, str):
            raise ValueError
        return value
    raise TypeError(tp)


def _check_value(name: str, value: Any, meta: dict, where: str) -> StudyError | None:
    choices = meta.get("choices") or ()
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if choices and v not in choices:
            close = difflib.get_close_matches(str(v), [str(c) for c in choices], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            return StudyError(f"setting {name} = {json.dumps(v)} is not one of "
                              + ", ".join(json.dumps(c) for c in choices), where=where,
                              hint=hint + "use one of the values listed")
    lo, hi = meta.get("lo"), meta.get("hi")
    if value is not None and (lo is not None or hi is not None) and not isinstance(value, tuple):
        low_bad = lo is not None and (value <= lo if meta.get("lo_open") else value < lo)
        high_bad = hi is not None and value > hi
        if low_bad or high_bad:
            if lo is not None and hi is not None:
                rng = f"{'more than' if meta.get('lo_open') else 'from'} {lo} " \
                      f"{'and at most' if meta.get('lo_open') else 'to'} {hi}"
            elif lo is not None:
                rng = f"{'more than' if meta.get('lo_open') else 'at least'} {lo}"
            else:
                rng = f"at most {hi}"
            return StudyError(f"setting {name} = {value} is out of range: it must be {rng}",
                              where=where, hint=f"edit {name} in study.toml")
    if meta.get("nonempty") and isinstance(value, str) and not value.strip():
        return StudyError(f"setting {name} must not be empty", where=where,
                          hint=f"edit {name} in study.toml")
    return None


def _read_section(cls: type, prefix: str, raw: Any, base: dict, where: str,
                  problems: list[StudyError]) -> Any:
    """One section (a dataclass) from the user's table `raw` over the template's `base`."""
    if not isinstance(raw, dict):
        problems.append(StudyError(f"[{prefix}] must be a table of settings", where=where))
        raw = {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            problems.append(StudyError(
                f"unknown setting {prefix}.{key}", where=where,
                hint=(f"did you mean {prefix}.{close[0]}?" if close
                      else f"[{prefix}] knows: " + ", ".join(fields))))
    values: dict[str, Any] = {}
    for name, f in fields.items():
        tp, dotted = hints[name], f"{prefix}.{name}"
        if dataclasses.is_dataclass(tp):
            values[name] = _read_section(tp, dotted, raw.get(name, {}), base.get(name, {}),
                                         where, problems)
            continue
        if name in raw:
            value = raw[name]
        elif name in base:
            value = base[name]
        elif f.default is not dataclasses.MISSING:
            values[name] = f.default
            continue
        else:
            raise AssertionError(f"{dotted} has no default in the template")
        try:
            converted = _convert(tp, value)
        except ValueError:
            example = base.get(name)
            problems.append(StudyError(
                f"setting {dotted} should be {_describe(tp)}, got {json.dumps(value)}",
                where=where, hint=(f"for example: {name} = {json.dumps(example)}"
                                   if example is not None else f"edit {dotted}")))
            converted = f.default if f.default is not dataclasses.MISSING else None
        else:
            problem = _check_value(dotted, converted, f.metadata, where)
            if problem is not None:
                problems.append(problem)
        values[name] = converted
    try:
        return cls(**values)
    except TypeError:  # a required value failed to convert; the problem is already listed
        return None


def _cross_checks(s: Settings, where: str) -> list[StudyError]:
    problems = []
    if s.scale is not None:
        if len(s.scale.labels) < 2:
            problems.append(StudyError("setting scale.labels needs at least two levels",
                                       where=where, hint="one word or phrase per level"))
        elif len(set(s.scale.labels)) != len(s.scale.labels):
            problems.append(StudyError("setting scale.labels repeats a level", where=where))
        if s.design is not None and s.design.method != test_methods.SIMILARITY \
                and s.scale.scale() != test_methods.get(test_methods.SIMILARITY).scale:
            problems.append(StudyError(
                f"[scale] applies to design.method = \"similarity-0-4\"; "
                f"\"{s.design.method}\" uses its standard's scale", where=where,
                hint="remove the [scale] settings, or use design.method = \"similarity-0-4\""))
    if s.quality is not None and \
            s.quality.reject_below_gold_accuracy > s.quality.gold_min_accuracy:
        problems.append(StudyError(
            "setting quality.reject_below_gold_accuracy is above quality.gold_min_accuracy",
            where=where, hint="rejection is for clear failures: keep it at or below the "
                              "exclusion threshold"))
    q = s.qualification
    if q is not None and q.pass_mark > q.test_pairs:
        problems.append(StudyError(
            f"setting qualification.pass_mark ({q.pass_mark}) is above qualification."
            f"test_pairs ({q.test_pairs}): nobody could pass", where=where,
            hint="lower pass_mark or raise test_pairs"))
    if q is not None and q.enabled and s.design is not None and \
            s.design.method in ("acr", "pairwise"):
        # Its training shows both ends of the scale against the reference; ACR shows no
        # reference (and has no control check), pairwise has no scale.
        problems.append(StudyError(
            "the qualification HIT trains both ends of a scale against the reference; "
            f"design.method = \"{s.design.method}\" has no such scale", where=where,
            hint="set qualification.enabled = false, or use similarity-0-4, dcr or ccr"))
    if s.quality is not None and s.quality.traps_per_hit and s.design is not None \
            and s.design.method == "pairwise":
        problems.append(StudyError(
            "attention traps ask for a level of a rating scale; design.method = \"pairwise\" "
            "has none", where=where, hint="set quality.traps_per_hit = 0"))
    if s.hosting is not None:
        url = urlparse(s.hosting.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            problems.append(StudyError(
                f"setting hosting.base_url = {json.dumps(s.hosting.base_url)} is not an "
                "http(s) URL", where=where, hint="e.g. base_url = \"http://127.0.0.1:8765\""))
        elif s.serve is not None and s.hosting.mode == "service":
            problem = base_url_mismatch(s.hosting.base_url, s.serve.port)
            if problem:
                problems.append(StudyError(problem, where=where,
                                           hint="make hosting.base_url use serve.port, or put "
                                                "a public URL there that forwards to it"))
    if s.hit is not None and s.hit.reward is not None and s.hit.reward != s.hit.reward.quantize(
            Decimal("0.01")):
        problems.append(StudyError(f"setting hit.reward = \"{s.hit.reward}\" has fractions of "
                                   "a cent", where=where, hint="write it like \"0.50\""))
    return problems


def base_url_mismatch(base_url: str, port: int) -> str | None:
    """Why a loopback base URL cannot reach the service on `port`, or None. A public base URL
    (a reverse proxy in front of the service) may use any port."""
    url = urlparse(base_url)
    try:
        url_port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        return f"hosting.base_url {base_url!r} has a bad port"
    host = url.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback and url_port != port:
        return (f"hosting.base_url points to port {url_port} but the service listens on port "
                f"{port}: workers' browsers would fetch images from another program")
    return None


def parse_settings(raw: dict[str, Any], where: str) -> Settings:
    """Typed settings from a parsed study.toml; every problem is reported at once."""
    base = defaults()
    problems: list[StudyError] = []
    hints = typing.get_type_hints(Settings)
    sections = {f.name for f in dataclasses.fields(Settings)}
    for key in raw:
        if key not in sections:
            close = difflib.get_close_matches(key, sorted(sections), n=1)
            problems.append(StudyError(f"unknown section [{key}]", where=where,
                                       hint=f"did you mean [{close[0]}]?" if close
                                       else "remove it or check its spelling"))
    values: dict[str, Any] = {}
    for name in sections - {"methods"}:
        values[name] = _read_section(hints[name], name, raw.get(name, {}), base[name], where,
                                     problems)
    methods = raw.get("methods", base["methods"])
    if not isinstance(methods, dict):
        problems.append(StudyError("[methods] must hold one table per method", where=where))
        methods = {}
    for name, spec in methods.items():
        if not isinstance(spec, dict) or spec.get("kind") not in METHOD_KINDS:
            problems.append(StudyError(
                f"method {name!r} needs kind = " + ", ".join(f'"{k}"' for k in METHOD_KINDS[:-1])
                + f' or "{METHOD_KINDS[-1]}"', where=f"{where} [methods.{name}]"))
    settings = Settings(**values, methods={k: dict(v) for k, v in methods.items()
                                           if isinstance(v, dict)})
    problems += _cross_checks(settings, where)
    if problems:
        raise StudyError.many(problems, f"study.toml has {len(problems)} problem(s)")
    return settings


def load_settings(path: Path) -> Settings:
    """Read study.toml once into typed settings."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError("study.toml is missing", where=str(path),
                         hint="run `study init DIR --dataset PATH` to create a study") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StudyError(f"study.toml is not valid TOML: {exc}", where=str(path),
                         hint="fix the syntax at the line shown") from None
    return parse_settings(raw, str(path))


def default_settings() -> Settings:
    """The settings of a study.toml that sets nothing."""
    return parse_settings({}, "the template's defaults")
