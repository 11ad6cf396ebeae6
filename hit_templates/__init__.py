"""Jinja2 templates of the pages workers see. The HIT pages that show photos, task.html.j2 (the
rating methods) and pairwise.html.j2, extend _hit_page.html.j2, which includes the style and
script they share (_hit_page.css.j2, _hit_page.js.j2): each page renders to one document."""

from __future__ import annotations

from functools import lru_cache

import jinja2


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The template environment: autoescaping on, templates loaded from this package."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("hit_templates", "."),
        autoescape=jinja2.select_autoescape(["html", "xml", "j2"], default=True),
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
