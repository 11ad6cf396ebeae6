"""`study.toml`: the commented template every study starts from, and its loading.

The template is the single source of defaults: `defaults()` parses it, so a setting documented in
the template is exactly the setting the code falls back to.
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

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
# Items (image x method) per HIT, and valid ratings wanted per item.
items_per_hit = 10
ratings_per_item = 5
# Gold items in every HIT: the reference against itself (expected 0 or 1) ...
gold_reference = true
# ... and this method's output against the reference (expected 3 or 4); "" for none.
gold_control_method = "input"
# Seed of the HIT design; leave it out to use study.seed.
# seed = 0

[hit]
title = "Rate how similar two photos look"
description = "Compare each photo with the original and rate how similar they look (0-4)."
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
base_url = "http://127.0.0.1:8765"
s3_bucket = ""
s3_prefix = "study-images/"
s3_endpoint_url = ""
s3_presign_seconds = 604800

[budget]
# Publication refuses a plan whose cost (rewards + marketplace fees) exceeds this, in USD.
max_usd = 200.0

[quality]
# A worker whose gold accuracy is below this is excluded from the analysis ...
gold_min_accuracy = 0.75
# ... and rejected (with this written reason) only below this clear-failure threshold.
reject_below_gold_accuracy = 0.25
# Assignments faster than this per item are flagged as too fast.
min_seconds_per_item = 2.0
# Ratings whose variance across a HIT's items is below this are straight-lining (ITU-T P.808).
straightline_var = 0.1
# Minimum Pearson correlation with the consensus so far for an assignment to count.
consensus_min_corr = 0.0
# Workers with this many failed assignments are blocked.
block_after_failures = 2
# Bonus per approved assignment in USD (0 = none), and the reason the worker sees.
bonus_usd = 0.0
bonus_reason = "Thank you for careful ratings."

[report]
formats = ["md", "html", "csv", "tex", "json"]
bootstrap = 2000
alpha = 0.05
# Multiple-comparison correction for pairwise tests: "holm" or "bh".
correction = "holm"

[serve]
host = "127.0.0.1"
port = 8765
# Token for the requester dashboard; "" makes a random one at every start (printed once).
dashboard_token = ""
"""


def render_template(name: str, seed: int, dataset_path: str, layout: str, split: str,
                    images: list[str]) -> str:
    values = {
        "name": json.dumps(name),
        "seed": str(int(seed)),
        "dataset_path": json.dumps(dataset_path),
        "layout": json.dumps(layout),
        "split": json.dumps(split),
        "images": json.dumps([str(i) for i in images]),
    }
    text = TEMPLATE
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def defaults() -> dict[str, Any]:
    return tomllib.loads(render_template("study", 0, "", "auto", "", []))


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "methods":
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(path: Path) -> dict[str, Any]:
    """Parse study.toml, fill in defaults, and report every problem at once."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError("study.toml is missing", where=str(path),
                         hint="run `study init DIR --dataset PATH` to create a study") from None
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"study.toml is not valid TOML: {exc}", where=str(path),
                         hint="fix the syntax at the line shown") from None
    cfg = _merge(defaults(), raw)
    if "methods" not in raw:
        cfg["methods"] = defaults()["methods"]
    problems = validate(cfg, str(path))
    if problems:
        raise StudyError.many(problems, f"study.toml has {len(problems)} problem(s)")
    return cfg


def validate(cfg: dict[str, Any], where: str) -> list[StudyError]:
    problems: list[StudyError] = []
    base = defaults()

    def check_type(section: str, key: str, value: Any, expected: Any) -> None:
        if isinstance(expected, bool):
            ok = isinstance(value, bool)
        elif isinstance(expected, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif isinstance(expected, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(expected))
        if not ok:
            problems.append(StudyError(
                f"setting {section}.{key} should be {type(expected).__name__}, "
                f"got {value!r}", where=where,
                hint=f"for example: {key} = {json.dumps(expected)}"))

    for section, values in base.items():
        if section == "methods" or not isinstance(values, dict):
            continue
        for key, expected in values.items():
            if isinstance(expected, dict):
                for sub, exp in expected.items():
                    check_type(f"{section}.{key}", sub, cfg[section][key].get(sub, exp), exp)
            else:
                check_type(section, key, cfg[section].get(key, expected), expected)
    for section in cfg:
        if section not in base:
            problems.append(StudyError(f"unknown section [{section}]", where=where,
                                       hint="remove it or check its spelling"))
    methods = cfg.get("methods", {})
    if not isinstance(methods, dict):
        problems.append(StudyError("[methods] must hold one table per method", where=where))
    else:
        for name, spec in methods.items():
            if not isinstance(spec, dict) or spec.get("kind") not in (
                    "builtin", "python", "command", "folder"):
                problems.append(StudyError(
                    f"method {name!r} needs kind = \"builtin\", \"python\", \"command\" "
                    "or \"folder\"", where=f"{where} [methods.{name}]"))
    if cfg["hit"]["question"] not in ("html", "external"):
        problems.append(StudyError("hit.question must be \"html\" or \"external\"", where=where))
    if cfg["hosting"]["mode"] not in ("service", "s3"):
        problems.append(StudyError("hosting.mode must be \"service\" or \"s3\"", where=where))
    if cfg["render"]["device"] not in ("auto", "cpu", "cuda"):
        problems.append(StudyError("render.device must be \"auto\", \"cpu\" or \"cuda\"",
                                   where=where))
    return problems


def get(cfg: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """`get(cfg, "hit.reward")` -> the setting, or `default` when absent."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
