"""Methods as plug-ins: what a `[methods.NAME]` table in study.toml declares, checked and loaded.

Kinds:
- `builtin`: one of the built-in renderers (study.render.builtins), with a `params` table.
- `python`: `entry = "module:callable"`. The callable is a factory called with the `params`
  table as keyword arguments and returning a `torch.nn.Module` or any callable on a (N,3,H,W)
  float tensor in [0,1]; a callable taking exactly one required positional argument (two with
  `needs_depth`) is used as the image function itself. `weights` (optional) is a state dict
  (loaded into the entry's module), a TorchScript file or a `torch.export` archive (.pt2) — the
  last two are complete models and need no entry. `pythonpath` (relative to the study folder)
  is searched first. `needs_depth = true` calls the model as `model(image, depth)`.
- `command`: an external program, `command = "prog {input_dir} {output_dir}"`. Inputs are
  staged as `{input_dir}/<image_id>.png` (depth maps as 16-bit `{depth_dir}/<image_id>.png`);
  the program writes `{output_dir}/<image_id>.png`. It runs once per image, or once over all
  images with `batch = true`.
  Placeholders: input_dir, output_dir, depth_dir, python (this interpreter), study_dir, device.
- `folder`: results a team submitted, `path = "dir of <image_id>.png|jpg"`.

Every kind carries a factsheet (team, author, framework, hardware, runtime_s) for the ranking.
This module checks and loads every kind and runs builtin and python ones; the command and folder
kinds live in study.render.external.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shlex
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from study.errors import StudyError

KINDS = ("builtin", "python", "command", "folder")
FACTSHEET_KEYS = ("team", "author", "framework", "hardware", "runtime_s")
COMMAND_PLACEHOLDERS = ("input_dir", "output_dir", "depth_dir", "python", "study_dir", "device")
FOLDER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
KNOWN_KEYS = {
    "builtin": {"builtin", "params"},
    "python": {"entry", "weights", "pythonpath", "params", "needs_depth"},
    "command": {"command", "needs_depth", "env", "batch"},
    "folder": {"path"},
}
COMMON_KEYS = {"kind", "timeout_s", *FACTSHEET_KEYS}


class MethodFailure(Exception):
    """A method misbehaved on an image (crash, hang, bad output). Recorded, never fatal."""

    def __init__(self, message: str, fatal: bool = False):
        super().__init__(message)
        # A fatal failure (a hang) means the method is not asked for further images this run.
        self.fatal = fatal


@dataclass
class Factsheet:
    team: str | None = None
    author: str | None = None
    framework: str | None = None
    hardware: str | None = None
    runtime_s: float | None = None

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Factsheet":
        rt = spec.get("runtime_s")
        return cls(*(None if spec.get(k) is None else str(spec.get(k))
                     for k in FACTSHEET_KEYS[:4]),
                   runtime_s=float(rt) if isinstance(rt, (int, float)) else None)


def method_specs(study) -> dict[str, dict[str, Any]]:
    return dict(study.settings.methods)


def sync_methods(study, conn=None) -> None:
    """Copy every configured method's kind, spec and factsheet into the `methods` table."""
    from study import store

    own = conn is None
    conn = conn or study.connect()
    try:
        with store.transaction(conn):
            for name, spec in method_specs(study).items():
                fs = Factsheet.from_spec(spec)
                store.save_method(conn, name, spec.get("kind"),
                                  json.dumps(spec, sort_keys=True, default=str),
                                  fs.team, fs.author, fs.framework, fs.hardware, fs.runtime_s)
    finally:
        if own:
            conn.close()


# ------------------------------------------------------------------ static checks

def check_specs(study, names: list[str]) -> None:
    """Report every mistake in the named methods' tables at once (before anything runs)."""
    specs = method_specs(study)
    problems: list[StudyError] = []
    for name in names:
        problems.extend(check_spec(study, name, specs[name]))
    if problems:
        raise StudyError.many(problems, f"{len(problems)} problem(s) in the [methods] tables")


