"""Inline SVG plots for the HTML report: no external assets, no scripts.

Each function returns SVG markup built by `_el`, which escapes every attribute and every text it
is given, so the page template can place it as is (`|safe`): a method or worker name cannot
become markup."""

from __future__ import annotations

import math
import re
from html import escape

from analysis.report.common import finite, fmt, mos_decimals

FONT = "system-ui,-apple-system,'Segoe UI',sans-serif"
INK, MUTED, GRID = "#222", "#666", "#e3e3e3"
HEATMAP_MAX_IMAGES = 200
# Worse -> better: red, pale yellow, blue (readable for the common colour-vision deficiencies).
STOPS = ((0.0, (215, 48, 39)), (0.25, (252, 141, 89)), (0.5, (255, 255, 191)),
         (0.75, (145, 191, 219)), (1.0, (69, 117, 180)))


def _el(tag: str, body: str = "", **attrs) -> str:
    """One SVG element. Attribute names use _ for -; `body` must already be markup (use
    `_text` for text)."""
    a = "".join(f' {k.rstrip("_").replace("_", "-")}="{escape(str(v), quote=True)}"'
                for k, v in attrs.items() if v is not None)
    return f"<{tag}{a}>{body}</{tag}>" if body else f"<{tag}{a}/>"


def _text(s, **attrs) -> str:
    return _el("text", escape(str(s)), **attrs)


def _svg(w: float, h: float, label: str, parts: list[str], font_size: int = 13) -> str:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0f} {h:.0f}" '
            f'width="{w:.0f}" height="{h:.0f}" role="img" aria-label="{escape(label, quote=True)}" '
            f'font-family="{escape(FONT, quote=True)}" font-size="{font_size}" fill="{INK}">')
    return head + "".join(parts) + "</svg>"


def _text_width(s: str, size: float) -> float:
    """A generous estimate of a label's width, to size the margins."""
    return 0.62 * size * len(str(s))


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    return [round(start + i * step, 10) for i in range(int((hi - start) / step + 1e-9) + 1)]


def _tick_label(v: float) -> str:
    return f"{v:g}"


def colour(t: float) -> tuple[int, int, int]:
    """t in [0, 1], 1 = best."""
    t = min(1.0, max(0.0, float(t)))
    for (a, ca), (b, cb) in zip(STOPS, STOPS[1:]):
        if t <= b:
            f = (t - a) / (b - a)
            return tuple(round(ca[i] + f * (cb[i] - ca[i])) for i in range(3))
    return STOPS[-1][1]


def _rgb(c) -> str:
    return f"rgb({c[0]},{c[1]},{c[2]})"


def _ink_on(c) -> str:
    """Black or white text, whichever reads better on colour c."""
    lum = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
    return "#000" if lum > 140 else "#fff"


def _goodness(v: float, scale) -> float:
    g = (float(v) - float(scale.low)) / float(scale.high - scale.low)
    return g if scale.higher_is_better else 1 - g


def mos_ci_plot(methods, scale, level: str = "95% CI") -> str:
    """One row per method (best first): the MOS as a dot, its interval as a bar, the values
    written at the right."""
    rows = methods.to_dict("records")
    md = mos_decimals(scale)
    names = [f"{r['method']}  {r.get('group') or ''}".rstrip() for r in rows]
    label_w = max([_text_width(n, 13) for n in names] + [60]) + 12
    plot_w, value_w, row_h, top = 520, 150, 28, 12
    w = label_w + plot_w + value_w
    h = top + row_h * len(rows) + 50
    x0, x1 = label_w, label_w + plot_w
    lo, hi = float(scale.low), float(scale.high)

    def X(v):
        return x0 + (float(v) - lo) / (hi - lo) * (x1 - x0)
    out = []
    for t in ticks(lo, hi, int(hi - lo) if hi - lo <= 10 else 5):
        out.append(_el("line", x1=f"{X(t):.1f}", x2=f"{X(t):.1f}", y1=top - 4,
                       y2=h - 38, stroke=GRID))
        out.append(_text(_tick_label(t), x=f"{X(t):.1f}", y=h - 22, text_anchor="middle"))
    out.append(_text(f"MOS ({scale.label}) with {level}", x=f"{(x0 + x1) / 2:.0f}", y=h - 4,
                     text_anchor="middle"))
    out.append(_text(f"MOS [{level}]", x=x1 + 10, y=top - 0, fill=MUTED, font_size=11))
    for k, (r, name) in enumerate(zip(rows, names)):
        y = top + k * row_h + row_h / 2 + 6
        out.append(_text(name, x=x0 - 10, y=f"{y + 4:.1f}", text_anchor="end"))
        ok_ci = finite(r.get("ci95_low")) and finite(r.get("ci95_high"))
        if ok_ci:
            out.append(_el("line", x1=f"{X(r['ci95_low']):.1f}", x2=f"{X(r['ci95_high']):.1f}",
                           y1=f"{y:.1f}", y2=f"{y:.1f}", stroke="#4a6fa5", stroke_width=4,
                           stroke_linecap="round"))
        if finite(r.get("mos")):
            out.append(_el("circle", _el("title", escape(f"{r['method']}: MOS "
                                                         f"{fmt(r['mos'], 'mos', decimals=md)}")),
                           cx=f"{X(r['mos']):.1f}", cy=f"{y:.1f}", r=5.5, fill="#1b3b6f"))
        value = fmt(r.get("mos"), "mos", decimals=md)
        if ok_ci:
            value += (f" [{fmt(r['ci95_low'], 'mos', decimals=md)}, "
                      f"{fmt(r['ci95_high'], 'mos', decimals=md)}]")
        out.append(_text(value, x=x1 + 10, y=f"{y + 4:.1f}"))
    return _svg(w, h, f"MOS with {level} per method", out)


