"""Request validation against botocore's own model of the MTurk Requester API (2017-01-17).

The model is read from botocore's installed data (botocore.loaders), so the marketplace accepts
exactly what the API defines: member names, required members, types, enums, lengths, ranges and
patterns, including the constraints botocore leaves to the service.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import botocore.loaders

SERVICE = "mturk"
API_VERSION = "2017-01-17"


class ValidationProblem(Exception):
    """One request parameter breaks the model; the message names it the way AWS does."""


@functools.lru_cache(maxsize=1)
def model() -> dict:
    return botocore.loaders.create_loader().load_service_model(SERVICE, "service-2", API_VERSION)


def operation(name: str) -> dict | None:
    return model()["operations"].get(name)


def wire_time(t: float | None) -> float | None:
    """A timestamp as MTurk sent it: epoch seconds, to the millisecond (not microseconds)."""
    return None if t is None else round(float(t), 3)


def _shape(name: str) -> dict:
    return model()["shapes"][name]


def _fail(path: str, value: Any, constraint: str) -> None:
    shown = "null" if value is None else \
        f"'{value if isinstance(value, (int, float, bool)) else str(value)[:100]}'"
    raise ValidationProblem(
        f"1 validation error detected: Value {shown} at '{path}' failed to satisfy "
        f"constraint: {constraint}")


def validate(op_name: str, params: Any) -> None:
    """Raise ValidationProblem for the first way `params` breaks the operation's input shape."""
    op = operation(op_name)
    if "input" not in op:
        if params not in ({}, None):
            raise ValidationProblem(f"{op_name} takes no parameters")
        return
    _check(op["input"]["shape"], params, "")


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _check(shape_name: str, value: Any, path: str) -> None:
    shape = _shape(shape_name)
    kind = shape["type"]
    where = path or "request"
    if kind == "structure":
        if not isinstance(value, dict):
            raise ValidationProblem(f"{where} must be a JSON object")
        members = shape.get("members", {})
        for key in value:
            if key not in members:
                raise ValidationProblem(f"Unknown parameter '{key}' in {where}; "
                                        f"valid parameters: {', '.join(members)}")
        for key in shape.get("required", []):
            if value.get(key) is None:
                _fail(_join(path, key), None, "Member must not be null")
        for key, member in members.items():
            if key in value and value[key] is not None:
                _check(member["shape"], value[key], _join(path, key))
    elif kind == "list":
        if not isinstance(value, list):
            raise ValidationProblem(f"'{where}' must be a list")
        _range(shape, len(value), where, "length")
        for i, item in enumerate(value):
            _check(shape["member"]["shape"], item, f"{where}.{i + 1}.member")
    elif kind == "string":
        if not isinstance(value, str):
            raise ValidationProblem(f"'{where}' must be a string")
        if "enum" in shape and value not in shape["enum"]:
            _fail(where, value, f"Member must satisfy enum value set: [{', '.join(shape['enum'])}]")
        _range(shape, len(value), where, "length")
        if "pattern" in shape and not re.search(shape["pattern"], value):
            _fail(where, value, f"Member must satisfy regular expression pattern: {shape['pattern']}")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationProblem(f"'{where}' must be an integer")
        _range(shape, value, where, "value")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise ValidationProblem(f"'{where}' must be a boolean")
    elif kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationProblem(f"'{where}' must be a timestamp in seconds since the epoch")
    else:  # pragma: no cover - the MTurk model uses no other kinds
        raise ValidationProblem(f"'{where}': unsupported shape type {kind}")


def _join(path: str, key: str) -> str:
    return f"{path}.{_lower_first(key)}" if path else _lower_first(key)


def _range(shape: dict, n: int, where: str, what: str) -> None:
    if "min" in shape and n < shape["min"]:
        _fail(where, n, f"Member must have {what} greater than or equal to {shape['min']}")
    if "max" in shape and n > shape["max"]:
        _fail(where, n, f"Member must have {what} less than or equal to {shape['max']}")