def check_spec(study, name: str, spec: dict[str, Any]) -> list[StudyError]:
    where = f"{study.root / 'study.toml'} [methods.{name}]"
    kind = spec.get("kind")
    problems: list[StudyError] = []

    def bad(msg: str, hint: str | None = None) -> None:
        problems.append(StudyError(f"method {name!r}: {msg}", where=where, hint=hint))

    if kind not in KINDS:
        bad(f"unknown kind {kind!r}", hint='kind = "builtin", "python", "command" or "folder"')
        return problems
    unknown = set(spec) - COMMON_KEYS - KNOWN_KEYS[kind]
    if unknown:
        bad(f"unknown setting(s) {', '.join(sorted(unknown))} for kind {kind!r}",
            hint=f"known: {', '.join(sorted(COMMON_KEYS | KNOWN_KEYS[kind]))}")
    if "params" in spec and not isinstance(spec["params"], dict):
        bad("params must be a table", hint="params = { sigma = 4.0 }")
    if "timeout_s" in spec and not (isinstance(spec["timeout_s"], (int, float))
                                    and spec["timeout_s"] > 0):
        bad("timeout_s must be a positive number of seconds")
    rt = spec.get("runtime_s")
    if rt is not None and not isinstance(rt, (int, float)):
        bad(f"runtime_s must be a number of seconds, got {rt!r}")
    if kind == "builtin":
        from study.render.builtins import BUILTINS
        b = spec.get("builtin")
        if b not in BUILTINS:
            bad(f"unknown built-in {b!r}", hint=f"builtin = one of {', '.join(sorted(BUILTINS))}")
    elif kind == "python":
        entry, weights = spec.get("entry"), spec.get("weights")
        if entry is None and weights is None:
            bad("needs `entry = \"module:callable\"` and/or `weights = \"file\"`")
        if entry is not None and (not isinstance(entry, str) or entry.count(":") != 1
                                  or not all(entry.split(":"))):
            bad(f"entry must look like \"module:callable\", got {entry!r}")
        if weights is not None and not study.resolve(str(weights)).is_file():
            bad(f"weights file {study.resolve(str(weights))} does not exist",
                hint="paths are relative to the study folder")
        pp = spec.get("pythonpath")
        if pp is not None and not study.resolve(str(pp)).is_dir():
            bad(f"pythonpath {study.resolve(str(pp))} is not a folder",
                hint="paths are relative to the study folder")
    elif kind == "command":
        template = spec.get("command")
        if not isinstance(template, str) or not template.strip():
            bad("needs `command = \"prog {input_dir} {output_dir}\"`")
        else:
            try:
                dummy = {k: k for k in COMMAND_PLACEHOLDERS}
                dummy.update(python=sys.executable, study_dir=str(study.root))
                argv = command_argv(template, dummy)
            except (KeyError, IndexError, ValueError) as exc:
                bad(f"command template {template!r} is not valid: {exc}",
                    hint=f"placeholders: {', '.join('{' + k + '}' for k in COMMAND_PLACEHOLDERS)}"
                         "; write literal braces as {{ }}")
            else:
                if "{output_dir}" not in template:
                    bad("command must mention {output_dir} (where it writes <image_id>.png)")
                prog = argv[0] if argv else ""
                if not _program_exists(prog, study.root):
                    bad(f"program {prog!r} not found", hint="give a full path or put it on PATH")
        if "env" in spec and not isinstance(spec["env"], dict):
            bad("env must be a table of environment variables")
    elif kind == "folder":
        p = spec.get("path")
        if not isinstance(p, str) or not p:
            bad("needs `path = \"folder of <image_id>.png results\"`")
        elif not study.resolve(p).is_dir():
            bad(f"results folder {study.resolve(p)} does not exist",
                hint="paths are relative to the study folder")
    return problems


def _program_exists(prog: str, cwd: Path) -> bool:
    if os.sep in prog:
        p = Path(prog)
        p = p if p.is_absolute() else cwd / p
        return p.is_file()
    return shutil.which(prog) is not None


