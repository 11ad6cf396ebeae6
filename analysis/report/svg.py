"""Small inline SVG plots for the HTML report (no external assets, no scripts)."""

from __future__ import annotations

import math
from html import escape

import numpy as np

FONT = 'font-family="system-ui,sans-serif" font-size="11"'


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    return [round(start + i * step, 10) for i in range(int((hi - start) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:g}"


def mos_ci_plot(methods, scale, level: str = "95% CI") -> str:
    """One row per method (best first): MOS dot with its confidence-interval bar."""
    aria = level.replace("CI", "confidence intervals")
    rows = methods.to_dict("records")
    label_w, w, row_h, top = 150, 640, 22, 24
    h = top + row_h * len(rows) + 34
    x0, x1 = label_w, w - 20
    lo, hi = float(scale.low), float(scale.high)

    def X(v):
        return x0 + (float(v) - lo) / (hi - lo) * (x1 - x0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
           f'role="img" aria-label="MOS with {aria}" {FONT}>']
    for t in _ticks(lo, hi, int(hi - lo) if hi - lo <= 10 else 5):
        out.append(f'<line x1="{X(t):.1f}" x2="{X(t):.1f}" y1="{top - 6}" y2="{h - 30}" stroke="#ddd"/>')
        out.append(f'<text x="{X(t):.1f}" y="{h - 16}" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{h - 2}" text-anchor="middle">MOS '
               f'({escape(scale.label)})</text>')
    for k, r in enumerate(rows):
        y = top + k * row_h + row_h / 2
        out.append(f'<text x="{x0 - 8}" y="{y + 4:.1f}" text-anchor="end">{escape(str(r["method"]))}'
                   f' {escape(str(r.get("group") or ""))}</text>')
        if _finite(r.get("ci95_low")) and _finite(r.get("ci95_high")):
            out.append(f'<line x1="{X(r["ci95_low"]):.1f}" x2="{X(r["ci95_high"]):.1f}" y1="{y:.1f}" '
                       f'y2="{y:.1f}" stroke="#4a6fa5" stroke-width="3"/>')
        if _finite(r.get("mos")):
            out.append(f'<circle cx="{X(r["mos"]):.1f}" cy="{y:.1f}" r="4.5" fill="#1b3b6f">'
                       f'<title>{escape(str(r["method"]))}: MOS {float(r["mos"]):.3f}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def _colour(t: float) -> str:
    """t in [0, 1], 1 = best: red -> yellow -> green."""
    t = min(1.0, max(0.0, t))
    stops = [(0.0, (215, 48, 39)), (0.5, (254, 224, 139)), (1.0, (26, 152, 80))]
    for (a, ca), (b, cb) in zip(stops, stops[1:]):
        if t <= b:
            f = (t - a) / (b - a)
            c = [round(ca[i] + f * (cb[i] - ca[i])) for i in range(3)]
            return f"rgb({c[0]},{c[1]},{c[2]})"
    return "rgb(26,152,80)"


def heatmap(items, method_order, scale, max_images: int = 200) -> str:
    """Per-image MOS: rows images, columns methods (best first); green = better."""
    images = sorted(items["image"].unique())[:max_images]
    grid = items.pivot_table(index="image", columns="method", values="mos", aggfunc="first")
    cell, label_w, top = 22, 150, 110
    w = label_w + cell * len(method_order) + 10
    h = top + cell * len(images) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
           f'role="img" aria-label="MOS per image and method" {FONT}>']
    for j, m in enumerate(method_order):
        x = label_w + j * cell + cell / 2
        out.append(f'<text transform="translate({x + 4:.1f},{top - 6}) rotate(-60)">{escape(str(m))}</text>')
    span = float(scale.high - scale.low)
    for i, img in enumerate(images):
        y = top + i * cell
        out.append(f'<text x="{label_w - 6}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">{escape(str(img))}</text>')
        for j, m in enumerate(method_order):
            v = grid.at[img, m] if (img in grid.index and m in grid.columns) else np.nan
            x = label_w + j * cell
            if not _finite(v):
                out.append(f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="#f3f3f3"/>')
                continue
            good = (float(v) - scale.low) / span
            if not scale.higher_is_better:
                good = 1 - good
            out.append(f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{_colour(good)}">'
                       f'<title>{escape(str(img))} / {escape(str(m))}: {float(v):.2f}</title></rect>')
    out.append("</svg>")
    return "".join(out)


def scatter(xs, ys, labels, xlabel: str, ylabel: str, colours=None, title: str = "") -> str:
    pts = [(float(x), float(y), str(l), (colours[k] if colours else "#1b3b6f"))
           for k, (x, y, l) in enumerate(zip(xs, ys, labels)) if _finite(x) and _finite(y)]
    w, h, left, bottom, top, right = 520, 360, 60, 44, 16, 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
           f'role="img" aria-label="{escape(title or ylabel + " vs " + xlabel)}" {FONT}>']
    if not pts:
        out.append(f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle">no data</text></svg>')
        return "".join(out)
    xv = [p[0] for p in pts]; yv = [p[1] for p in pts]
    xlo, xhi = min(xv), max(xv); ylo, yhi = min(yv), max(yv)
    padx = (xhi - xlo) * 0.08 or 1.0; pady = (yhi - ylo) * 0.08 or 1.0
    xlo, xhi, ylo, yhi = xlo - padx, xhi + padx, ylo - pady, yhi + pady

    def X(v): return left + (v - xlo) / (xhi - xlo) * (w - left - right)
    def Y(v): return h - bottom - (v - ylo) / (yhi - ylo) * (h - bottom - top)
    out.append(f'<rect x="{left}" y="{top}" width="{w - left - right}" height="{h - top - bottom}" '
               f'fill="none" stroke="#999"/>')
    for t in _ticks(xlo, xhi):
        out.append(f'<text x="{X(t):.1f}" y="{h - bottom + 14}" text-anchor="middle">{_fmt(round(t, 6))}</text>')
    for t in _ticks(ylo, yhi):
        out.append(f'<text x="{left - 6}" y="{Y(t) + 4:.1f}" text-anchor="end">{_fmt(round(t, 6))}</text>')
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{Y(t):.1f}" y2="{Y(t):.1f}" stroke="#eee"/>')
    out.append(f'<text x="{(left + w - right) / 2:.0f}" y="{h - 6}" text-anchor="middle">{escape(xlabel)}</text>')
    out.append(f'<text transform="translate(14,{(top + h - bottom) / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{escape(ylabel)}</text>')
    for x, y, l, c in pts:
        out.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="4" fill="{c}" fill-opacity="0.8">'
                   f'<title>{escape(l)}: {x:.3g}, {y:.3g}</title></circle>')
        if len(pts) <= 25:
            out.append(f'<text x="{X(x) + 6:.1f}" y="{Y(y) - 5:.1f}" font-size="9">{escape(l)}</text>')
    out.append("</svg>")
    return "".join(out)