def colour_scale(scale, x: float, y: float, width: float = 260, height: float = 14,
                 gradient_id: str = "mos-colour-scale") -> list[str]:
    """A legend: the colour of every MOS on the scale, worse on the left, better on the right."""
    stops = "".join(_el("stop", offset=f"{p:.2f}", stop_color=_rgb(c)) for p, c in STOPS)
    out = [_el("defs", _el("linearGradient", stops, id=gradient_id, x1=0, x2=1, y1=0, y2=0)),
           _el("rect", x=x, y=y, width=width, height=height, fill=f"url(#{gradient_id})",
               stroke="#999")]
    lo, hi = float(scale.low), float(scale.high)
    for t in ticks(lo, hi, int(hi - lo) if hi - lo <= 10 else 5):
        g = _goodness(t, scale)
        tx = x + g * width
        out.append(_el("line", x1=f"{tx:.1f}", x2=f"{tx:.1f}", y1=y + height, y2=y + height + 4,
                       stroke="#555"))
        out.append(_text(_tick_label(t), x=f"{tx:.1f}", y=y + height + 16, text_anchor="middle",
                         font_size=11))
    out.append(_text("worse", x=x - 6, y=y + height - 2, text_anchor="end", font_size=11,
                     fill=MUTED))
    out.append(_text("better", x=x + width + 6, y=y + height - 2, font_size=11, fill=MUTED))
    out.append(_text("MOS per image (colour scale)", x=x, y=y - 6, font_size=11, fill=MUTED))
    return out