def command_argv(template: str, values: dict[str, str]) -> list[str]:
    quoted = {k: shlex.quote(str(v)) for k, v in values.items()}
    return shlex.split(template.format_map(quoted))


# ------------------------------------------------------------------ loaded methods

class Method:
    """A loaded method. Tensor methods (builtin, python) implement `forward`; the runner
    moves tensors, tiles and times them. Command and folder methods produce uint8 images."""

    kind = ""

    def __init__(self, name: str, spec: dict[str, Any]):
        self.name = name
        self.spec = spec
        self.needs_depth = bool(spec.get("needs_depth", False))
        self.needs_reference = False

    def close(self) -> None:
        pass


class TensorMethod(Method):
    def __init__(self, name: str, spec: dict[str, Any], kind: str, fn: Callable,
                 device: str, fp16: bool, needs_depth: bool, needs_reference: bool,
                 keyword_inputs: bool):
        super().__init__(name, spec)
        self.kind = kind
        self.fn = fn
        self.device = device
        self.fp16 = bool(fp16) and device.startswith("cuda")
        self.needs_depth = needs_depth
        self.needs_reference = needs_reference
        self._keywords = keyword_inputs

    def forward(self, x, depth=None, reference=None):
        """One call on tensors already on the method's device. Thread-local torch modes are
        set here because the runner calls this from a worker thread."""
        import torch

        with torch.inference_mode():
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.fp16):
                if self._keywords:
                    y = self.fn(x, depth=depth, reference=reference)
                elif self.needs_depth:
                    y = self.fn(x, depth)
                else:
                    y = self.fn(x)
        if torch.is_tensor(y) and y.dtype != torch.float32:
            y = y.float()
        return y


def _short(exc: BaseException) -> str:
    if isinstance(exc, (StudyError, MethodFailure)):
        return str(exc.args[0] if exc.args else exc)
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}".strip()


def load_method(study, name: str, device: str = "cpu", fp16: bool = False) -> Method:
    """Load a configured method once. Problems loading it raise MethodFailure (its fault)
    or StudyError (a mistake in study.toml)."""
    specs = method_specs(study)
    if name not in specs:
        raise StudyError(f"no method {name!r} in study.toml",
                         hint=f"configured: {', '.join(specs) or 'none'}")
    spec = specs[name]
    problems = check_spec(study, name, spec)
    if problems:
        raise StudyError.many(problems)
    # Imported here: the command and folder kinds build on this module's Method.
    from study.render.external import CommandMethod, FolderMethod

    kind = spec["kind"]
    if kind == "builtin":
        return _load_builtin(name, spec, device)
    if kind == "python":
        return _load_python(study, name, spec, device, fp16)
    if kind == "command":
        return CommandMethod(name, spec, study.root, device)
    return FolderMethod(name, spec, study.resolve(spec["path"]))


def _load_builtin(name: str, spec: dict[str, Any], device: str) -> TensorMethod:
    from study.render.builtins import BUILTINS

    try:
        obj = BUILTINS[spec["builtin"]](dict(spec.get("params") or {}))
    except StudyError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise MethodFailure(f"built-in {spec['builtin']!r} refused its params: {_short(exc)}")
    if hasattr(obj, "to") and callable(obj.to):
        obj = obj.to(device) or obj
    return TensorMethod(name, spec, "builtin", obj, device, fp16=False,
                        needs_depth=bool(getattr(obj, "needs_depth", False)),
                        needs_reference=bool(getattr(obj, "needs_reference", False)),
                        keyword_inputs=True)


