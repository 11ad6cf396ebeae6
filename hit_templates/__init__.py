"""Jinja2 templates of the pages workers see."""

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
