"""A self-hosted marketplace that speaks Amazon Mechanical Turk's Requester API (2017-01-17).

`create_app(db_path, keys)` gives a Flask app with the Requester API at /requester/sandbox and
/requester/live (boto3's `endpoint_url`) and the worker site at /worker/<realm>/;
`register(app, db_path, keys)` mounts the same into another Flask app.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from study.marketplace.ids import worker_id_for  # noqa: F401  (public API)
from study.marketplace.invites import create_invite  # noqa: F401  (public API)
from study.marketplace.money import deposit  # noqa: F401  (public API)

KEYS_ENV = "STUDY_MARKETPLACE_KEYS"
LIVE_BALANCE_ENV = "STUDY_MARKETPLACE_LIVE_BALANCE"
AWS_ENDPOINT_ENV = "STUDY_MARKETPLACE_AWS_ENDPOINT"


def keys_from_env(value: str | None = None) -> dict[str, str]:
    """Parse `KEY_ID:SECRET[,KEY_ID:SECRET...]` (default: $STUDY_MARKETPLACE_KEYS)."""
    from study.errors import StudyError
    value = os.environ.get(KEYS_ENV, "") if value is None else value
    keys: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        key_id, sep, secret = part.partition(":")
        if not sep or not key_id or not secret:
            raise StudyError(f"{KEYS_ENV} holds an entry that is not KEY_ID:SECRET",
                             where=KEYS_ENV, hint="write KEY_ID:SECRET[,KEY_ID:SECRET...]")
        keys[key_id] = secret
    return keys


def register(app, db_path: str | Path, keys: dict[str, str] | None = None,
             clock: Callable[[], float] | None = None, throttle=None, faults=None,
             live_balance: str | None = None, aws: dict | None = None,
             new_id: Callable[..., str] | None = None):
    """Mount the Requester API and the worker site on `app`; returns the Market.

    keys: requester key id -> secret, merged with $STUDY_MARKETPLACE_KEYS.
    clock: a callable returning epoch seconds (tests move time with it).
    throttle: None, requests per second per key and realm, or a callable(op, realm[, key_id])
      returning True to answer ThrottlingException.
    faults: a callable(op, realm) returning None, "throttle", "fault" (ServiceFault before the
      work) or "fault-after" (the work is done, the answer is a ServiceFault).
    live_balance: the live realm's starting balance in dollars when the database is created
      (default $STUDY_MARKETPLACE_LIVE_BALANCE or 0.00); the sandbox starts at 10000.00.
    aws: boto3 client settings for HIT event notifications to SQS/SNS (endpoint_url,
      region_name, aws_access_key_id, aws_secret_access_key); default: boto3's own
      configuration, with endpoint_url from $STUDY_MARKETPLACE_AWS_ENDPOINT if set.
    new_id: a callable giving each new id (default: random ids; `ids.SeededIds` repeats).
    """
    from study.marketplace.api import make_blueprint, make_throttle
    from study.marketplace.market import Market
    from study.marketplace.worker import make_blueprint as make_worker_blueprint

    all_keys = dict(keys or {})
    all_keys.update(keys_from_env())
    if live_balance is None:
        live_balance = os.environ.get(LIVE_BALANCE_ENV) or None
    if aws is None and os.environ.get(AWS_ENDPOINT_ENV):
        aws = {"endpoint_url": os.environ[AWS_ENDPOINT_ENV]}
    market = Market(db_path, all_keys, clock=clock, throttle=make_throttle(throttle),
                    faults=faults, live_balance=live_balance, aws=aws, new_id=new_id)
    app.extensions["marketplace"] = market
    # Each request hands its SQLite connection back to the pool when it ends.
    app.teardown_request(lambda exc: market.pool.release())
    app.register_blueprint(make_blueprint())
    app.register_blueprint(make_worker_blueprint())
    return market


def create_app(db_path: str | Path, keys: dict[str, str] | None = None,
               clock: Callable[[], float] | None = None, throttle=None, faults=None,
               live_balance: str | None = None, aws: dict | None = None,
               new_id: Callable[..., str] | None = None):
    """A standalone Flask app serving the marketplace from the SQLite file `db_path`."""
    from flask import Flask

    app = Flask("study.marketplace")
    register(app, db_path, keys, clock=clock, throttle=throttle, faults=faults,
             live_balance=live_balance, aws=aws, new_id=new_id)

    @app.get("/")
    def index():
        from flask import redirect
        return redirect("/worker/sandbox/")

    return app