def weights_format(path: Path) -> str:
    """'export', 'torchscript' or 'state_dict', from the archive's contents."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return "state_dict"  # legacy (pre-zip) torch.save files
    if any(n.endswith("/archive_format") or "/models/" in n for n in names):
        return "export"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    return "state_dict"


def _load_python(study, name: str, spec: dict[str, Any], device: str,
                 fp16: bool) -> TensorMethod:
    import torch

    model: Any = None
    fmt = None
    if spec.get("weights"):
        wpath = study.resolve(str(spec["weights"]))
        fmt = weights_format(wpath)
        try:
            if fmt == "torchscript":
                import warnings
                with warnings.catch_warnings():
                    # TorchScript is deprecated upstream, but teams still submit it.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    model = torch.jit.load(str(wpath), map_location=device).eval()
            elif fmt == "export":
                ep = torch.export.load(str(wpath))
                if device != "cpu":
                    from torch.export.passes import move_to_device_pass
                    ep = move_to_device_pass(ep, device)
                model = ep.module()
        except Exception as exc:  # noqa: BLE001
            raise MethodFailure(f"cannot load {fmt} weights {wpath.name}: {_short(exc)}") from None
    if model is None:
        if not spec.get("entry"):
            raise StudyError(f"method {name!r}: weights {spec['weights']} hold a state dict, "
                             "which needs an `entry` that builds the model",
                             where=f"[methods.{name}]", hint='entry = "module:callable"')
        target = _import_entry(study, name, spec)
        params = dict(spec.get("params") or {})
        try:
            model = _instantiate(target, params, bool(spec.get("needs_depth", False)))
        except Exception as exc:  # noqa: BLE001
            raise MethodFailure(f"entry {spec['entry']} failed: {_short(exc)}") from None
        if fmt == "state_dict":
            _load_state(model, study.resolve(str(spec["weights"])), spec)
    if isinstance(model, torch.nn.Module) and fmt != "export":
        model = model.eval()
    if hasattr(model, "to") and callable(model.to) and fmt != "export":
        model = model.to(device) or model
    needs_depth = bool(spec.get("needs_depth", getattr(model, "needs_depth", False)))
    return TensorMethod(name, spec, "python", model, device, fp16, needs_depth=needs_depth,
                        needs_reference=False, keyword_inputs=False)


def _instantiate(target: Any, params: dict[str, Any], needs_depth: bool) -> Any:
    import torch

    if isinstance(target, torch.nn.Module):
        return target
    if inspect.isclass(target):
        return target(**params)
    if not params and _is_image_function(target, 2 if needs_depth else 1):
        return target
    return target(**params)


def _is_image_function(fn: Any, n_inputs: int) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    required = [p for p in sig.parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(required) == n_inputs


def _import_entry(study, name: str, spec: dict[str, Any]) -> Any:
    module_name, attr = str(spec["entry"]).split(":")
    pp = spec.get("pythonpath")
    if pp:
        folder = study.resolve(str(pp))
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        _forget_loaded(module_name)
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001
        if isinstance(exc, ModuleNotFoundError) and exc.name == module_name.split(".")[0]:
            raise StudyError(f"method {name!r}: module {module_name!r} not found",
                             where=f"[methods.{name}] entry",
                             hint="set pythonpath to the folder holding it "
                                  "(relative to the study folder)") from None
        raise MethodFailure(f"importing {module_name} failed: {_short(exc)}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise StudyError(f"method {name!r}: module {module_name} has no {attr!r}",
                         where=f"[methods.{name}] entry") from None


def _forget_loaded(module_name: str) -> None:
    """Import a method's code afresh: a module of the same name imported earlier (another
    study's, or this one's before its files changed) must not stand in for it."""
    top = module_name.split(".")[0]
    for key in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
        del sys.modules[key]


def _load_state(model: Any, path: Path, spec: dict[str, Any]) -> None:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise MethodFailure(f"weights {path.name} are a state dict, but the entry "
                            f"{spec['entry']} returned {type(model).__name__}, not a torch.nn.Module")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise MethodFailure(f"cannot load weights {path.name}: {_short(exc)}") from None
    # Training checkpoints often wrap the state dict, and DataParallel prefixes its keys.
    for key in ("state_dict", "model", "params", "net"):
        if isinstance(state, dict) and isinstance(state.get(key), dict) and len(state) <= 4 \
                and not any(torch.is_tensor(v) for v in state.values()):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise MethodFailure(f"weights {path.name} hold {type(state).__name__}, not a state dict")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001
        raise MethodFailure(f"weights {path.name} do not fit the model: {_short(exc)}") from None
