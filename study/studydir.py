"""The study folder: finding it (like git, from the current directory up) and opening it."""

from __future__ import annotations

import functools
import os
import secrets as _secrets
import sqlite3
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import click

from study import store
from study.config import Settings, load_settings
from study.errors import StudyError

CONFIG_NAME = "study.toml"
DB_NAME = "study.db"
SECRETS_NAME = ".secrets.toml"


def find_study_root(start: Path) -> Path | None:
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file() and (folder / DB_NAME).is_file():
            return folder
    return None


@dataclass
class Study:
    root: Path
    settings: Settings = field(repr=False)

    @classmethod
    def open(cls, root: Path) -> "Study":
        root = Path(root).resolve()
        if not (root / CONFIG_NAME).is_file():
            raise StudyError(f"{root} is not a study folder (no {CONFIG_NAME})", where=str(root),
                             hint="run `study init DIR --dataset PATH` to create one")
        if not (root / DB_NAME).is_file():
            raise StudyError(f"{root} has {CONFIG_NAME} but no {DB_NAME}", where=str(root),
                             hint="the study was not created by `study init`; create it again")
        return cls(root=root, settings=load_settings(root / CONFIG_NAME))

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    @property
    def renders_dir(self) -> Path:
        return self.root / "renders"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def marketplace_db_path(self) -> Path:
        return self.root / "marketplace.db"

    @property
    def name(self) -> str:
        return self.settings.study.name

    @functools.cached_property
    def study_id(self) -> str:
        conn = self.connect()
        try:
            sid = store.get_meta(conn, "study_id")
        finally:
            conn.close()
        if not sid:
            raise StudyError("study.db has no study id", where=str(self.db_path),
                             hint="create the study with `study init`")
        return sid

    def connect(self) -> sqlite3.Connection:
        return store.connect(self.db_path)

    def resolve(self, path: str | Path) -> Path:
        """A path from study.toml: relative paths are relative to the study folder."""
        p = Path(os.path.expanduser(str(path)))
        return p if p.is_absolute() else (self.root / p).resolve()

    def secrets(self) -> dict[str, str]:
        """Keys of the embedded marketplace's requester account, made at `study init`."""
        path = self.root / SECRETS_NAME
        if not path.is_file():
            write_secrets(self.root)
        with open(path, "rb") as fh:
            return dict(tomllib.load(fh))


def write_secrets(root: Path) -> None:
    key_id = "AKID" + _secrets.token_hex(8).upper()
    secret = _secrets.token_urlsafe(30)
    path = Path(root) / SECRETS_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# Requester key of the embedded marketplace. Keep private.\n")
        fh.write(f'aws_access_key_id = "{key_id}"\naws_secret_access_key = "{secret}"\n')


def open_study(study_dir: str | Path | None) -> Study:
    if study_dir:
        return Study.open(Path(study_dir))
    root = find_study_root(Path.cwd())
    if root is None:
        raise StudyError(
            f"not inside a study folder ({Path.cwd()} and its parents hold no {CONFIG_NAME})",
            hint="cd into a study folder, pass --study DIR, or create one with "
                 "`study init DIR --dataset PATH`")
    return Study.open(root)


def pass_study(fn: Callable) -> Callable:
    """Click decorator: the command receives the Study the user is in (or named with --study)."""

    @click.pass_context
    @functools.wraps(fn)
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        root_ctx = ctx.find_root()
        study_dir = (root_ctx.obj or {}).get("study_dir") if isinstance(root_ctx.obj, dict) else None
        return ctx.invoke(fn, open_study(study_dir), *args, **kwargs)

    return wrapper
