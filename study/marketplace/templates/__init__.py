"""Jinja2 templates of the worker site (a package so the files ship with the wheel)."""