def _natural(label: str) -> list:
    """Sort key that puts image 2 before image 10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", label)]


def heatmap(items, method_order, scale, max_images: int = HEATMAP_MAX_IMAGES) -> str:
    """Per-image MOS: rows images, columns methods (best first), the value in each cell, and
    the colour scale above."""
    images = sorted(items["image"].astype(str).unique(), key=_natural)[:max_images]
    grid = items.assign(image=items["image"].astype(str)).pivot_table(
        index="image", columns="method", values="mos", aggfunc="first")
    md = mos_decimals(scale)
    cw, ch = 64, 28
    label_w = max([_text_width(i, 12) for i in images] + [40]) + 14
    longest = max([_text_width(m, 12) for m in method_order] + [20])
    rotate = longest > cw - 6
    legend_h = 58
    head_h = (longest * 0.72 + 16) if rotate else 26
    top = legend_h + head_h
    w = max(label_w + cw * len(method_order) + (longest * 0.7 if rotate else 0) + 10, 420)
    h = top + ch * len(images) + 8
    out = colour_scale(scale, x=label_w + 48, y=18)
    for j, m in enumerate(method_order):
        x = label_w + j * cw + cw / 2
        if rotate:
            out.append(_text(m, transform=f"translate({x - 4:.1f},{top - 8:.1f}) rotate(-45)",
                             font_size=12))
        else:
            out.append(_text(m, x=f"{x:.1f}", y=f"{top - 8:.1f}", text_anchor="middle",
                             font_size=12))
    for i, img in enumerate(images):
        y = top + i * ch
        out.append(_text(img, x=label_w - 8, y=f"{y + ch / 2 + 4:.1f}", text_anchor="end",
                         font_size=12))
        for j, m in enumerate(method_order):
            v = grid.at[img, m] if (img in grid.index and m in grid.columns) else None
            x = label_w + j * cw
            if not finite(v):
                out.append(_el("rect", x=x, y=y, width=cw - 2, height=ch - 2, fill="#f3f3f3"))
                out.append(_text("—", x=x + cw / 2 - 1, y=f"{y + ch / 2 + 3:.1f}",
                                 text_anchor="middle", fill="#999", font_size=12))
                continue
            c = colour(_goodness(v, scale))
            value = fmt(v, "mos", decimals=md)
            out.append(_el("rect", _el("title", escape(f"{img} / {m}: MOS {value}")),
                           x=x, y=y, width=cw - 2, height=ch - 2, fill=_rgb(c)))
            out.append(_text(value, x=x + cw / 2 - 1, y=f"{y + ch / 2 + 4:.1f}",
                             text_anchor="middle", fill=_ink_on(c), font_size=12))
    return _svg(w, h, "MOS per image and method", out)


def scatter(points: list[dict], xlabel: str, ylabel: str, title: str,
            x_quantity: str = "", y_quantity: str = "mos", colours: list[str] | None = None,
            labels: bool = True) -> str:
    """points: [{method (label), x, y}]. Each point is labelled when there are few."""
    w, h, left, bottom, top, right = 560, 420, 64, 52, 34, 110
    out = [_text(title, x=left, y=20, font_weight="600")]
    if not points:
        out.append(_text("no data", x=w / 2, y=h / 2, text_anchor="middle", fill=MUTED))
        return _svg(w, h, title, out)
    xv = [p["x"] for p in points]
    yv = [p["y"] for p in points]
    xlo, xhi, ylo, yhi = min(xv), max(xv), min(yv), max(yv)
    padx = (xhi - xlo) * 0.08 or max(abs(xlo) * 0.05, 0.5)
    pady = (yhi - ylo) * 0.08 or max(abs(ylo) * 0.05, 0.5)
    xlo, xhi, ylo, yhi = xlo - padx, xhi + padx, ylo - pady, yhi + pady

    def X(v): return left + (v - xlo) / (xhi - xlo) * (w - left - right)
    def Y(v): return h - bottom - (v - ylo) / (yhi - ylo) * (h - bottom - top)
    out.append(_el("rect", x=left, y=top, width=w - left - right, height=h - top - bottom,
                   fill="none", stroke="#999"))
    for t in ticks(xlo, xhi):
        out.append(_el("line", x1=f"{X(t):.1f}", x2=f"{X(t):.1f}", y1=top, y2=h - bottom,
                       stroke=GRID))
        out.append(_text(_tick_label(round(t, 6)), x=f"{X(t):.1f}", y=h - bottom + 16,
                         text_anchor="middle", font_size=12))
    for t in ticks(ylo, yhi):
        out.append(_el("line", x1=left, x2=w - right, y1=f"{Y(t):.1f}", y2=f"{Y(t):.1f}",
                       stroke=GRID))
        out.append(_text(_tick_label(round(t, 6)), x=left - 6, y=f"{Y(t) + 4:.1f}",
                         text_anchor="end", font_size=12))
    out.append(_text(xlabel, x=f"{(left + w - right) / 2:.0f}", y=h - 12, text_anchor="middle"))
    out.append(_text(ylabel, transform=f"translate(18,{(top + h - bottom) / 2:.0f}) rotate(-90)",
                     text_anchor="middle"))
    show_labels = labels and len(points) <= 25
    for k, p in enumerate(points):
        c = colours[k] if colours else "#1b3b6f"
        tip = f"{p['method']}: {fmt(p['x'], x_quantity)}, {fmt(p['y'], y_quantity)}"
        out.append(_el("circle", _el("title", escape(tip)), cx=f"{X(p['x']):.1f}",
                       cy=f"{Y(p['y']):.1f}", r=5, fill=c, fill_opacity=0.85))
        if show_labels:
            out.append(_text(p["method"], x=f"{X(p['x']) + 8:.1f}", y=f"{Y(p['y']) + 4:.1f}",
                             font_size=12))
    return _svg(w, h, title, out)
