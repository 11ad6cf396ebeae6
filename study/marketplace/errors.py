"""The two kinds of refusal: to a requester (AWS's error shape) and to a worker (a page)."""

from __future__ import annotations


class RequestError(Exception):
    """An error answered to the requester as AWS does (HTTP 400 RequestError by default)."""

    def __init__(self, message: str, turk_code: str = "AWS.MechanicalTurk.RequestError",
                 error_type: str = "RequestError", status: int = 400):
        super().__init__(message)
        self.message = message
        self.turk_code = turk_code
        self.error_type = error_type
        self.status = status


class WorkerError(Exception):
    """Something a worker cannot do on the worker site (shown as a page with this status)."""

    def __init__(self, message: str, status: int = 400, title: str = "Not possible"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.title = title


def param_error(message: str) -> RequestError:
    """MTurk's own checks of a value the model allows: answered with the bare `__type`
    ParameterValidationError (model constraints are ValidationException, see api.py)."""
    return RequestError(message, "AWS.MechanicalTurk.ParameterValidationError",
                        "ParameterValidationError")


def stamp(clock_now: float) -> str:
    """The request time MTurk appended to its error messages."""
    return f"({int(clock_now * 1000)})"
