"""Overlapping-tile inference: run a method on tiles of an image and stitch the tiles' cores.

Each output pixel is taken from the one tile whose core holds it, and every core lies at least
`overlap` pixels inside its tile (except along the image's own border, where the tile edge is the
image edge). A method whose output at a pixel depends only on inputs within `overlap` pixels
(a convolutional network of that receptive radius) therefore gives exactly its whole-image
result, while only ever holding one tile in memory.
"""

from __future__ import annotations

from typing import Callable

import torch


def windows(size: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Along one axis: (window_start, window_end, core_start, core_end) for each tile.

    Windows all have length `tile` (when the image is at least that large), so a model sees one
    input shape; cores partition [0, size) exactly."""
    if tile <= 0 or tile >= size:
        return [(0, size, 0, size)]
    overlap = max(0, int(overlap))
    core = tile - 2 * overlap
    if core <= 0:
        raise ValueError(f"tile ({tile}) must be larger than twice the overlap ({overlap})")
    out = []
    c0 = 0
    while c0 < size:
        c1 = min(c0 + core, size)
        w0 = min(max(c0 - overlap, 0), size - tile)
        out.append((w0, w0 + tile, c0, c1))
        c0 = c1
    return out


def tiled(fn: Callable[..., torch.Tensor], x: torch.Tensor, tile: int, overlap: int,
          **extras: torch.Tensor | None) -> torch.Tensor:
    """`fn(x, **extras)` computed tile by tile. `extras` (depth, reference) are cut like `x`;
    None values are passed through as None."""
    h, w = x.shape[-2:]
    rows, cols = windows(h, tile, overlap), windows(w, tile, overlap)
    if len(rows) == 1 and len(cols) == 1:
        return fn(x, **extras)
    out: torch.Tensor | None = None
    for y0, y1, cy0, cy1 in rows:
        for x0, x1, cx0, cx1 in cols:
            part = {k: (v[..., y0:y1, x0:x1] if v is not None else None) for k, v in extras.items()}
            t = fn(x[..., y0:y1, x0:x1], **part)
            if not torch.is_tensor(t) or t.dim() != 4 or tuple(t.shape[-2:]) != (y1 - y0, x1 - x0):
                shape = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
                raise ValueError(f"a {y1 - y0}x{x1 - x0} tile gave an output of shape {shape}")
            if out is None:
                out = t.new_empty((t.shape[0], t.shape[1], h, w))
            out[..., cy0:cy1, cx0:cx1] = t[..., cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    assert out is not None
    return out
