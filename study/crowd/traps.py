"""Attention traps: pairs whose processed photo carries a written instruction in its pixels.

A trap is the reference against a copy of itself with a yellow box burned into the middle of
the picture: "Quality check: select '2 similar' for this pair". A worker who looks at the pair
follows it; one who answers without looking does not. The instruction is pixels, not text in
the page: the page shows a trap exactly like any pair (its images have per-appearance opaque
URLs and bytes, see study.crowd.hosting), so nothing in the page source tells it apart. The
box sits in the middle because the rating page opens each pair at 1:1 centred, and the text is
sized to the photo's height so it stays readable in the "whole photo" overview too.

Each trap's instructed level is drawn per HIT and position from the design seed, over the
study's scale (the method's own words for ACR, DCR and CCR); it is stored as the item's
expected range (expected_min = expected_max = the level), and an answer elsewhere is a missed
attention check, which excludes the assignment (quality.py).
"""

from __future__ import annotations

import hashlib
import random
import textwrap
from pathlib import Path

from study.files import atomic_write_bytes

TRAP = "trap"
# The box's text: as wide as a pane shows at 1:1 on a small laptop (about 600 CSS pixels),
# in a font a twenty-fourth of the photo's height (40 pixels on a 1024-pixel photo, about 17 in
# a "whole photo" overview of a 1366x768 screen).
BOX_MAX_WIDTH = 600
FONT_FRACTION = 1 / 24
FONT_PX = (9, 44)


def instruction_lines(scale, level: int) -> list[str]:
    """The instruction in lines that keep the level's words together."""
    words = dict(zip(scale.levels, scale.labels or [str(v) for v in scale.levels]))
    return ["Quality check:", f"select \u201c{level} {words[level]}\u201d", "for this pair."]


def instruction(scale, level: int) -> str:
    return " ".join(instruction_lines(scale, level))


def method_name(level: int) -> str:
    """The trap item's `method` column: one item per image and instructed level."""
    return f"trap@{level}"


def expected(row, scale) -> tuple[int, int]:
    """The stored answer that follows a trap's instruction. The picture names the level as the
    page shows it; where the page asked the other way round (hit_items.swapped) collect stored
    the mirrored answer, so the instruction is mirrored too."""
    level = int(row["expected_min"])
    if row["swapped"]:
        level = scale.mirrored(level)
    return level, level


def image_path(study, image_id: str, text: str) -> Path:
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return study.root / "traps" / f"{image_id}-{digest}.png"


def render(reference_path: str | Path, text: str, out: Path) -> Path:
    """The reference with `text` (lines apart by newlines, each wrapped to the box) in a box
    across its middle, written once to `out` (PNG)."""
    if out.is_file():
        return out
    import io

    from PIL import Image, ImageDraw, ImageFont

    with Image.open(reference_path) as im:
        im = im.convert("RGB")
    w, h = im.size
    size = int(min(max(h * FONT_FRACTION, FONT_PX[0]), FONT_PX[1]))
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(im)
    box_w = min(BOX_MAX_WIDTH, int(w * 0.92))
    chars = max(8, int(box_w / (size * 0.55)))
    lines = [part for line in text.split("\n") for part in (textwrap.wrap(line, chars) or [line])]
    line_h = int(size * 1.25)
    pad = max(3, size // 3)
    widths = [draw.textlength(line, font=font) for line in lines]
    bw, bh = int(max(widths)) + 2 * pad, line_h * len(lines) + 2 * pad
    x0, y0 = (w - bw) // 2, (h - bh) // 2
    draw.rectangle([x0, y0, x0 + bw, y0 + bh], fill=(255, 214, 0), outline=(0, 0, 0),
                   width=max(1, size // 12))
    for k, (line, lw) in enumerate(zip(lines, widths)):
        draw.text(((w - lw) / 2, y0 + pad + k * line_h), line, fill=(0, 0, 0), font=font)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    atomic_write_bytes(out, buf.getvalue())
    return out


def for_hits(study, images, scale, n_hits: int, per_hit: int) -> list[list]:
    """Per HIT, its trap items (design.Item), their images written; [] per HIT when off.
    The images rotate over HITs; each level is drawn from the design seed."""
    from study.crowd.design import Item

    if per_hit <= 0 or not images:
        return [[] for _ in range(n_hits)]
    rng = random.Random(f"traps:{study.settings.design_seed}")
    out = []
    for h in range(n_hits):
        hit = []
        for j in range(per_hit):
            img = images[(h * per_hit + j) % len(images)]
            level = rng.choice(list(scale.levels))
            text = "\n".join(instruction_lines(scale, level))
            path = render(img["reference_path"], text,
                          image_path(study, img["image_id"], text))
            hit.append(Item(img["image_id"], method_name(level), TRAP, img["reference_path"],
                            str(path), level, level))
        out.append(hit)
    return out
